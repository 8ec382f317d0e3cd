// The `azure-ml` provider: an Azure Machine Learning online endpoint (`/score`)
// with its key as a bearer token; `deployment` pins the deployment. Body in
// the MLflow `input_data` split format, answer a list of scores (or
// {"predictions": [...]}).

#include "gateways/common/provider_support.hpp"
#include "gateways/common/remote_gateway.hpp"
#include "events/json_text.hpp"

namespace inflow::gateways::azure_ml {

namespace {

class score_codec : public row_codec {
public:
  score_codec(std::string target, std::shared_ptr<credential> key, std::string deployment,
              const std::vector<std::string>& features)
    : target_(std::move(target)), key_(std::move(key)), deployment_(std::move(deployment)) {
    columns_ = "[";
    for (size_t i = 0; i < features.size(); ++i) {
      if (i)
        columns_ += ',';
      events::append_quoted(columns_, features[i]);
    }
    columns_ += ']';
  }

  http::call build_rows(const float* rows, size_t n, size_t width, uint64_t) const override {
    std::string index = "[";
    for (size_t i = 0; i < n; ++i)
      index += (i ? "," : "") + std::to_string(i);
    index += ']';
    http::call c{"POST",
                 target_,
                 {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + key_->value()}},
                 R"({"input_data":{"columns":)" + columns_ + R"(,"index":)" + index +
                   R"(,"data":)" + rows_json(rows, n, width) + "}}"};
    if (!deployment_.empty())
      c.headers.emplace_back("azureml-model-deployment", deployment_);
    return c;
  }

  std::optional<std::vector<float>> parse_scores(const http::result& r, size_t n, std::string& error) const override {
    // Scoring scripts answer either a bare list or {"predictions": [...]}.
    if (auto scores = scores_at(r.body, "", n, error))
      return scores;
    return scores_at(r.body, "/predictions", n, error);
  }

  renewable* renewable_credential() const override { return key_.get(); }

private:
  std::string target_;
  std::shared_ptr<credential> key_;
  std::string deployment_;
  std::string columns_;
};

struct options {
  std::string deployment;
  credential_options credentials;
};

const config::option_block<options>& option_block() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("deployment", &options::deployment, "",
            "The deployment to route to (azureml-model-deployment header); empty: the endpoint's traffic split.")
      .include(&options::credentials, credential_options_block());
  return block;
}

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  auto key = make_credential(cfg, o.credentials, "https://ml.azure.com/.default", true);
  auto target = cfg.endpoint.empty() ? std::string() : http::parse_url(cfg.endpoint).target;
  return prepare_remote(cfg, metrics, std::make_shared<score_codec>(target, key, o.deployment, cfg.input),
                        o.deployment);
}

} // namespace

REGISTER_GATEWAY("azure-ml", make_factory<options>({"classification", "regression"}, option_block(), prepare));

} // namespace inflow::gateways::azure_ml
