#include "gateways/common/cloud_tokens.hpp"

#include "gateways/common/sigv4.hpp"
#include "http/client.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace inflow::gateways::cloud_tokens {

namespace {

using clock = std::chrono::system_clock;
using fetched = refreshing<std::string>::fetched;

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string first_of(const std::string& configured, const char* env_name) {
  return configured.empty() ? env_or(env_name, "") : configured;
}

http::client_options token_client() {
  http::client_options o;
  o.timeout_ms = 5000;
  o.max_response_bytes = 1 << 20;
  return o;
}

/// {"access_token", "expires_in" | "expires_on"} from a token service, or why not.
fetched read_token(const http::result& r, const std::string& where) {
  if (r.error != http::result::failure::none)
    throw std::runtime_error(fmt::format("{}: {}", where, r.message));
  if (r.status != 200)
    throw std::runtime_error(fmt::format("{} answered HTTP {}: {}", where, r.status, r.body.substr(0, 300)));
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string())
    throw std::runtime_error(fmt::format("{} answered without an access_token", where));
  // Numbers, or numbers in strings (Azure's managed identity endpoints).
  auto seconds = [&](const char* key) -> std::optional<int64_t> {
    if (!j.contains(key))
      return std::nullopt;
    const auto& v = j[key];
    if (v.is_number_integer())
      return v.get<int64_t>();
    if (v.is_string())
      try {
        return std::stoll(v.get<std::string>());
      } catch (const std::exception&) {
      }
    return std::nullopt;
  };
  fetched out{j["access_token"].get<std::string>()};
  if (auto in = seconds("expires_in"))
    out.expires = clock::now() + std::chrono::seconds(*in);
  else if (auto on = seconds("expires_on"))
    out.expires = clock::time_point(std::chrono::seconds(*on));
  else
    out.expires = clock::now() + std::chrono::hours(1); // what these services issue by default
  return out;
}

