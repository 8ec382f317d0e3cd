#pragma once
// What a model saw in training, as drift compares it with what it sees live: for each input
// feature and for the score, the bins of its distribution (edges at the training quantiles) and
// each bin's share. `inflow train` writes it beside the model (model.profile.json).

#include <cstdint>
#include <string>
#include <vector>

namespace inflow::drift {

/// Bins: below edges[0], between consecutive edges, from the last edge up; then one for missing
/// values (NaN). `shares` has edges.size() + 2 entries, summing to 1.
struct distribution {
  std::vector<double> edges;
  std::vector<double> shares;

  size_t bins() const { return edges.size() + 2; }
  size_t bin_of(double value) const;
};

/// Up to `bins` bins at the quantiles of `values` (fewer when values repeat, as a 0/1 feature does).
distribution reference_of(std::vector<float> values, size_t bins);

/// Population stability index of live bin counts against the reference: sum over bins of
/// (live - ref) * ln(live / ref), each share floored so that an empty bin counts but is finite.
/// 0 when `live` is empty.
double psi(const distribution& reference, const std::vector<uint64_t>& live);
/// Kolmogorov-Smirnov distance, at the bin edges, of live counts against the reference
/// (missing values left out). 0 when `live` is empty.
double ks(const distribution& reference, const std::vector<uint64_t>& live);

struct profile {
  std::string version; ///< of the model it describes
  std::vector<std::string> features;
  std::vector<distribution> inputs; ///< per feature
  distribution score;
};

/// `dir/model.json` -> `dir/model.profile.json`.
std::string profile_path_for(const std::string& model_path);
void write_profile(const std::string& path, const profile& p);
/// Throws std::runtime_error naming the file and what is wrong with it.
profile read_profile(const std::string& path);

} // namespace inflow::drift
