// The cluster wire decoder: whatever a peer (or anyone reaching the cluster port) sends.
#include "cluster/wire.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  auto message = inflow::cluster::wire::decode(reinterpret_cast<const char*>(data), size, 1 << 20, error);
  if (message) // what decodes must encode again
    (void)inflow::cluster::wire::encode(*message);
  return 0;
}