std::string base64url(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  for (auto& c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string rs256(EVP_PKEY* key, const std::string& data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t size = 0;
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    throw std::runtime_error("cannot sign with the service account's private key");
  std::string sig(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &size,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    throw std::runtime_error("cannot sign with the service account's private key");
  sig.resize(size);
  return sig;
}

fetch_fn google_service_account(const credential_options& cfg, const std::string& scope) {
  auto path = first_of(cfg.credentials_file, "GOOGLE_APPLICATION_CREDENTIALS");
  if (path.empty())
    throw std::runtime_error("auth: google_service_account needs the key file: set `credentials_file:` or "
                             "GOOGLE_APPLICATION_CREDENTIALS");
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error(fmt::format("credentials_file {} cannot be read", path));
  auto key = nlohmann::json::parse(in, nullptr, false);
  if (!key.is_object() || key.value("type", "") != "service_account" || !key.contains("client_email") ||
      !key.contains("private_key"))
    throw std::runtime_error(fmt::format("{} is not a service account key (JSON with \"type\": \"service_account\", "
                                         "client_email and private_key)",
                                         path));
  const auto pem = key["private_key"].get<std::string>();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::shared_ptr<EVP_PKEY> pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!pkey)
    throw std::runtime_error(fmt::format("the private_key in {} is not a PEM private key", path));
  auto email = key["client_email"].get<std::string>();
  auto token_uri = key.value("token_uri", std::string("https://oauth2.googleapis.com/token"));
  auto key_id = key.value("private_key_id", std::string());
  return [=] {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(clock::now().time_since_epoch()).count();
    nlohmann::json header{{"alg", "RS256"}, {"typ", "JWT"}};
    if (!key_id.empty())
      header["kid"] = key_id;
    nlohmann::json claims{{"iss", email}, {"scope", scope}, {"aud", token_uri}, {"iat", now}, {"exp", now + 3600}};
    auto unsigned_jwt = base64url(header.dump()) + "." + base64url(claims.dump());
    auto jwt = unsigned_jwt + "." + base64url(rs256(pkey.get(), unsigned_jwt));
    http::call c{"POST", "", {{"Content-Type", "application/x-www-form-urlencoded"}},
                 form_encode({{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {"assertion", jwt}})};
    return read_token(http::fetch(token_uri, std::move(c), token_client()), token_uri);
  };
}

fetch_fn google_metadata(const std::string& scope) {
  auto url = fmt::format("http://{}/computeMetadata/v1/instance/service-accounts/default/token?scopes={}",
                         env_or("GCE_METADATA_HOST", "metadata.google.internal"), sigv4::uri_encode(scope, false));
  return [=] {
    return read_token(http::fetch(url, {"GET", "", {{"Metadata-Flavor", "Google"}}, ""}, token_client()),
                      "the Google metadata server");
  };
}

fetch_fn azure_client_credentials(const credential_options& cfg, const std::string& scope) {
  auto tenant = first_of(cfg.tenant_id, "AZURE_TENANT_ID");
  auto client_id = first_of(cfg.client_id, "AZURE_CLIENT_ID");
  auto secret = first_of(cfg.client_secret, "AZURE_CLIENT_SECRET");
  if (tenant.empty() || client_id.empty() || secret.empty())
    throw std::runtime_error("auth: azure_client_credentials needs tenant_id, client_id and client_secret (or "
                             "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)");
  auto authority = env_or("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com");
  while (!authority.empty() && authority.back() == '/')
    authority.pop_back();
  auto url = fmt::format("{}/{}/oauth2/v2.0/token", authority, sigv4::uri_encode(tenant, false));
  return [=] {
    http::call c{"POST", "", {{"Content-Type", "application/x-www-form-urlencoded"}},
                 form_encode({{"grant_type", "client_credentials"}, {"client_id", client_id},
                              {"client_secret", secret}, {"scope", scope}})};
    return read_token(http::fetch(url, std::move(c), token_client()), "Entra ID at " + authority);
  };
}

fetch_fn azure_managed_identity(const credential_options& cfg, const std::string& scope) {
  // Managed identity endpoints take a resource, not a scope.
  auto resource = scope.size() > 9 && scope.ends_with("/.default") ? scope.substr(0, scope.size() - 9) : scope;
  auto client_id = first_of(cfg.client_id, "AZURE_CLIENT_ID"); // a user-assigned identity
  auto query = form_encode({{"resource", resource}});
  if (!client_id.empty())
    query += "&" + form_encode({{"client_id", client_id}});
  auto endpoint = env_or("IDENTITY_ENDPOINT", ""), secret_header = env_or("IDENTITY_HEADER", "");
  if (!endpoint.empty() && !secret_header.empty()) {
    auto url = fmt::format("{}?api-version=2019-08-01&{}", endpoint, query);
    return [=] {
      return read_token(http::fetch(url, {"GET", "", {{"X-IDENTITY-HEADER", secret_header}}, ""}, token_client()),
                        "the managed identity endpoint");
    };
  }
  auto url = fmt::format("{}/metadata/identity/oauth2/token?api-version=2018-02-01&{}",
                         env_or("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://169.254.169.254"), query);
  return [=] {
    return read_token(http::fetch(url, {"GET", "", {{"Metadata", "true"}}, ""}, token_client()),
                      "the Azure instance metadata service");
  };
}

} // namespace

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields)
    out += (out.empty() ? "" : "&") + sigv4::uri_encode(name, false) + "=" + sigv4::uri_encode(value, false);
  return out;
}

fetch_fn fetcher(const credential_options& cfg, const std::string& scope) {
  if (cfg.auth == "google_service_account")
    return google_service_account(cfg, scope);
  if (cfg.auth == "google_metadata")
    return google_metadata(scope);
  if (cfg.auth == "azure_client_credentials")
    return azure_client_credentials(cfg, scope);
  if (cfg.auth == "azure_managed_identity")
    return azure_managed_identity(cfg, scope);
  throw std::runtime_error(fmt::format("auth: {} does not give access tokens", cfg.auth));
}

} // namespace inflow::gateways::cloud_tokens
