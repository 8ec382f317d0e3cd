#pragma once
// Trains a use case's model on its generated events (`inflow train`): the fraud classifier, the
// maintenance regression (hours until a machine fails) or the personalization classifier (takes
// the offer), each with its drift profile beside it.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace inflow::xgboost {

/// The features the fraud model is trained on, as feature expressions.
const std::vector<std::string>& fraud_features();

struct train_options {
  std::string out_dir;
  int64_t rows = 200'000;
  uint64_t seed = 42;
  double fraud_rate = 0.01;
  double threshold = 0.9;
  int rounds = 100;
  int threads = 2;
  std::function<void(int round, int rounds)> progress;
};

struct train_report {
  std::string model_path;
  std::string version;
  int64_t train_rows = 0;
  int64_t holdout_rows = 0;
  int64_t holdout_positive = 0; ///< held-out rows the alert rule should flag (fraud; failing soon)
  bool regression = false;
  double auc = 0;       ///< classification
  double rmse = 0;      ///< regression
  double precision = 0; ///< of the alert rule at the threshold (`>=`, or `<=` for a regression)
  double recall = 0;
  double threshold = 0;
};

/// Throws std::runtime_error on failure.
train_report train_fraud_model(const train_options& options);
/// fraud, maintenance or personalization; throws std::invalid_argument for any other.
train_report train_use_case_model(const std::string& use_case, const train_options& options);

/// Area under the ROC curve of `scores` against 0/1 `labels`.
double roc_auc(const std::vector<float>& scores, const std::vector<float>& labels);

} // namespace inflow::xgboost
