#include "gateways/common/provider_support.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <fstream>
#include <sstream>

namespace inflow::gateways {

namespace {

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error(fmt::format("api_key_file {} cannot be read", path));
  std::stringstream text;
  text << in.rdbuf();
  auto key = text.str();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back())))
    key.pop_back();
  return key;
}

} // namespace

credential::credential(const config::model_config& cfg, bool required) : value_(cfg.api_key) {
  if (value_.empty() && !cfg.api_key_file.empty()) {
    file_ = cfg.api_key_file;
    value_ = read_key_file(file_);
  }
  if (value_.empty() && required)
    throw std::runtime_error(
      fmt::format("provider {} needs a credential: set `api_key: ${{SOME_ENV_VAR}}` or `api_key_file:`", cfg.provider));
}

std::string credential::value() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return value_;
}

bool credential::refresh() {
  if (file_.empty())
    return false;
  std::string fresh;
  try {
    fresh = read_key_file(file_);
  } catch (const std::runtime_error&) {
    return false; // being rewritten, say: the call fails as it would have
  }
  std::lock_guard<std::mutex> guard(mutex_);
  if (fresh.empty() || fresh == value_)
    return false;
  value_ = std::move(fresh);
  return true;
}

std::optional<std::vector<float>> scores_at(std::string_view json, const std::string& pointer, size_t n,
                                            std::string& error) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(json.data(), json.size()).get(doc)) {
    error = fmt::format("response is not valid JSON: {}", simdjson::error_message(err));
    return std::nullopt;
  }
  simdjson::dom::array list;
  if (doc.at_pointer(pointer).get_array().get(list)) {
    error = fmt::format("response has no array at '{}'", pointer);
    return std::nullopt;
  }
  std::vector<float> out;
  for (auto item : list) {
    double v;
    simdjson::dom::element e = item;
    if (e.is_array() && e.get_array().size() == 1)
      e = e.get_array().at(0);
    else if (e.is_object() && item["score"].get(e) != simdjson::SUCCESS)
      e = item; // no "score": reported below as not a score
    if (e.get_double().get(v) != simdjson::SUCCESS) {
      int64_t i;
      if (e.get_int64().get(i) != simdjson::SUCCESS) {
        error = fmt::format("response element {} at '{}' is not a score", out.size(), pointer);
        return std::nullopt;
      }
      v = static_cast<double>(i);
    }
    out.push_back(static_cast<float>(v));
  }
  if (out.size() != n) {
    error = fmt::format("response has {} scores for {} rows", out.size(), n);
    return std::nullopt;
  }
  return out;
}

std::string rows_json(const float* rows, size_t n, size_t width) {
  std::string out = "[";
  for (size_t r = 0; r < n; ++r) {
    out += r ? ",[" : "[";
    for (size_t k = 0; k < width; ++k) {
      if (k)
        out += ',';
      fmt::format_to(std::back_inserter(out), "{}", rows[r * width + k]);
    }
    out += ']';
  }
  out += ']';
  return out;
}

} // namespace inflow::gateways
