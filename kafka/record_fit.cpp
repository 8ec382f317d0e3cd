#include "kafka/record_fit.hpp"

#include <algorithm>

namespace inflow::kafka {

size_t record_bytes(std::string_view key, std::string_view value, const std::vector<header>& headers) {
  size_t n = record_overhead_bytes + key.size() + value.size();
  for (const auto& h : headers)
    n += header_overhead_bytes + h.name.size() + h.value.size();
  return n;
}

namespace {

/// Shortens `part` by what the record exceeds `limit` by (the note included), at most to empty.
void cut(std::string_view& part, const char* name, std::string_view key, std::string_view value,
         std::vector<header>& headers, size_t limit) {
  const size_t original = part.size();
  headers.push_back({std::string("inflow.") + name + ".truncated_from_bytes", std::to_string(original)});
  size_t size = record_bytes(key, value, headers);
  part = part.substr(0, size > limit ? original - std::min(original, size - limit) : original);
  if (part.size() == original)
    headers.pop_back(); // it fitted once the others were cut
}

} // namespace

bool fit_record(std::string_view& key, std::string_view& value, std::vector<header>& headers, size_t limit_bytes) {
  if (record_bytes(key, value, headers) <= limit_bytes)
    return true;
  cut(value, "value", key, value, headers, limit_bytes);
  // Header values next, longest first (the exception message, say): names stay.
  while (record_bytes(key, value, headers) > limit_bytes) {
    auto longest = std::max_element(headers.begin(), headers.end(),
                                    [](const header& a, const header& b) { return a.value.size() < b.value.size(); });
    if (longest == headers.end() || longest->value.size() <= 16)
      break;
    size_t over = record_bytes(key, value, headers) - limit_bytes;
    longest->value.resize(longest->value.size() - std::min(over, longest->value.size() - 16));
  }
  if (record_bytes(key, value, headers) > limit_bytes)
    cut(key, "key", key, value, headers, limit_bytes);
  return record_bytes(key, value, headers) <= limit_bytes;
}

} // namespace inflow::kafka
