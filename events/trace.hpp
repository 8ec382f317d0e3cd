#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` an input record may
// carry in its Kafka headers. A record's processing is a child span of it; its alert, result and
// dead letter, and the model call made for it, carry that child span as their parent.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace inflow::events {

struct trace_parent {
  std::string trace_id;  ///< 32 lower-case hex digits, not all zero
  std::string parent_id; ///< 16 lower-case hex digits, not all zero
  std::string flags;     ///< 2 hex digits (01: sampled)
};

/// The header's context, or nullopt when it is not a valid traceparent (then nothing is carried).
std::optional<trace_parent> parse_traceparent(std::string_view header);

/// The traceparent of a span under `parent` with span id `span` (non-zero), version 00.
std::string child_traceparent(const trace_parent& parent, uint64_t span);

/// A record's span id: a hash of its parent span and its place in the topic, never zero, so that
/// every output of the record (and its replay after a crash) names the same span.
uint64_t record_span_id(const trace_parent& parent, int32_t partition, int64_t offset);

} // namespace inflow::events
