#pragma once
// What the AWS providers share: region from the endpoint, and signing a call.

#include "config/config.hpp"
#include "gateways/common/sigv4.hpp"
#include "http/client.hpp"

#include <string>

namespace inflow::gateways::aws {

/// `region` if set, else the label after `service_prefix` in the endpoint's host
/// (runtime.sagemaker.eu-west-1.amazonaws.com). Throws std::runtime_error.
std::string region_of(const config::model_config& cfg, const std::string& service_prefix);

/// Signs `c` (adds host, x-amz-date, x-amz-security-token and Authorization).
void sign(http::call& c, const http::url& origin, const sigv4::credentials& creds, const std::string& region,
          const std::string& service);

} // namespace inflow::gateways::aws
