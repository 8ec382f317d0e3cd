#pragma once
// The latest alerts of a node, for the status API and the demo. Thread-safe.

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace inflow::actors {

class recent_alerts {
public:
  explicit recent_alerts(size_t capacity = 50) : capacity_(capacity) {}

  void add(std::string alert_json) {
    std::lock_guard<std::mutex> guard(mutex_);
    alerts_.push_back(std::move(alert_json));
    if (alerts_.size() > capacity_)
      alerts_.pop_front();
    ++total_;
  }

  /// The alerts added after the first `seen` ones (at most capacity), and the new total.
  std::vector<std::string> since(uint64_t& seen) const {
    std::lock_guard<std::mutex> guard(mutex_);
    size_t fresh = static_cast<size_t>(std::min<uint64_t>(total_ - seen, alerts_.size()));
    seen = total_;
    return {alerts_.end() - static_cast<std::ptrdiff_t>(fresh), alerts_.end()};
  }

private:
  mutable std::mutex mutex_;
  size_t capacity_;
  std::deque<std::string> alerts_;
  uint64_t total_ = 0;
};

} // namespace inflow::actors
