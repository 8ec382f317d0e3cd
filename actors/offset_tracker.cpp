#include "actors/offset_tracker.hpp"

#include <algorithm>

namespace inflow::actors {

bool offset_tracker::add(int64_t offset) {
  if (offset <= last_added_)
    return false;
  window_.push_back({offset, false});
  last_added_ = offset;
  ++in_flight_;
  return true;
}

bool offset_tracker::mark_done(int64_t offset) {
  auto it = std::lower_bound(window_.begin(), window_.end(), offset,
                             [](const entry& e, int64_t o) { return e.offset < o; });
  if (it == window_.end() || it->offset != offset || it->done)
    return false;
  it->done = true;
  --in_flight_;
  while (!window_.empty() && window_.front().done) {
    committable_ = window_.front().offset + 1;
    window_.pop_front();
  }
  return true;
}

} // namespace inflow::actors
