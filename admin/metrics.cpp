#include "admin/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace inflow::metrics {

histogram::histogram(std::vector<double> bounds)
  : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i)
    counts_[i] = 0;
}

size_t histogram::bucket_of(double v) const {
  return static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
}

void histogram::add_to_sum(double v) {
  double old = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

void histogram::observe(double v) {
  counts_[bucket_of(v)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  add_to_sum(v);
}

void histogram::observe_all(const std::vector<double>& values) {
  if (values.empty())
    return;
  std::vector<uint64_t> counts(bounds_.size() + 1);
  double sum = 0;
  for (double v : values) {
    ++counts[bucket_of(v)];
    sum += v;
  }
  for (size_t i = 0; i < counts.size(); ++i)
    if (counts[i])
      counts_[i].fetch_add(counts[i], std::memory_order_relaxed);
  count_.fetch_add(values.size(), std::memory_order_relaxed);
  add_to_sum(sum);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  s.bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

histogram::snapshot histogram::snapshot::minus(const snapshot& earlier) const {
  snapshot d = *this;
  if (earlier.counts.size() != counts.size())
    return d;
  d.count = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    d.counts[i] = counts[i] - earlier.counts[i];
    d.count += d.counts[i];
  }
  d.sum = sum - earlier.sum;
  return d;
}

double histogram::snapshot::quantile(double q) const {
  if (count == 0)
    return 0;
  double rank = q * static_cast<double>(count);
  double seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (seen + static_cast<double>(counts[i]) >= rank && counts[i] > 0) {
      double lo = i == 0 ? 0 : bounds[i - 1];
      double hi = i < bounds.size() ? bounds[i] : bounds.back();
      return lo + (hi - lo) * (rank - seen) / static_cast<double>(counts[i]);
    }
    seen += static_cast<double>(counts[i]);
  }
  return bounds.back();
}

std::vector<double> latency_buckets() {
  std::vector<double> b;
  // 25 % apart: fine enough that a quantile read from them is within about 10 %.
  for (double v = 50e-6; v < 120; v *= 1.25)
    b.push_back(v);
  return b;
}

std::vector<double> size_buckets() {
  std::vector<double> b;
  for (double v = 1; v <= 65536; v *= 2)
    b.push_back(v);
  return b;
}

std::string label(const std::string& key, const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"')
      escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return fmt::format("{}=\"{}\"", key, escaped);
}

template <class T, class... Args>
T& registry::get(kind k, const std::string& name, const std::string& help, const std::string& labels,
                 Args&&... args) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto& fam = families_[name];
  if (fam.series.empty()) {
    fam.type = k;
    fam.help = help;
  } else if (fam.type != k) {
    throw std::logic_error("metric registered twice with different types: " + name);
  }
  auto& slot = fam.series[labels];
  if (!slot)
    slot = std::make_shared<T>(std::forward<Args>(args)...);
  return *static_cast<T*>(slot.get());
}

counter& registry::get_counter(const std::string& name, const std::string& help, const std::string& labels) {
  return get<counter>(kind::counter, name, help, labels);
}

gauge& registry::get_gauge(const std::string& name, const std::string& help, const std::string& labels) {
  return get<gauge>(kind::gauge, name, help, labels);
}

real_gauge& registry::get_real_gauge(const std::string& name, const std::string& help, const std::string& labels) {
  return get<real_gauge>(kind::real_gauge, name, help, labels);
}

histogram& registry::get_histogram(const std::string& name, const std::string& help, const std::string& labels,
                                   std::vector<double> bounds) {
  return get<histogram>(kind::histogram, name, help, labels, std::move(bounds));
}

std::string registry::render() const {
  std::lock_guard<std::mutex> guard(mutex_);
  std::string out;
  auto braces = [](const std::string& labels) { return labels.empty() ? std::string() : "{" + labels + "}"; };
  for (const auto& [name, fam] : families_) {
    const char* type = fam.type == kind::counter ? "counter" : fam.type == kind::histogram ? "histogram" : "gauge";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, fam.help, name, type);
    for (const auto& [labels, series] : fam.series) {
      switch (fam.type) {
        case kind::counter:
          out += fmt::format("{}{} {}\n", name, braces(labels), static_cast<counter*>(series.get())->value());
          break;
        case kind::gauge:
          out += fmt::format("{}{} {}\n", name, braces(labels), static_cast<gauge*>(series.get())->value());
          break;
        case kind::real_gauge:
          out += fmt::format("{}{} {}\n", name, braces(labels), static_cast<real_gauge*>(series.get())->value());
          break;
        case kind::histogram: {
          auto s = static_cast<histogram*>(series.get())->read();
          auto sep = labels.empty() ? "" : ",";
          uint64_t cumulative = 0;
          for (size_t i = 0; i < s.bounds.size(); ++i) {
            cumulative += s.counts[i];
            out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, s.bounds[i], cumulative);
          }
          out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, s.count);
          out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces(labels), s.sum, name, braces(labels),
                             s.count);
          break;
        }
      }
    }
  }
  return out;
}

} // namespace inflow::metrics
