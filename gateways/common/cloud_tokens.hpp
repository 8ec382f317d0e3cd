#pragma once
// OAuth access tokens from the clouds' token services, each as its documented protocol:
// - Google: a service-account JSON key (an RS256-signed JWT exchanged at the key's
//   `token_uri`), or the metadata server of the machine (GCE_METADATA_HOST overrides
//   metadata.google.internal, as in Google's client libraries);
// - Microsoft Entra ID: client credentials (a client secret, at AZURE_AUTHORITY_HOST or
//   login.microsoftonline.com), or a managed identity (IDENTITY_ENDPOINT with
//   IDENTITY_HEADER where App Service or Container Apps set them, else the instance
//   metadata service, at AZURE_POD_IDENTITY_AUTHORITY_HOST or 169.254.169.254).

#include "config/config.hpp"
#include "gateways/common/credential.hpp"

#include <string>

namespace inflow::gateways::cloud_tokens {

using fetch_fn = refreshing<std::string>::fetch_fn;

/// The fetch for `auth` (google_service_account, google_metadata, azure_client_credentials or
/// azure_managed_identity), asking for `scope`. Throws std::runtime_error for another `auth`, or
/// when what it needs (a key file, a tenant) is missing.
fetch_fn fetcher(const credential_options& cfg, const std::string& scope);

/// `name=value&…`, each part percent-encoded.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

} // namespace inflow::gateways::cloud_tokens
