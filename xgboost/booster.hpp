#pragma once
// A loaded XGBoost model and its metadata, predicting in batches through the C API.

#include <cstddef>
#include <string>
#include <vector>

namespace inflow::xgboost {

/// What `inflow train` writes beside the model (model.meta.json).
struct model_meta {
  std::string version;
  std::vector<std::string> features;
  double threshold = 0.9;
};

/// `model_path` is the model file; its metadata sits beside it as `<stem>.meta.json`.
std::string meta_path_for(const std::string& model_path);
model_meta read_meta(const std::string& model_path); ///< throws std::runtime_error
void write_meta(const std::string& model_path, const model_meta& meta, const std::string& extra_json_fields);

class booster {
public:
  /// Throws std::runtime_error with XGBoost's reason.
  explicit booster(const std::string& model_path, int threads = 1);
  booster(booster&&) noexcept;
  booster& operator=(booster&&) noexcept;
  ~booster();

  size_t num_features() const { return num_features_; }

  /// Scores `rows` rows laid out row-major, num_features() floats each.
  /// Thread-safe. Throws std::runtime_error on failure.
  std::vector<float> predict(const float* rows, size_t n_rows) const;

private:
  void* handle_ = nullptr;
  size_t num_features_ = 0;
};

/// Throws std::runtime_error carrying XGBoost's last error when `rc` is not 0.
void check(int rc, const char* what);

} // namespace inflow::xgboost
