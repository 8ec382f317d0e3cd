// The `sagemaker` provider: InvokeEndpoint on the SageMaker runtime, signed
// with AWS SigV4. The batch travels as CSV lines (the built-in XGBoost
// container's format) or as JSON {"instances": rows}; answers are CSV/newline
// separated scores or JSON ({"predictions": [...]} or a list).

#include "gateways/common/aws.hpp"
#include "gateways/common/provider_support.hpp"
#include "gateways/common/remote_gateway.hpp"

#include <fmt/format.h>

#include <charconv>

namespace inflow::gateways::sagemaker {

namespace {

struct options {
  std::string content_type;
  aws::options aws;
};

const config::option_block<options>& option_block() {
  using types = std::vector<std::pair<std::string, std::string>>;
  static const auto block =
    config::option_block<options>("models.*")
      .choice("content_type", &options::content_type,
              types{{"text/csv", "text/csv"}, {"application/json", "application/json"}}, "text/csv",
              "How rows travel: CSV lines, or JSON {\"instances\": rows}.")
      .include(&options::aws, aws::option_block());
  return block;
}

class invoke_codec : public row_codec {
public:
  invoke_codec(http::url origin, std::shared_ptr<aws::credential_chain> creds, std::string region, std::string content_type)
    : origin_(std::move(origin)), creds_(std::move(creds)), region_(std::move(region)),
      content_type_(std::move(content_type)) {}

  renewable* renewable_credential() const override { return creds_.get(); }

  http::call build_rows(const float* rows, size_t n, size_t width, uint64_t) const override {
    std::string body;
    if (content_type_ == "text/csv") {
      for (size_t r = 0; r < n; ++r) {
        for (size_t k = 0; k < width; ++k) {
          if (k)
            body += ',';
          fmt::format_to(std::back_inserter(body), "{}", rows[r * width + k]);
        }
        body += '\n';
      }
    } else {
      body = R"({"instances":)" + rows_json(rows, n, width) + "}";
    }
    http::call c{"POST", origin_.target, {{"content-type", content_type_}, {"accept", "application/json"}}, body};
    aws::sign(c, origin_, creds_->current(), region_, "sagemaker");
    return c;
  }

  bool accepts(const std::string& type) const override {
    return type.empty() || type.find("json") != std::string::npos || type.find("csv") != std::string::npos ||
           type.find("text/plain") != std::string::npos;
  }

  std::optional<std::vector<float>> parse_scores(const http::result& r, size_t n, std::string& error) const override {
    auto body = std::string_view(r.body);
    if (body.find_first_of("[{") != std::string_view::npos) {
      if (auto scores = scores_at(body, "/predictions", n, error))
        return scores;
      return scores_at(body, "", n, error);
    }
    std::vector<float> out; // CSV or one score per line
    while (!body.empty()) {
      auto end = body.find_first_of(",\n");
      auto item = body.substr(0, end);
      body.remove_prefix(end == std::string_view::npos ? body.size() : end + 1);
      while (!item.empty() && (item.back() == '\r' || item.back() == ' '))
        item.remove_suffix(1);
      if (item.empty())
        continue;
      float v = 0;
      auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (ec != std::errc{} || p != item.data() + item.size()) {
        error = fmt::format("response item '{}' is not a number", item.substr(0, 40));
        return std::nullopt;
      }
      out.push_back(v);
    }
    if (out.size() != n) {
      error = fmt::format("response has {} scores for {} rows", out.size(), n);
      return std::nullopt;
    }
    return out;
  }

private:
  http::url origin_;
  std::shared_ptr<aws::credential_chain> creds_;
  std::string region_;
  std::string content_type_;
};

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  if (cfg.endpoint.empty())
    return prepare_remote(cfg, metrics, nullptr); // reports the missing endpoint
  auto region = aws::region_of(o.aws, cfg.endpoint, "sagemaker");
  auto creds = std::make_shared<aws::credential_chain>(cfg.name, o.aws, region);
  return prepare_remote(cfg, metrics,
                        std::make_shared<invoke_codec>(http::parse_url(cfg.endpoint), creds, region, o.content_type));
}

} // namespace

REGISTER_GATEWAY("sagemaker", make_factory<options>({"classification", "regression"}, option_block(), prepare));

} // namespace inflow::gateways::sagemaker
