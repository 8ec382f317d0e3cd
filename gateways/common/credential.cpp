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
  key_credential(const config::model_config& cfg, const credential_options& o, bool required) : value_(o.api_key) {
    if (value_.empty() && !o.api_key_file.empty()) {
      file_ = o.api_key_file;
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

const config::option_block<credential_options>& api_key_options() {
  static const auto block =
    config::option_block<credential_options>("models.*")
      .secret("api_key", &credential_options::api_key,
              "Credential sent to the provider; write `${ENV_VAR}`. Never printed.")
      .text("api_key_file", &credential_options::api_key_file, "",
            "File holding the credential (read at start, and again when the provider refuses it; whitespace trimmed).");
  return block;
}

const config::option_block<credential_options>& credential_options_block() {
  using kinds = std::vector<std::pair<std::string, std::string>>;
  static const auto block =
    config::option_block<credential_options>("models.*")
      .include(api_key_options())
      .choice("auth", &credential_options::auth,
              kinds{{"api_key", "api_key"},
                    {"google_service_account", "google_service_account"},
                    {"google_metadata", "google_metadata"},
                    {"azure_client_credentials", "azure_client_credentials"},
                    {"azure_managed_identity", "azure_managed_identity"}},
              "api_key",
              "Where the credential comes from: api_key (`api_key`/`api_key_file`), or an OAuth access token fetched "
              "and refreshed before it expires (docs/GATEWAYS.md, Credentials).")
      .text("token_scope", &credential_options::token_scope, "",
            "The OAuth scope asked for; empty: the provider's (https://www.googleapis.com/auth/cloud-platform, "
            "https://cognitiveservices.azure.com/.default, https://ml.azure.com/.default).")
      .text("credentials_file", &credential_options::credentials_file, "",
            "auth: google_service_account: the service account's JSON key; empty uses GOOGLE_APPLICATION_CREDENTIALS.")
      .text("tenant_id", &credential_options::tenant_id, "",
            "auth: azure_client_credentials: the Entra ID tenant; empty uses AZURE_TENANT_ID.")
      .text("client_id", &credential_options::client_id, "",
            "auth: azure_*: the application (client) id, or a user-assigned managed identity's; empty uses "
            "AZURE_CLIENT_ID.")
      .secret("client_secret", &credential_options::client_secret,
              "auth: azure_client_credentials; empty uses AZURE_CLIENT_SECRET.");
  return block;
}

std::shared_ptr<credential> make_credential(const config::model_config& cfg, const credential_options& o,
                                            std::optional<std::string> token_scope, bool required) {
  if (o.auth.empty() || o.auth == "api_key")
    return std::make_shared<key_credential>(cfg, o, required);
  if (!token_scope)
    throw std::runtime_error(
      fmt::format("provider {} takes its own api keys only: remove `auth: {}`", cfg.provider, o.auth));
  auto scope = o.token_scope.empty() ? *token_scope : o.token_scope;
  if (scope.empty())
    throw std::runtime_error(
      fmt::format("auth: {} on provider {} needs `token_scope:` (the OAuth scope of the endpoint's tokens)", o.auth,
                  cfg.provider));
  auto what = fmt::format("model {}: access token (auth: {})", cfg.name, o.auth);
  auto fetch = cloud_tokens::fetcher(o, scope);
  try {
    auto out = std::make_shared<token_credential>(what, std::move(fetch));
    spdlog::info("{}: the first one fetched; renewed before it expires", what);
    return out;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot get an access token (auth: {}): {}", o.auth, e.what()));
  }
}

} // namespace inflow::gateways
