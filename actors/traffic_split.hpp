#pragma once
// Splits a pipeline's records between its model's versions (`models.<name>.traffic`) by key:
// a key always lands on the same version, so a card is scored by one version all along and
// an A/B comparison is between groups of keys, not between a key's own records.

#include <cstdint>
#include <string_view>
#include <vector>

namespace inflow::actors {

class traffic_split {
public:
  /// One weight per version, in order; any positive total.
  explicit traffic_split(const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights)
      total += w;
    double sum = 0;
    for (size_t i = 0; i + 1 < weights.size(); ++i) {
      sum += weights[i];
      ends_.push_back(static_cast<uint64_t>(sum / total * 18446744073709551615.0L));
    }
  }

  /// The version of a key: where its hash falls among the versions' cumulative shares.
  size_t version_of(std::string_view key) const {
    if (ends_.empty())
      return 0;
    const uint64_t h = hash(key);
    size_t i = 0;
    while (i < ends_.size() && h >= ends_[i])
      ++i;
    return i;
  }

  /// FNV-1a, then splitmix64's finalizer: keys that differ in a digit spread over the whole range.
  static uint64_t hash(std::string_view key) {
    uint64_t h = 14695981039346656037ULL;
    for (unsigned char c : key)
      h = (h ^ c) * 1099511628211ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
  }

private:
  std::vector<uint64_t> ends_; ///< the hash at which each version but the last ends
};

} // namespace inflow::actors
