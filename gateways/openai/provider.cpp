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

class openai_codec : public codec {
public:
  openai_codec(const config::model_config& cfg, bool azure)
    : cfg_(cfg), azure_(azure), key_(make_credential(cfg, azure ? std::optional<std::string>("https://cognitiveservices.azure.com/.default")
                                                          : std::nullopt,
                                         true)) {
    auto base = http::parse_url(cfg.endpoint).target;
    while (!base.empty() && base.back() == '/')
      base.pop_back();
    const char* op = embedding() ? "embeddings" : "chat/completions";
    target_ = azure ? fmt::format("{}/openai/deployments/{}/{}?api-version={}", base, cfg.deployment, op,
                                  cfg.api_version)
                    : fmt::format("{}/{}", base, op);
  }

  bool embedding() const { return cfg_.task == "embedding"; }
  renewable* renewable_credential() const override { return key_.get(); }
  size_t max_inputs_per_call() const override { return embedding() ? 0 : 1; }
  int64_t estimate_tokens(const call_input& in) const override {
    return estimate_text_tokens(in, embedding() ? 0 : cfg_.max_tokens);
  }

  http::call build(const call_input& in, uint64_t) const override {
    nlohmann::json body;
    if (!azure_)
      body["model"] = cfg_.remote_model;
    if (embedding()) {
      body["input"] = std::vector<std::string>(in.texts, in.texts + in.n);
    } else {
      auto messages = nlohmann::json::array();
      if (!cfg_.system_prompt.empty())
        messages.push_back({{"role", "system"}, {"content", cfg_.system_prompt}});
      messages.push_back({{"role", "user"}, {"content", in.texts[0]}});
      body["messages"] = std::move(messages);
      body["max_tokens"] = cfg_.max_tokens;
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
  bool azure_;
  std::string target_;
  std::shared_ptr<credential> key_;
};

prepared_model prepare(const config::model_config& cfg, metrics::registry& metrics, bool azure) {
  if (cfg.endpoint.empty())
    return prepare_remote(cfg, metrics, nullptr); // reports the missing endpoint
  if (!azure && cfg.remote_model.empty())
    throw std::runtime_error("provider openai needs `model:` (e.g. text-embedding-3-small, gpt-4o-mini)");
  if (azure && cfg.deployment.empty())
    throw std::runtime_error("provider azure-openai needs `deployment:` (the deployment name)");
  return prepare_remote(cfg, metrics, std::make_shared<openai_codec>(cfg, azure));
}

} // namespace

REGISTER_GATEWAY("openai", factory{{"embedding", "text_generation"},
                                   [](const config::model_config& c, metrics::registry& m) { return prepare(c, m, false); }});
REGISTER_GATEWAY("azure-openai", factory{{"embedding", "text_generation"},
                                         [](const config::model_config& c, metrics::registry& m) { return prepare(c, m, true); }});

} // namespace inflow::gateways::openai
