#pragma once
// How a pipeline's input records are written and how much of them is read: owned by the
// config, used by the decoders (events/decoder.hpp).

#include <cstddef>
#include <cstdint>

namespace inflow::config {

enum class wire_format : uint8_t { json, msgpack, avro };

/// The defaults here are the options' defaults (pipelines.*.source.max_record_bytes, max_depth).
struct decoder_limits {
  size_t max_record_bytes = 64 * 1024;
  size_t max_depth = 32;
};

} // namespace inflow::config
