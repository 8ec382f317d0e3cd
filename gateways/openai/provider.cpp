// The `openai` and `azure-openai` providers: embeddings (a whole batch in one
// call) and chat completions (one record per call). `openai` takes a base URL
// (`endpoint: https://api.openai.com/v1`, or any OpenAI-compatible server) and
// a bearer key; `azure-openai` takes the resource URL, a deployment, an
// api-version and an `api-key` header (or an Entra ID token, `auth:`).

#include "gateways/common/provider_support.hpp"
#include "gateways/common/text_support.hpp"

#include <fmt/format.h>

namespace inflow::gateways::openai {

namespace {

struct options {
  std::string model;      ///< openai
  std::string deployment; ///< azure-openai
  std::string api_version; ///< azure-openai
  text_options text;
  credential_options credentials;
};

const config::option_block<options>& openai_options() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("model", &options::model, std::nullopt, "The model, e.g. text-embedding-3-small, gpt-4o-mini.")
      .include(&options::text, text_generation_options())
      .include(&options::credentials, api_key_options());
  return block;
}

const config::option_block<options>& azure_options() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("deployment", &options::deployment, std::nullopt, "The deployment name.")
      .text("api_version", &options::api_version, "2024-02-01", "The api-version query parameter.")
      .include(&options::text, text_generation_options())
      .include(&options::credentials, credential_options_block());
  return block;
}

class openai_codec : public codec {
public:
  openai_codec(const config::model_config& cfg, const options& o, bool azure)
    : cfg_(cfg), o_(o), azure_(azure),
      key_(make_credential(cfg, o.credentials,
                           azure ? std::optional<std::string>("https://cognitiveservices.azure.com/.default")
                                 : std::nullopt,
                           true)) {
    auto base = http::parse_url(cfg.endpoint).target;
    while (!base.empty() && base.back() == '/')
      base.pop_back();
    const char* op = embedding() ? "embeddings" : "chat/completions";
    target_ = azure ? fmt::format("{}/openai/deployments/{}/{}?api-version={}", base, o.deployment, op,
                                  o.api_version)
                    : fmt::format("{}/{}", base, op);
  }

  bool embedding() const { return cfg_.task == "embedding"; }
  renewable* renewable_credential() const override { return key_.get(); }
  size_t max_inputs_per_call() const override { return embedding() ? 0 : 1; }
  int64_t estimate_tokens(const call_input& in) const override {
    return estimate_text_tokens(in, embedding() ? 0 : o_.text.max_tokens);
  }

  http::call build(const call_input& in, uint64_t) const override {
    nlohmann::json body;
    if (!azure_)
      body["model"] = o_.model;
    if (embedding()) {
      body["input"] = std::vector<std::string>(in.texts, in.texts + in.n);
    } else {
      auto messages = nlohmann::json::array();
      if (!o_.text.system_prompt.empty())
        messages.push_back({{"role", "system"}, {"content", o_.text.system_prompt}});
      messages.push_back({{"role", "user"}, {"content", in.texts[0]}});
      body["messages"] = std::move(messages);
      body["max_tokens"] = o_.text.max_tokens;
    }
    // Azure takes its resource key as `api-key`, an Entra ID token as a bearer token.
    auto auth = azure_ && !key_->is_access_token() ? std::pair{std::string("api-key"), key_->value()}
                       : std::pair{std::string("Authorization"), "Bearer " + key_->value()};
    return {"POST", target_, {{"Content-Type", "application/json"}, std::move(auth)}, body.dump()};
  }

  std::optional<call_output> parse(const http::result& r, size_t n, std::string& error) const override {
    return read_json(r.body, error, [&](const nlohmann::json& j) -> std::optional<call_output> {
      call_output out;
      const auto& usage = j.value("usage", nlohmann::json::object());
      out.tokens_in = usage.value("prompt_tokens", 0);
      out.tokens_out = usage.value("completion_tokens", 0);
      if (embedding()) {
        std::vector<std::vector<float>> vectors(j.at("data").size());
        for (const auto& d : j.at("data")) {
          auto index = d.value("index", size_t(0));
          if (index >= vectors.size())
            throw nlohmann::json::other_error::create(501, "embedding index out of range", &d);
          vectors[index] = d.at("embedding").get<std::vector<float>>();
        }
        if (!flatten_embeddings(vectors, n, out, error))
          return std::nullopt;
      } else {
        out.texts.push_back(j.at("choices").at(0).at("message").at("content").get<std::string>());
      }
      return out;
    });
  }

private:
  config::model_config cfg_;
  options o_;
  bool azure_;
  std::string target_;
  std::shared_ptr<credential> key_;
};

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics, bool azure) {
  if (cfg.endpoint.empty())
    return prepare_remote(cfg, metrics, nullptr); // reports the missing endpoint
  return prepare_remote(cfg, metrics, std::make_shared<openai_codec>(cfg, o, azure), azure ? o.deployment : o.model);
}

} // namespace

REGISTER_GATEWAY("openai", make_factory<options>({"embedding", "text_generation"}, openai_options(),
                                                 [](auto& c, auto& o, auto& m) { return prepare(c, o, m, false); }));
REGISTER_GATEWAY("azure-openai", make_factory<options>({"embedding", "text_generation"}, azure_options(),
                                                       [](auto& c, auto& o, auto& m) { return prepare(c, o, m, true); }));

} // namespace inflow::gateways::openai
