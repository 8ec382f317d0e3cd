#pragma once
// The records of one partition that are consumed but not finished, in offset
// order, each with its entry (the partition actor's pending record). The
// committed offset is always the highest one below which every record has its
// final outcome, whatever order the outcomes arrive in. Owned by one actor.
//
// A ring buffer rather than a hash map: no allocation per record, and the
// lookup of an offset is an index when offsets are contiguous (they usually
// are) and a binary search over the window when they are not.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace inflow::actors {

template <class Entry>
class offset_window {
public:
  /// Registers a consumed offset and returns its (default) entry. Offsets must
  /// increase (gaps are fine); nullptr (and nothing registered) otherwise.
  Entry* add(int64_t offset) {
    if (offset <= last_added_)
      return nullptr;
    if (size_ == ring_.size())
      grow();
    auto& s = at(size_++);
    s.offset = offset;
    s.done = false;
    last_added_ = offset;
    ++in_flight_;
    return &s.entry;
  }

  /// The entry of a registered offset that is not finished yet, or nullptr.
  Entry* find(int64_t offset) {
    auto* s = slot_of(offset);
    return s && !s->done ? &s->entry : nullptr;
  }

  /// Marks a registered offset finished and resets its entry; false if it is
  /// unknown or already done.
  bool mark_done(int64_t offset) {
    auto* s = slot_of(offset);
    if (!s || s->done)
      return false;
    s->done = true;
    s->entry = Entry{}; // release what it holds now, not when the window moves past it
    --in_flight_;
    while (size_ > 0 && at(0).done) {
      committable_ = at(0).offset + 1;
      head_ = (head_ + 1) & (ring_.size() - 1);
      --size_;
    }
    return true;
  }

  /// The offset to commit (the next one to consume), or -1 before any record.
  int64_t committable() const { return committable_; }
  /// Records registered but not finished.
  size_t in_flight() const { return in_flight_; }

private:
  struct slot {
    int64_t offset = 0;
    bool done = true;
    Entry entry{};
  };

  slot& at(size_t i) { return ring_[(head_ + i) & (ring_.size() - 1)]; }

  slot* slot_of(int64_t offset) {
    if (size_ == 0 || offset < at(0).offset || offset > last_added_)
      return nullptr;
    auto guess = static_cast<size_t>(offset - at(0).offset);
    if (guess < size_ && at(guess).offset == offset)
      return &at(guess);
    size_t lo = 0, hi = std::min(guess, size_); // offsets are at least one apart
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (at(mid).offset < offset)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo < size_ && at(lo).offset == offset ? &at(lo) : nullptr;
  }

  /// Doubles the capacity (a power of two, so that indices wrap with a mask).
  void grow() {
    std::vector<slot> bigger(ring_.empty() ? 64 : 2 * ring_.size());
    for (size_t i = 0; i < size_; ++i)
      bigger[i] = std::move(at(i));
    ring_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<slot> ring_;
  size_t head_ = 0;
  size_t size_ = 0;
  int64_t committable_ = -1;
  int64_t last_added_ = -1;
  size_t in_flight_ = 0;
};

} // namespace inflow::actors
