#include "drift/monitor.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>

namespace inflow::drift {

namespace {
constexpr size_t slices = 10;
}

monitor::monitor(profile reference, uint64_t window, thresholds limits, names who, metrics::registry& m,
                 std::function<void(const std::string&)> emit)
  : reference_(std::move(reference)),
    slice_rows_(std::max<uint64_t>(1, window / slices)),
    limits_(limits),
    who_(std::move(who)),
    emit_(std::move(emit)),
    ks_gauge_(m.get_real_gauge("inflow_drift_score_ks",
                               "KS distance of the live scores (last window) from the training profile's.",
                               metrics::label("pipeline", who_.pipeline) + "," + metrics::label("version", who_.version))),
    drifting_gauge_(m.get_gauge("inflow_drift_detected", "1 while a feature's PSI or the score's KS is over its threshold.",
                                metrics::label("pipeline", who_.pipeline) + "," + metrics::label("version", who_.version))),
    events_(m.get_counter("inflow_drift_events_total", "Drift detected or over (each a drift event).",
                          metrics::label("pipeline", who_.pipeline) + "," + metrics::label("version", who_.version))) {
  for (const auto& feature : reference_.features)
    psi_gauges_.push_back(&m.get_real_gauge(
      "inflow_drift_psi", "Population stability index of a feature (last window) against the training profile.",
      metrics::label("pipeline", who_.pipeline) + "," + metrics::label("version", who_.version) + "," +
        metrics::label("feature", feature)));
  slices_.assign(slices, make_tally());
}

tally monitor::make_tally() const {
  tally t;
  for (const auto& d : reference_.inputs)
    t.inputs.emplace_back(d.bins(), 0);
  t.score.assign(reference_.score.bins(), 0);
  return t;
}

void monitor::count_inputs(const float* row, tally& t) const {
  for (size_t f = 0; f < reference_.inputs.size(); ++f)
    ++t.inputs[f][reference_.inputs[f].bin_of(row[f])];
  ++t.rows;
}

void monitor::count_score(double score, tally& t) const {
  ++t.score[reference_.score.bin_of(score)];
  ++t.scores;
}

void monitor::add(tally& into, const tally& from) const {
  for (size_t f = 0; f < into.inputs.size(); ++f)
    for (size_t b = 0; b < into.inputs[f].size(); ++b)
      into.inputs[f][b] += from.inputs[f][b];
  for (size_t b = 0; b < into.score.size(); ++b)
    into.score[b] += from.score[b];
  into.rows += from.rows;
  into.scores += from.scores;
}

void monitor::merge(tally& t) {
  if (t.rows == 0 && t.scores == 0)
    return;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    add(slices_[current_], t);
    if (slices_[current_].rows >= slice_rows_ || slices_[current_].scores >= slice_rows_) {
      filled_ = std::min(filled_ + 1, slices);
      if (filled_ == slices) { // a whole window seen: compare it
        // Emitted under the lock: partitions merge from several threads, and a drift_over
        // written before the drift_detected it ends would read as the opposite.
        if (auto event = compare_locked(); !event.empty() && emit_)
          emit_(event);
      }
      current_ = (current_ + 1) % slices;
      slices_[current_] = make_tally(); // the oldest slice leaves the window
    }
  }
  for (auto& counts : t.inputs)
    std::fill(counts.begin(), counts.end(), 0);
  std::fill(t.score.begin(), t.score.end(), 0);
  t.rows = t.scores = 0;
}

std::string monitor::compare_locked() {
  tally window = make_tally();
  for (const auto& s : slices_)
    add(window, s);
  reading now;
  now.compared = latest_.compared + 1;
  // A record's inputs count when it is taken, its score when the model answers: draining a
  // backlog, the inputs run ahead by the records in flight, and a window may hold few of either.
  // Each is judged on half a window or more; until then its last reading stands.
  const uint64_t enough = slice_rows_ * slices / 2;
  std::vector<std::string> over;
  for (size_t f = 0; f < reference_.inputs.size(); ++f) {
    now.psi.push_back(window.rows >= enough ? psi(reference_.inputs[f], window.inputs[f])
                                            : f < latest_.psi.size() ? latest_.psi[f] : 0.0);
    psi_gauges_[f]->set(now.psi.back());
    if (now.psi.back() > limits_.psi)
      over.push_back(reference_.features[f]);
  }
  now.ks = window.scores >= enough ? ks(reference_.score, window.score) : latest_.ks;
  ks_gauge_.set(now.ks);
  if (now.ks > limits_.ks)
    over.push_back("score");
  now.drifting = !over.empty();
  const bool changed = now.drifting != latest_.drifting;
  latest_ = now;
  if (!changed)
    return {};
  drifting_gauge_.set(now.drifting ? 1 : 0);
  events_.inc();
  nlohmann::json psi_of = nlohmann::json::object();
  for (size_t f = 0; f < now.psi.size(); ++f)
    psi_of[reference_.features[f]] = now.psi[f];
  nlohmann::json j{{"event", now.drifting ? "drift_detected" : "drift_over"},
                   {"pipeline", who_.pipeline},
                   {"model", who_.model},
                   {"model_version", who_.version},
                   {"reference_version", reference_.version},
                   {"window_records", window.rows},
                   {"psi", psi_of},
                   {"score_ks", now.ks},
                   {"thresholds", {{"psi", limits_.psi}, {"ks", limits_.ks}}},
                   {"over", over},
                   {"ts", std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count()}};
  if (now.drifting)
    spdlog::warn("{}: model {} version {}: drift over the last {} records: {} (PSI > {}, KS > {})", who_.pipeline,
                 who_.model, who_.version, window.rows, fmt::join(over, ", "), limits_.psi, limits_.ks);
  else
    spdlog::info("{}: model {} version {}: no more drift over the last {} records", who_.pipeline, who_.model,
                 who_.version, window.rows);
  return j.dump();
}

monitor::reading monitor::latest() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return latest_;
}

} // namespace inflow::drift
