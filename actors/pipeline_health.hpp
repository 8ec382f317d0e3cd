#pragma once
// Whether a pipeline can still make progress, as /readyz reports it. Written by the
// partition actors and the consumer thread, read by the admin API's thread.

#include <atomic>
#include <mutex>
#include <string>

namespace inflow::actors {

class pipeline_health {
public:
  /// The pipeline stops for good: intake pauses and nothing later is committed. The first
  /// reason stays; true for the call that stopped it.
  bool stop(const std::string& reason) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (stopped_.exchange(true))
      return false;
    stop_reason_ = reason;
    return true;
  }
  bool stopped() const { return stopped_.load(); }

  /// Stops it as stop() does, and for a cause only a restart (or the operator) cures: the node
  /// exits 70 with the reason (a transactional id another node uses, say).
  void fail(const std::string& reason) {
    failed_ = true;
    stop(reason);
  }
  bool failed() const { return failed_.load(); }

  /// Partitions that have work and made no progress for a while (empty: none); from the consumer thread.
  void set_stalled(std::string description) {
    std::lock_guard<std::mutex> guard(mutex_);
    stalled_ = std::move(description);
  }

  /// Why the pipeline is not making progress, or empty when it is.
  std::string problem() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return stopped_ ? "stopped: " + stop_reason_ : stalled_;
  }

private:
  std::atomic<bool> stopped_{false};
  std::atomic<bool> failed_{false};
  mutable std::mutex mutex_;
  std::string stop_reason_;
  std::string stalled_;
};

} // namespace inflow::actors
