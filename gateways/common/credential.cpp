#include "gateways/common/credential.hpp"

#include "gateways/common/cloud_tokens.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

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

/// `api_key`, else the content of `api_key_file`, read again when the provider refuses it (a
/// rotated key, an access token another tool renews).
class key_credential : public credential {
public:
  key_credential(const config::model_config& cfg, bool required) : value_(cfg.api_key) {
    if (value_.empty() && !cfg.api_key_file.empty()) {
      file_ = cfg.api_key_file;
      value_ = read_key_file(file_);
    }
    if (value_.empty() && required)
      throw std::runtime_error(fmt::format(
        "provider {} needs a credential: set `api_key: ${{SOME_ENV_VAR}}`, `api_key_file:` or `auth:`", cfg.provider));
  }
  std::string value() const override {
    std::lock_guard<std::mutex> guard(mutex_);
    return value_;
  }
  bool refresh() override {
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
    ++generation_;
    return true;
  }
  uint64_t generation() const override { return generation_.load(); }

private:
  std::string file_; ///< empty: `api_key` was given, nothing to read again
  mutable std::mutex mutex_;
  std::string value_;
  std::atomic<uint64_t> generation_{1};
};

class token_credential : public credential {
public:
  token_credential(std::string what, cloud_tokens::fetch_fn fetch) : token_(std::move(what), std::move(fetch)) {}
  std::string value() const override { return token_.value(); }
  bool refresh() override { return token_.refresh(); }
  uint64_t generation() const override { return token_.generation(); }
  bool is_access_token() const override { return true; }

private:
  refreshing<std::string> token_;
};

} // namespace

void warn_refresh_failed(const std::string& what, const char* reason) {
  spdlog::warn("{}: refreshing failed ({}); retrying, the current one is used until it expires", what, reason);
}

std::shared_ptr<credential> make_credential(const config::model_config& cfg, std::optional<std::string> token_scope,
                                            bool required) {
  if (cfg.auth.empty() || cfg.auth == "api_key")
    return std::make_shared<key_credential>(cfg, required);
  if (!token_scope)
    throw std::runtime_error(
      fmt::format("provider {} takes its own api keys only: remove `auth: {}`", cfg.provider, cfg.auth));
  auto scope = cfg.token_scope.empty() ? *token_scope : cfg.token_scope;
  if (scope.empty())
    throw std::runtime_error(
      fmt::format("auth: {} on provider {} needs `token_scope:` (the OAuth scope of the endpoint's tokens)", cfg.auth,
                  cfg.provider));
  auto what = fmt::format("model {}: access token (auth: {})", cfg.name, cfg.auth);
  auto fetch = cloud_tokens::fetcher(cfg, scope);
  try {
    auto out = std::make_shared<token_credential>(what, std::move(fetch));
    spdlog::info("{}: the first one fetched; renewed before it expires", what);
    return out;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot get an access token (auth: {}): {}", cfg.auth, e.what()));
  }
}

} // namespace inflow::gateways
