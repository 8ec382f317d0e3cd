// The KServe v2 parsers: requests `inflow serve` takes, responses the kserve gateway reads.
#include "gateways/kserve/protocol.hpp"

#include <cstddef>
#include <cstdint>

using namespace inflow::gateways::kserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string error;
  if (data[0] % 2) {
    (void)decode_infer_response(body, data[0] / 2, error);
  } else if (auto request = decode_infer_request(body, error)) {
    if (request->rows.size() != request->n * request->width) // what the server relies on
      __builtin_trap();
  }
  return 0;
}
