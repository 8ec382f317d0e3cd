// The `vertex-ai` provider: an endpoint's `:predict` method with a bearer token
// (an OAuth access token from `api_key: ${VERTEX_TOKEN}` or `api_key_file`).
// Body {"instances": [[features], ...]}, answer {"predictions": [score, ...]}.

#include "gateways/common/provider_support.hpp"
#include "gateways/common/remote_gateway.hpp"

namespace inflow::gateways::vertex_ai {

namespace {

class predict_codec : public row_codec {
public:
  predict_codec(std::string target, std::shared_ptr<credential> token)
    : target_(std::move(target)), token_(std::move(token)) {}

  http::call build_rows(const float* rows, size_t n, size_t width, uint64_t) const override {
    return {"POST",
            target_,
            {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + token_->value()}},
            R"({"instances":)" + rows_json(rows, n, width) + "}"};
  }

  std::optional<std::vector<float>> parse_scores(const http::result& r, size_t n, std::string& error) const override {
    return scores_at(r.body, "/predictions", n, error);
  }

  renewable* renewable_credential() const override { return token_.get(); }

private:
  std::string target_;
  std::shared_ptr<credential> token_;
};

prepared_model prepare(const config::model_config& cfg, const credential_options& o, metrics::registry& metrics) {
  auto token = make_credential(cfg, o, "https://www.googleapis.com/auth/cloud-platform", true);
  auto target = cfg.endpoint.empty() ? std::string() : http::parse_url(cfg.endpoint).target;
  if (!cfg.endpoint.empty() && target.find(":predict") == std::string::npos)
    throw std::runtime_error("vertex-ai endpoint must end in :predict (…/endpoints/ID:predict)");
  return prepare_remote(cfg, metrics, std::make_shared<predict_codec>(target, token));
}

} // namespace

REGISTER_GATEWAY("vertex-ai", make_factory<credential_options>({"classification", "regression"},
                                                               credential_options_block(), prepare));

} // namespace inflow::gateways::vertex_ai
