#pragma once
// AWS Signature Version 4 for requests to AWS services (Bedrock, SageMaker).

#include <string>
#include <utility>
#include <vector>

namespace inflow::gateways::sigv4 {

struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token; ///< empty unless temporary credentials
};

using header_list = std::vector<std::pair<std::string, std::string>>;

struct request {
  std::string method;
  std::string path;  ///< as sent on the request line, before encoding for the signature
  header_list query; ///< decoded names and values
  header_list headers; ///< must include host and x-amz-date
  std::string payload;
};

struct signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature_hex;
  std::string authorization; ///< the Authorization header value
};

/// `amz_date` is `YYYYMMDDTHHMMSSZ`, the same as the request's x-amz-date.
signature sign(const request& r, const credentials& c, const std::string& region, const std::string& service,
               const std::string& amz_date);

/// The current time as x-amz-date wants it.
std::string amz_date_now();
/// Lower-case hex SHA-256.
std::string sha256_hex(const std::string& data);
/// RFC 3986 percent-encoding of everything but unreserved characters (and '/' when asked).
std::string uri_encode(const std::string& text, bool keep_slash);

} // namespace inflow::gateways::sigv4
