#pragma once
// Prometheus metrics: counters, gauges and histograms updated lock-free from
// any thread, rendered in the text exposition format. Components own their
// metrics through small probe structs (see actors/probes.hpp).

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace inflow::metrics {

class counter {
public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

class gauge {
public:
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<int64_t> value_{0};
};

/// A gauge that is not a count: a ratio, an index (drift's PSI).
class real_gauge {
public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0};
};

class histogram {
public:
  /// `bounds` are the upper bounds of the buckets, ascending (+Inf is implied).
  explicit histogram(std::vector<double> bounds);
  void observe(double v);
  /// Many values at once: one atomic update per bucket touched, not three per
  /// value (actors on several threads share a histogram).
  void observe_all(const std::vector<double>& values);

  struct snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> counts; ///< per bucket, not cumulative; last is +Inf
    uint64_t count = 0;
    double sum = 0;
    /// Estimate of the q-quantile (0..1) by linear interpolation in its bucket.
    double quantile(double q) const;
    snapshot minus(const snapshot& earlier) const;
  };
  snapshot read() const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};

  size_t bucket_of(double v) const;
  void add_to_sum(double v);
};

/// Exponential buckets for latencies in seconds, 50 µs .. ~120 s, 25 % apart.
std::vector<double> latency_buckets();
/// Buckets for batch sizes 1 .. 65536.
std::vector<double> size_buckets();

class registry {
public:
  /// `labels` is the rendered label set, e.g. `pipeline="fraud"`. Asking again
  /// for the same name and labels returns the same metric.
  counter& get_counter(const std::string& name, const std::string& help, const std::string& labels = "");
  gauge& get_gauge(const std::string& name, const std::string& help, const std::string& labels = "");
  real_gauge& get_real_gauge(const std::string& name, const std::string& help, const std::string& labels = "");
  histogram& get_histogram(const std::string& name, const std::string& help, const std::string& labels,
                           std::vector<double> bounds);

  /// Prometheus text exposition format 0.0.4.
  std::string render() const;

private:
  enum class kind { counter, gauge, real_gauge, histogram };
  struct family {
    kind type;
    std::string help;
    std::map<std::string, std::shared_ptr<void>> series;
  };
  template <class T, class... Args>
  T& get(kind k, const std::string& name, const std::string& help, const std::string& labels, Args&&... args);

  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

/// `key="value"` with the value escaped as Prometheus requires.
std::string label(const std::string& key, const std::string& value);

} // namespace inflow::metrics
