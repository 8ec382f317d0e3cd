#include "gateways/common/sigv4.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <stdexcept>

namespace inflow::gateways::sigv4 {

namespace {

std::string hex(const unsigned char* data, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0xf]);
  }
  return out;
}

std::string hmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  if (b == std::string::npos)
    return {};
  // Inner runs of spaces collapse to one.
  std::string out;
  for (size_t i = b; i <= e; ++i)
    if (!(s[i] == ' ' && !out.empty() && out.back() == ' '))
      out += s[i];
  return out;
}

} // namespace

std::string sha256_hex(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return hex(out, len);
}

std::string uri_encode(const std::string& text, bool keep_slash) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string amz_date_now() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[17];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

signature sign(const request& r, const credentials& c, const std::string& region, const std::string& service,
               const std::string& amz_date) {
  // Canonical query: encoded names and values, sorted.
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [k, v] : r.query)
    query.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [k, v] : query)
    canonical_query += (canonical_query.empty() ? "" : "&") + k + "=" + v;

  // Canonical headers: lower-case names, trimmed values, sorted.
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [k, v] : r.headers) {
    std::string name = k;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
    headers.emplace_back(name, trim(v));
  }
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers, signed_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + k;
  }

  signature s;
  s.canonical_request = r.method + "\n" + uri_encode(r.path.empty() ? "/" : r.path, true) + "\n" + canonical_query +
                        "\n" + canonical_headers + "\n" + signed_headers + "\n" + sha256_hex(r.payload);
  const std::string date = amz_date.substr(0, 8);
  const std::string scope = date + "/" + region + "/" + service + "/aws4_request";
  s.string_to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + sha256_hex(s.canonical_request);
  std::string key = hmac(hmac(hmac(hmac("AWS4" + c.secret_access_key, date), region), service), "aws4_request");
  std::string raw = hmac(key, s.string_to_sign);
  s.signature_hex = hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  s.authorization = "AWS4-HMAC-SHA256 Credential=" + c.access_key_id + "/" + scope +
                    ", SignedHeaders=" + signed_headers + ", Signature=" + s.signature_hex;
  return s;
}

} // namespace inflow::gateways::sigv4
