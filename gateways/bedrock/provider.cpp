// The `bedrock` provider: InvokeModel on the Bedrock runtime, signed with AWS
// SigV4, one record per call. Bodies by model family: Amazon Titan text
// embeddings (`amazon.titan-embed-*`) and Anthropic messages (`anthropic.*`).
// `endpoint` is the runtime URL, e.g. https://bedrock-runtime.us-east-1.amazonaws.com.

#include "gateways/common/aws.hpp"
#include "gateways/common/text_support.hpp"

#include <fmt/format.h>

namespace inflow::gateways::bedrock {

namespace {

struct options {
  std::string model;
  text_options text;
  aws::options aws;
};

const config::option_block<options>& option_block() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("model", &options::model, std::nullopt,
            "The Bedrock model id: amazon.titan-embed-… (embedding) or anthropic.… (text_generation).")
      .include(&options::text, text_generation_options())
      .include(&options::aws, aws::option_block());
  return block;
}

class invoke_codec : public codec {
public:
  invoke_codec(const config::model_config& cfg, const options& o, std::shared_ptr<aws::credential_chain> creds,
               std::string region)
    : o_(o), origin_(http::parse_url(cfg.endpoint)), creds_(std::move(creds)), region_(std::move(region)) {
    auto base = origin_.target;
    while (!base.empty() && base.back() == '/')
      base.pop_back();
    // The model id goes in the path encoded (`:` as %3A), as the AWS SDKs send it.
    target_ = fmt::format("{}/model/{}/invoke", base, sigv4::uri_encode(o.model, false));
  }

  renewable* renewable_credential() const override { return creds_.get(); }

  bool titan() const { return o_.model.rfind("amazon.titan-embed", 0) == 0; }
  size_t max_inputs_per_call() const override { return 1; }
  int64_t estimate_tokens(const call_input& in) const override {
    return estimate_text_tokens(in, titan() ? 0 : o_.text.max_tokens);
  }

  http::call build(const call_input& in, uint64_t) const override {
    nlohmann::json body;
    if (titan()) {
      body["inputText"] = in.texts[0];
    } else {
      body["anthropic_version"] = "bedrock-2023-05-31";
      body["max_tokens"] = o_.text.max_tokens;
      if (!o_.text.system_prompt.empty())
        body["system"] = o_.text.system_prompt;
      body["messages"] = {{{"role", "user"}, {"content", in.texts[0]}}};
    }
    http::call c{"POST", target_, {{"content-type", "application/json"}, {"accept", "application/json"}}, body.dump()};
    aws::sign(c, origin_, creds_->current(), region_, "bedrock");
    return c;
  }

  std::optional<call_output> parse(const http::result& r, size_t n, std::string& error) const override {
    return read_json(r.body, error, [&](const nlohmann::json& j) -> std::optional<call_output> {
      call_output out;
      if (titan()) {
        if (!flatten_embeddings({j.at("embedding").get<std::vector<float>>()}, n, out, error))
          return std::nullopt;
        out.tokens_in = j.value("inputTextTokenCount", 0);
      } else {
        std::string text;
        for (const auto& part : j.at("content"))
          if (part.value("type", "") == "text")
            text += part.at("text").get<std::string>();
        out.texts.push_back(std::move(text));
        const auto& usage = j.value("usage", nlohmann::json::object());
        out.tokens_in = usage.value("input_tokens", 0);
        out.tokens_out = usage.value("output_tokens", 0);
      }
      return out;
    });
  }

private:
  options o_;
  http::url origin_;
  std::shared_ptr<aws::credential_chain> creds_;
  std::string region_;
  std::string target_;
};

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  if (cfg.endpoint.empty())
    return prepare_remote(cfg, metrics, nullptr); // reports the missing endpoint
  bool titan = o.model.rfind("amazon.titan-embed", 0) == 0;
  bool anthropic = o.model.rfind("anthropic.", 0) == 0;
  if (!titan && !anthropic)
    throw std::runtime_error("bedrock `model:` must be an Amazon Titan embeddings model (amazon.titan-embed-…) or an "
                             "Anthropic model (anthropic.…)");
  if ((titan && cfg.task != "embedding") || (anthropic && cfg.task != "text_generation"))
    throw std::runtime_error(fmt::format("bedrock model {} does not do {}", o.model, cfg.task));
  auto region = aws::region_of(o.aws, cfg.endpoint, "bedrock-runtime");
  auto creds = std::make_shared<aws::credential_chain>(cfg.name, o.aws, region);
  return prepare_remote(cfg, metrics, std::make_shared<invoke_codec>(cfg, o, creds, region), o.model);
}

} // namespace

REGISTER_GATEWAY("bedrock", make_factory<options>({"embedding", "text_generation"}, option_block(), prepare));

} // namespace inflow::gateways::bedrock
