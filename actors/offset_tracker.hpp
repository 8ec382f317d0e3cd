#pragma once
// Which offsets of one partition are finished, so that the committed offset is
// always the highest one below which every record has its final outcome,
// whatever order the outcomes arrive in. Owned by one partition actor.

#include <cstdint>
#include <cstddef>
#include <deque>

namespace inflow::actors {

class offset_tracker {
public:
  /// Registers a consumed offset; offsets must increase (gaps are fine).
  /// Returns false (and ignores it) for an offset not above the last one.
  bool add(int64_t offset);

  /// Marks a registered offset finished; false if it is unknown or already done.
  bool mark_done(int64_t offset);

  /// The offset to commit (the next one to consume), or -1 before any record.
  int64_t committable() const { return committable_; }

  /// Records registered but not finished.
  size_t in_flight() const { return in_flight_; }
  int64_t last_added() const { return last_added_; }

private:
  struct entry {
    int64_t offset;
    bool done;
  };
  std::deque<entry> window_; ///< from the oldest unfinished offset on
  int64_t committable_ = -1;
  int64_t last_added_ = -1;
  size_t in_flight_ = 0;
};

} // namespace inflow::actors
