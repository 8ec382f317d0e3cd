// The `kserve` provider: Open Inference Protocol v2 REST (KServe, Triton,
// `inflow serve`). A whole batch travels as one tensor of shape [n, features].
// With `api_key`, each call carries it as a bearer token (`inflow serve --token`,
// or a KServe endpoint behind an authenticating proxy).

#include "gateways/common/provider_support.hpp"
#include "gateways/common/remote_gateway.hpp"
#include "gateways/kserve/protocol.hpp"

namespace inflow::gateways::kserve {

namespace {

class v2_codec : public row_codec {
public:
  v2_codec(std::string target, std::shared_ptr<credential> token) : target_(std::move(target)), token_(std::move(token)) {}

  http::call build_rows(const float* rows, size_t n, size_t width, uint64_t batch_id) const override {
    http::call call{"POST", target_, {{"Content-Type", "application/json"}},
                    encode_infer_request("b" + std::to_string(batch_id), rows, n, width)};
    if (auto token = token_->value(); !token.empty())
      call.headers.emplace_back("Authorization", "Bearer " + token);
    return call;
  }

  std::optional<std::vector<float>> parse_scores(const http::result& r, size_t n, std::string& error) const override {
    return decode_infer_response(r.body, n, error);
  }

  renewable* renewable_credential() const override { return token_.get(); }

private:
  std::string target_;
  std::shared_ptr<credential> token_;
};

prepared_model prepare(const config::model_config& cfg, const credential_options& o, metrics::registry& metrics) {
  auto target = cfg.endpoint.empty() ? std::string() : http::parse_url(cfg.endpoint).target;
  return prepare_remote(cfg, metrics, std::make_shared<v2_codec>(target, make_credential(cfg, o, "", false)));
}

} // namespace

REGISTER_GATEWAY("kserve", make_factory<credential_options>({"classification", "regression"},
                                                            credential_options_block(), prepare));

} // namespace inflow::gateways::kserve
