// The `http` provider: any JSON endpoint. `request_template` is the body, in
// which `{{rows}}` becomes the batch as an array of arrays, `{{features}}` the
// feature names and `{{id}}` the call id; `response_pointer` says where the
// scores are in the answer. The api key, if any, goes in `auth_header`.

#include "events/json_text.hpp"
#include "gateways/common/provider_support.hpp"
#include "gateways/common/remote_gateway.hpp"

namespace inflow::gateways::http_json {

namespace {

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
}

struct options {
  std::string request_template;
  std::string response_pointer;
  std::string auth_header;
  std::string auth_scheme;
  credential_options credentials;
};

const config::option_block<options>& option_block() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("request_template", &options::request_template, std::nullopt,
            "The JSON body; `{{rows}}` becomes the rows (array of arrays), `{{features}}` their names, `{{id}}` the "
            "call id (a JSON string: write it without quotes).")
      .text("response_pointer", &options::response_pointer, "",
            "JSON pointer to the array of scores in the response, e.g. /predictions; empty: the whole response.")
      .text("auth_header", &options::auth_header, "Authorization", "Header that carries the api key.")
      .text("auth_scheme", &options::auth_scheme, "Bearer", "Prefix of the api key in that header; `\"\"` for none.")
      .include(&options::credentials, credential_options_block());
  return block;
}

class template_codec : public row_codec {
public:
  template_codec(const config::model_config& cfg, const options& o, std::string target, std::shared_ptr<credential> key)
    : target_(std::move(target)), template_(o.request_template), pointer_(o.response_pointer),
      key_(std::move(key)), auth_header_(o.auth_header), auth_scheme_(o.auth_scheme) {
    features_ = "[";
    for (size_t i = 0; i < cfg.input.size(); ++i) {
      if (i)
        features_ += ',';
      events::append_quoted(features_, cfg.input[i]);
    }
    features_ += ']';
  }

  http::call build_rows(const float* rows, size_t n, size_t width, uint64_t batch_id) const override {
    std::string body = template_;
    replace_all(body, "{{features}}", features_);
    replace_all(body, "{{id}}", events::json_quoted("b" + std::to_string(batch_id)));
    replace_all(body, "{{rows}}", rows_json(rows, n, width));
    http::call call{"POST", target_, {{"Content-Type", "application/json"}}, std::move(body)};
    if (auto key = key_->value(); !key.empty())
      call.headers.emplace_back(auth_header_, auth_scheme_.empty() ? key : auth_scheme_ + " " + key);
    return call;
  }

  std::optional<std::vector<float>> parse_scores(const http::result& r, size_t n, std::string& error) const override {
    return scores_at(r.body, pointer_, n, error);
  }

  renewable* renewable_credential() const override { return key_.get(); }

private:
  std::string target_;
  std::string template_;
  std::string pointer_;
  std::string features_;
  std::shared_ptr<credential> key_;
  std::string auth_header_;
  std::string auth_scheme_;
};

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  if (o.request_template.find("{{rows}}") == std::string::npos)
    throw std::runtime_error("provider http needs `request_template:` with {{rows}} where the rows go, "
                             "e.g. '{\"instances\": {{rows}}}'");
  // Placeholders become JSON values, quotes included: "{{id}}" would send ""b1"".
  for (std::string placeholder : {"{{id}}", "{{rows}}", "{{features}}"})
    if (o.request_template.find('"' + placeholder + '"') != std::string::npos)
      throw std::runtime_error("request_template: write " + placeholder +
                               " without quotes around it: it becomes a JSON value, with its own quotes if a string");
  auto target = cfg.endpoint.empty() ? std::string() : http::parse_url(cfg.endpoint).target;
  return prepare_remote(cfg, metrics,
                        std::make_shared<template_codec>(cfg, o, target, make_credential(cfg, o.credentials, "", false)));
}

} // namespace

REGISTER_GATEWAY("http", make_factory<options>({"classification", "regression"}, option_block(), prepare));

} // namespace inflow::gateways::http_json
