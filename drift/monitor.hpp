#pragma once
// Drift of one model version in one pipeline: live distributions of its inputs and scores over a
// sliding window, compared with the reference profile (PSI per feature, KS for the score) each
// time a tenth of the window has passed. Crossing a threshold, or falling back under every one,
// is an event: logged, counted and handed to `emit` (the node writes it to the drift topic).
//
// Partitions count their records into a tally of their own and merge it once per batch, so the
// per-record work is a bin lookup per feature and the lock is taken once per batch.

#include "admin/metrics.hpp"
#include "drift/profile.hpp"

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace inflow::drift {

struct thresholds {
  double psi = 0.2; ///< per feature
  double ks = 0.1;  ///< for the score
};

/// Counts of a partition's records since its last merge.
struct tally {
  std::vector<std::vector<uint64_t>> inputs; ///< per feature, per bin
  std::vector<uint64_t> score;               ///< per bin
  uint64_t rows = 0;
  uint64_t scores = 0;
};

class monitor {
public:
  struct names {
    std::string pipeline, model, version;
  };
  monitor(profile reference, uint64_t window, thresholds limits, names who, metrics::registry& metrics,
          std::function<void(const std::string& json)> emit);

  tally make_tally() const;
  void count_inputs(const float* row, tally& t) const;
  void count_score(double score, tally& t) const;
  /// Adds `t` to the window and clears it; compares once a tenth of the window has passed.
  void merge(tally& t);
  /// Merge at least this often (rows), or a large batch would be a window of its own.
  uint64_t merge_every() const { return slice_rows_; }

  /// The latest comparison, for the status: PSI per feature, KS of the score, drifting or not.
  struct reading {
    std::vector<double> psi;
    double ks = 0;
    bool drifting = false;
    uint64_t compared = 0; ///< comparisons made so far
  };
  reading latest() const;
  const profile& reference() const { return reference_; }

private:
  void add(tally& into, const tally& from) const;
  std::string compare_locked(); ///< the event's JSON when the state changed, else empty

  const profile reference_;
  const uint64_t slice_rows_;
  const thresholds limits_;
  const names who_;
  std::function<void(const std::string&)> emit_;
  std::vector<metrics::real_gauge*> psi_gauges_;
  metrics::real_gauge& ks_gauge_;
  metrics::gauge& drifting_gauge_;
  metrics::counter& events_;

  mutable std::mutex mutex_;
  std::vector<tally> slices_; ///< the window: ten slices, the current one last filled
  size_t current_ = 0;
  size_t filled_ = 0; ///< slices completed, up to ten
  reading latest_;
};

} // namespace inflow::drift
