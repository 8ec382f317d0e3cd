#pragma once
// Makes a record fit the size limits Kafka applies to it: the producer's
// `message.max.bytes` and the topic's `max.message.bytes` both count the key, the
// value, the headers and the record batch around them.

#include "kafka/producer.hpp"

#include <string_view>
#include <vector>

namespace inflow::kafka {

/// Bytes a one-record batch takes besides its key, value and headers, with room to spare
/// (batch header 61, record framing up to ~25, each header's framing up to 10).
constexpr size_t record_overhead_bytes = 128;
constexpr size_t header_overhead_bytes = 10;

size_t record_bytes(std::string_view key, std::string_view value, const std::vector<header>& headers);

/// Cuts the value first, then the longest header values, then the key, until the record
/// takes at most `limit_bytes`; adds an `inflow.<part>.truncated_from_bytes` header for each
/// part it cut (counted too). False when even that cannot fit (the limit is below what the
/// header names alone take).
bool fit_record(std::string_view& key, std::string_view& value, std::vector<header>& headers, size_t limit_bytes);

} // namespace inflow::kafka
