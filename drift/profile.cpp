#include "drift/profile.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace inflow::drift {

size_t distribution::bin_of(double value) const {
  if (std::isnan(value))
    return edges.size() + 1;
  return static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), value) - edges.begin());
}

distribution reference_of(std::vector<float> values, size_t bins) {
  distribution d;
  const auto missing = static_cast<size_t>(std::count_if(values.begin(), values.end(), [](float v) { return std::isnan(v); }));
  values.erase(std::remove_if(values.begin(), values.end(), [](float v) { return std::isnan(v); }), values.end());
  std::sort(values.begin(), values.end());
  for (size_t i = 1; i < bins && !values.empty(); ++i) {
    double edge = values[i * values.size() / bins];
    if (edge > values.front() && (d.edges.empty() || edge > d.edges.back())) // no empty bins
      d.edges.push_back(edge);
  }
  d.shares.assign(d.bins(), 0.0);
  const double total = static_cast<double>(values.size() + missing);
  for (float v : values)
    d.shares[d.bin_of(v)] += 1.0 / total;
  if (total > 0)
    d.shares.back() = static_cast<double>(missing) / total;
  return d;
}

double psi(const distribution& reference, const std::vector<uint64_t>& live) {
  uint64_t total = 0;
  for (auto c : live)
    total += c;
  if (total == 0)
    return 0;
  constexpr double floor = 1e-4;
  double sum = 0;
  for (size_t i = 0; i < reference.bins() && i < live.size(); ++i) {
    const double ref = std::max(reference.shares[i], floor);
    const double now = std::max(static_cast<double>(live[i]) / static_cast<double>(total), floor);
    sum += (now - ref) * std::log(now / ref);
  }
  return sum;
}

double ks(const distribution& reference, const std::vector<uint64_t>& live) {
  const size_t bins = reference.bins() - 1; // missing values left out
  uint64_t total = 0;
  double ref_total = 0;
  for (size_t i = 0; i < bins && i < live.size(); ++i) {
    total += live[i];
    ref_total += reference.shares[i];
  }
  if (total == 0 || ref_total <= 0)
    return 0;
  double live_cdf = 0, ref_cdf = 0, distance = 0;
  for (size_t i = 0; i + 1 < bins; ++i) { // the CDFs at each edge; both are 1 after the last bin
    live_cdf += static_cast<double>(live[i]) / static_cast<double>(total);
    ref_cdf += reference.shares[i] / ref_total;
    distance = std::max(distance, std::abs(live_cdf - ref_cdf));
  }
  return distance;
}

std::string profile_path_for(const std::string& model_path) {
  const std::string suffix = ".json";
  if (model_path.size() > suffix.size() && model_path.compare(model_path.size() - suffix.size(), suffix.size(), suffix) == 0)
    return model_path.substr(0, model_path.size() - suffix.size()) + ".profile.json";
  return model_path + ".profile.json";
}

namespace {

nlohmann::json to_json(const distribution& d) {
  return {{"edges", d.edges}, {"shares", d.shares}};
}

distribution distribution_of(const nlohmann::json& j, const std::string& what) {
  distribution d{j.at("edges").get<std::vector<double>>(), j.at("shares").get<std::vector<double>>()};
  if (d.shares.size() != d.bins() || !std::is_sorted(d.edges.begin(), d.edges.end()))
    throw std::runtime_error(fmt::format("{}: {} edges need {} shares, in ascending order", what, d.edges.size(),
                                         d.bins()));
  return d;
}

} // namespace

void write_profile(const std::string& path, const profile& p) {
  nlohmann::json j{{"version", p.version}, {"score", to_json(p.score)}, {"features", nlohmann::json::array()}};
  for (size_t i = 0; i < p.features.size(); ++i)
    j["features"].push_back({{"name", p.features[i]}, {"distribution", to_json(p.inputs[i])}});
  std::ofstream(path) << j.dump(1) << "\n";
}

profile read_profile(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error(fmt::format("cannot read the drift profile {} (`inflow train` writes one beside the "
                                         "model; or set the model's drift_profile)",
                                         path));
  try {
    auto j = nlohmann::json::parse(in);
    profile p;
    p.version = j.at("version").get<std::string>();
    p.score = distribution_of(j.at("score"), "score");
    for (const auto& f : j.at("features")) {
      p.features.push_back(f.at("name").get<std::string>());
      p.inputs.push_back(distribution_of(f.at("distribution"), p.features.back()));
    }
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("drift profile {}: {}", path, e.what()));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("drift profile {}: {}", path, e.what()));
  }
}

} // namespace inflow::drift
