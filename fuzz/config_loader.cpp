// The config loader: any YAML a user (or a --set) may hand it, checked without crashing.
#include "config/config.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto result = inflow::config::load_text(std::string(reinterpret_cast<const char*>(data), size));
  for (const auto& e : result.errors)
    (void)inflow::config::format_error("fuzz.yaml", e);
  return 0;
}
