#pragma once
// The Open Inference Protocol v2 (KServe, Triton) REST bodies for a batch of
// FP32 rows in and one FP32 score per row out. Used by the `kserve` gateway
// (client side) and by `inflow serve` (server side).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace inflow::gateways::kserve {

/// `{"id":..,"inputs":[{"name":"input-0","shape":[n,width],"datatype":"FP32","data":[..]}]}`
std::string encode_infer_request(const std::string& id, const float* rows, size_t n, size_t width);

struct infer_request {
  std::string id;
  std::vector<float> rows;
  size_t n = 0;
  size_t width = 0;
};
/// Parses a request with one FP32 (or FP64/INT) input of shape [n, width]
/// (or [width] for a single row); data flat or nested. Sets `error` on failure.
std::optional<infer_request> decode_infer_request(std::string_view body, std::string& error);

std::string encode_infer_response(const std::string& model, const std::string& version, const std::string& id,
                                  const std::vector<float>& scores);
/// The first output's data; exactly `expected_rows` numbers or an error.
std::optional<std::vector<float>> decode_infer_response(std::string_view body, size_t expected_rows,
                                                        std::string& error);

} // namespace inflow::gateways::kserve
