#pragma once
// Trains the fraud model on generated transactions (`inflow train`).

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
  int64_t holdout_fraud = 0;
  double auc = 0;
  double precision = 0; ///< at the threshold
  double recall = 0;    ///< at the threshold
  double threshold = 0;
};

/// Throws std::runtime_error on failure.
train_report train_fraud_model(const train_options& options);

/// Area under the ROC curve of `scores` against 0/1 `labels`.
double roc_auc(const std::vector<float>& scores, const std::vector<float>& labels);

} // namespace inflow::xgboost
