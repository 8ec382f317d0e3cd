// The record decoders (JSON, msgpack) and the feature extraction after them: any bytes a
// topic may hold. The first byte picks the format.
#include "events/decoder.hpp"
#include "events/features.hpp"

#include <cstddef>
#include <cstdint>

using namespace inflow::events;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  static const feature_map rows({"amount", "amount / amount_avg_30d", "channel == online", "mcc == 4829"});
  static const feature_map text = feature_map::text("{customer} wrote: {message} ({n})");
  // One decoder per format and map, reused as a partition reuses its own.
  static decoder decoders[4] = {{wire_format::json, rows.fields(), {}}, {wire_format::msgpack, rows.fields(), {}},
                                {wire_format::json, text.fields(), {}}, {wire_format::msgpack, text.fields(), {}}};
  const auto& map = data[0] & 2 ? text : rows;
  auto& d = decoders[data[0] & 3];
  std::vector<field_value> values;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (d.decode(bytes, values))
    return 0;
  record_identity identity;
  if (map.is_text()) {
    std::string rendered;
    (void)map.extract_text(values, rendered, identity);
  } else {
    std::vector<float> row(map.size());
    (void)map.extract(values, row.data(), identity);
  }
  return 0;
}
