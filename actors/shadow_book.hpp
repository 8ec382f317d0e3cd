#pragma once
// Pairs a record's live answer with its shadow's (`models.<name>.shadow`), whichever arrives
// first, so that they can be compared. It never holds a record back: the live outcome is written
// as it comes, and an entry whose other half never comes (a failed shadow call, a dead letter)
// is forgotten, or pushed out by the oldest-first bound.

#include "events/features.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <utility>

namespace inflow::actors {

class shadow_book {
public:
  /// What the live version decided for a record.
  struct live_answer {
    float score = 0;
    bool alert = false;
    uint16_t route = 0; ///< which version answered
    events::record_identity identity;
  };
  struct pair {
    live_answer live;
    float shadow = 0;
  };

  explicit shadow_book(size_t capacity) : capacity_(capacity) {}

  /// The pair once both halves are in (and the entry is gone); nullopt while one is missing.
  std::optional<pair> add_live(int64_t offset, live_answer live) {
    auto& e = entry(offset);
    e.live = std::move(live);
    return take_if_complete(offset, e);
  }
  std::optional<pair> add_shadow(int64_t offset, float score) {
    auto& e = entry(offset);
    e.shadow = score;
    return take_if_complete(offset, e);
  }
  /// One half will never come; true if the other was there.
  bool forget(int64_t offset) { return entries_.erase(offset) > 0; }

  /// Entries pushed out by the bound before their other half came, since the last call.
  uint64_t take_evicted() { return std::exchange(evicted_, 0); }
  size_t size() const { return entries_.size(); }

private:
  struct halves {
    std::optional<live_answer> live;
    std::optional<float> shadow;
  };

  halves& entry(int64_t offset) {
    if (entries_.size() >= capacity_ && !entries_.count(offset)) {
      entries_.erase(entries_.begin()); // the oldest offset: its other half is the least likely to come
      ++evicted_;
    }
    return entries_[offset];
  }

  std::optional<pair> take_if_complete(int64_t offset, halves& e) {
    if (!e.live || !e.shadow)
      return std::nullopt;
    pair out{std::move(*e.live), *e.shadow};
    entries_.erase(offset);
    return out;
  }

  size_t capacity_;
  std::map<int64_t, halves> entries_;
  uint64_t evicted_ = 0;
};

} // namespace inflow::actors
