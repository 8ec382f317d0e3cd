// The `cohere` provider: Cohere's Embed API v2 (`POST {endpoint}/embed`, a bearer
// key), up to 96 texts per call as the API allows. `endpoint` is the API base,
// e.g. https://api.cohere.com/v2. Float embeddings are asked for; `input_type`
// tells the model what the vectors are for (search_document by default).
//
// This folder is all it took to add the provider: its options, its protocol and
// its registration.

#include "gateways/common/provider_support.hpp"
#include "gateways/common/text_support.hpp"

#include <fmt/format.h>

namespace inflow::gateways::cohere {

namespace {

struct options {
  std::string model;
  std::string input_type;
  credential_options credentials;
};

const config::option_block<options>& option_block() {
  using types = std::vector<std::pair<std::string, std::string>>;
  static const auto block =
    config::option_block<options>("models.*")
      .text("model", &options::model, std::nullopt, "The embedding model, e.g. embed-english-v3.0.")
      .choice("input_type", &options::input_type,
              types{{"search_document", "search_document"}, {"search_query", "search_query"},
                    {"classification", "classification"}, {"clustering", "clustering"}},
              "search_document", "What the vectors are for; Cohere's v3 models embed each kind differently.")
      .include(&options::credentials, api_key_options());
  return block;
}

class embed_codec : public codec {
public:
  embed_codec(const config::model_config& cfg, const options& o)
    : o_(o), key_(make_credential(cfg, o.credentials, std::nullopt, true)) {
    auto base = http::parse_url(cfg.endpoint).target;
    while (!base.empty() && base.back() == '/')
      base.pop_back();
    target_ = base + "/embed";
  }

  size_t max_inputs_per_call() const override { return 96; }
  renewable* renewable_credential() const override { return key_.get(); }
  int64_t estimate_tokens(const call_input& in) const override { return estimate_text_tokens(in, 0); }

  http::call build(const call_input& in, uint64_t) const override {
    nlohmann::json body{{"model", o_.model},
                        {"texts", std::vector<std::string>(in.texts, in.texts + in.n)},
                        {"input_type", o_.input_type},
                        {"embedding_types", {"float"}}};
    return {"POST", target_,
            {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + key_->value()}}, body.dump()};
  }

  std::optional<call_output> parse(const http::result& r, size_t n, std::string& error) const override {
    return read_json(r.body, error, [&](const nlohmann::json& j) -> std::optional<call_output> {
      call_output out;
      if (!flatten_embeddings(j.at("embeddings").at("float").get<std::vector<std::vector<float>>>(), n, out, error))
        return std::nullopt;
      const auto& billed = j.value("meta", nlohmann::json::object()).value("billed_units", nlohmann::json::object());
      out.tokens_in = billed.value("input_tokens", 0);
      return out;
    });
  }

private:
  options o_;
  std::shared_ptr<credential> key_;
  std::string target_;
};

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  if (cfg.endpoint.empty())
    return prepare_remote(cfg, metrics, nullptr); // reports the missing endpoint
  return prepare_remote(cfg, metrics, std::make_shared<embed_codec>(cfg, o), o.model);
}

} // namespace

REGISTER_GATEWAY("cohere", make_factory<options>({"embedding"}, option_block(), prepare));

} // namespace inflow::gateways::cohere
