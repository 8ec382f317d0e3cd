#include "events/trace.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace inflow::events {

namespace {

bool lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

} // namespace

std::optional<trace_parent> parse_traceparent(std::string_view h) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters. A later
  // version may append fields after another "-"; version 00 may not.
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-')
    return std::nullopt;
  auto version = h.substr(0, 2), trace_id = h.substr(3, 32), parent_id = h.substr(36, 16), flags = h.substr(53, 2);
  if (!lower_hex(version) || version == "ff" || (version == "00" && h.size() != 55) ||
      (h.size() > 55 && h[55] != '-'))
    return std::nullopt;
  if (!lower_hex(trace_id) || !lower_hex(parent_id) || !lower_hex(flags) || all_zero(trace_id) ||
      all_zero(parent_id))
    return std::nullopt;
  return trace_parent{std::string(trace_id), std::string(parent_id), std::string(flags)};
}

std::string child_traceparent(const trace_parent& parent, uint64_t span) {
  return fmt::format("00-{}-{:016x}-{}", parent.trace_id, span, parent.flags);
}

uint64_t record_span_id(const trace_parent& parent, int32_t partition, int64_t offset) {
  // FNV-1a over the parent span and the record's place, then a final mix (splitmix64).
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(parent.trace_id);
  mix(parent.parent_id);
  mix(fmt::format("{}:{}", partition, offset));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h ? h : 1;
}

} // namespace inflow::events
