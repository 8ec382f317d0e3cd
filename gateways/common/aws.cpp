#include "gateways/common/aws.hpp"

#include <fmt/format.h>

namespace inflow::gateways::aws {

std::string region_of(const config::model_config& cfg, const std::string& service_prefix) {
  if (!cfg.region.empty())
    return cfg.region;
  auto host = http::parse_url(cfg.endpoint).host;
  auto at = host.find(service_prefix + ".");
  if (at != std::string::npos) {
    auto start = at + service_prefix.size() + 1;
    auto end = host.find('.', start);
    if (end != std::string::npos && end > start)
      return host.substr(start, end - start);
  }
  throw std::runtime_error(fmt::format("cannot tell the AWS region from {}: set `region:`", host));
}

void sign(http::call& c, const http::url& origin, const sigv4::credentials& creds, const std::string& region,
          const std::string& service) {
  auto date = sigv4::amz_date_now();
  sigv4::request r{c.method, c.target.substr(0, c.target.find('?')), {}, c.headers, c.body};
  r.headers.emplace_back("host", http::host_header(origin));
  r.headers.emplace_back("x-amz-date", date);
  if (!creds.session_token.empty())
    r.headers.emplace_back("x-amz-security-token", creds.session_token);
  auto s = sigv4::sign(r, creds, region, service, date);
  c.headers.emplace_back("x-amz-date", date);
  if (!creds.session_token.empty())
    c.headers.emplace_back("x-amz-security-token", creds.session_token);
  c.headers.emplace_back("Authorization", s.authorization);
}

} // namespace inflow::gateways::aws
