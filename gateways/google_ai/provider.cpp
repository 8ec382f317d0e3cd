// The `google-ai` provider: Gemini on the Generative Language API with an API
// key (`x-goog-api-key`). text_generation: `generateContent`, one record per
// call; embedding: `batchEmbedContents`, the whole batch in one call
// (`embedContent` for each text, sent together). `endpoint` is the API base,
// e.g. https://generativelanguage.googleapis.com/v1beta.

#include "gateways/common/provider_support.hpp"
#include "gateways/common/text_support.hpp"

#include <fmt/format.h>

namespace inflow::gateways::google_ai {

namespace {

struct options {
  std::string model;
  text_options text;
  credential_options credentials;
};

const config::option_block<options>& option_block() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("model", &options::model, std::nullopt, "The Gemini model, e.g. gemini-1.5-flash, text-embedding-004.")
      .include(&options::text, text_generation_options())
      .include(&options::credentials, api_key_options());
  return block;
}

class gemini_codec : public codec {
public:
  gemini_codec(const config::model_config& cfg, const options& o)
    : cfg_(cfg), o_(o), key_(make_credential(cfg, o.credentials, std::nullopt, true)) {
    auto base = http::parse_url(cfg.endpoint).target;
    while (!base.empty() && base.back() == '/')
      base.pop_back();
    target_ = fmt::format("{}/models/{}:{}", base, o.model,
                          embedding() ? "batchEmbedContents" : "generateContent");
  }

  bool embedding() const { return cfg_.task == "embedding"; }
  size_t max_inputs_per_call() const override { return embedding() ? 100 : 1; } // the API's batch limit
  renewable* renewable_credential() const override { return key_.get(); }
  int64_t estimate_tokens(const call_input& in) const override {
    return estimate_text_tokens(in, embedding() ? 0 : o_.text.max_tokens);
  }

  http::call build(const call_input& in, uint64_t) const override {
    nlohmann::json body;
    if (embedding()) {
      auto requests = nlohmann::json::array();
      for (size_t i = 0; i < in.n; ++i)
        requests.push_back({{"model", "models/" + o_.model}, {"content", {{"parts", {{{"text", in.texts[i]}}}}}}});
      body["requests"] = std::move(requests);
    } else {
      body["contents"] = {{{"role", "user"}, {"parts", {{{"text", in.texts[0]}}}}}};
      if (!o_.text.system_prompt.empty())
        body["systemInstruction"] = {{"parts", {{{"text", o_.text.system_prompt}}}}};
      body["generationConfig"] = {{"maxOutputTokens", o_.text.max_tokens}};
    }
    return {"POST", target_, {{"Content-Type", "application/json"}, {"x-goog-api-key", key_->value()}}, body.dump()};
  }

  std::optional<call_output> parse(const http::result& r, size_t n, std::string& error) const override {
    return read_json(r.body, error, [&](const nlohmann::json& j) -> std::optional<call_output> {
      call_output out;
      if (embedding()) {
        std::vector<std::vector<float>> vectors;
        for (const auto& e : j.at("embeddings"))
          vectors.push_back(e.at("values").get<std::vector<float>>());
        if (!flatten_embeddings(vectors, n, out, error))
          return std::nullopt;
      } else {
        std::string text;
        for (const auto& part : j.at("candidates").at(0).at("content").at("parts"))
          text += part.value("text", "");
        out.texts.push_back(std::move(text));
        const auto& usage = j.value("usageMetadata", nlohmann::json::object());
        out.tokens_in = usage.value("promptTokenCount", 0);
        out.tokens_out = usage.value("candidatesTokenCount", 0);
      }
      return out;
    });
  }

private:
  config::model_config cfg_;
  options o_;
  std::shared_ptr<credential> key_;
  std::string target_;
};

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  if (cfg.endpoint.empty())
    return prepare_remote(cfg, metrics, nullptr); // reports the missing endpoint
  return prepare_remote(cfg, metrics, std::make_shared<gemini_codec>(cfg, o), o.model);
}

} // namespace

REGISTER_GATEWAY("google-ai", make_factory<options>({"embedding", "text_generation"}, option_block(), prepare));

} // namespace inflow::gateways::google_ai
