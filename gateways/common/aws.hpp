#pragma once
// What the AWS providers share: region from the endpoint, credentials from the
// AWS SDKs' default chain, and signing a call.

#include "config/config.hpp"
#include "gateways/common/credential.hpp"
#include "gateways/common/sigv4.hpp"
#include "http/client.hpp"

#include <memory>
#include <string>

namespace inflow::gateways::aws {

/// The options every AWS provider takes: the region and the model's own keys.
struct options {
  std::string region;
  std::string aws_access_key_id; ///< secret
  std::string aws_secret_access_key; ///< secret
  std::string aws_session_token; ///< secret
  std::string aws_profile;
};
const config::option_block<options>& option_block();

/// The first of, as the AWS SDKs look: the model's `aws_access_key_id`/`aws_secret_access_key`;
/// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE and
/// AWS_ROLE_ARN, exchanged with STS AssumeRoleWithWebIdentity); the profile (`aws_profile`,
/// AWS_PROFILE or default) in the shared credentials and config files, with keys or a web
/// identity role; the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
/// _FULL_URI); the EC2 instance metadata service (IMDSv2, AWS_EC2_METADATA_SERVICE_ENDPOINT,
/// unless AWS_EC2_METADATA_DISABLED=true). Temporary credentials are fetched again before they
/// expire; files are read again when AWS refuses what they held.
class credential_chain : public renewable {
public:
  /// Throws std::runtime_error naming what was tried when no source gives credentials.
  credential_chain(const std::string& model, const options& cfg, const std::string& region);
  sigv4::credentials current() const { return creds_->value(); }
  bool refresh() override { return creds_->refresh(); }
  uint64_t generation() const override { return creds_->generation(); }
  const std::string& source() const { return source_; }

private:
  std::string source_;
  std::unique_ptr<refreshing<sigv4::credentials>> creds_;
};

/// `region` if set, else the label after `service_prefix` in the endpoint's host
/// (runtime.sagemaker.eu-west-1.amazonaws.com). Throws std::runtime_error.
std::string region_of(const options& cfg, const std::string& endpoint, const std::string& service_prefix);

/// Signs `c` (adds host, x-amz-date, x-amz-security-token and Authorization).
void sign(http::call& c, const http::url& origin, const sigv4::credentials& creds, const std::string& region,
          const std::string& service);

} // namespace inflow::gateways::aws
