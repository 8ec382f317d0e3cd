#include "xgboost/booster.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <xgboost/c_api.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace inflow::xgboost {

void check(int rc, const char* what) {
  if (rc != 0)
    throw std::runtime_error(fmt::format("{}: {}", what, XGBGetLastError()));
}

std::string meta_path_for(const std::string& model_path) {
  std::filesystem::path p(model_path);
  return (p.parent_path() / (p.stem().string() + ".meta.json")).string();
}

model_meta read_meta(const std::string& model_path) {
  auto path = meta_path_for(model_path);
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error(fmt::format("cannot read model metadata {}", path));
  try {
    auto j = nlohmann::json::parse(in);
    model_meta meta;
    meta.version = j.at("version").get<std::string>();
    meta.features = j.at("features").get<std::vector<std::string>>();
    meta.threshold = j.value("threshold", 0.9);
    return meta;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
}

void write_meta(const std::string& model_path, const model_meta& meta, const std::string& extra_json_fields) {
  nlohmann::json j = nlohmann::json::parse(extra_json_fields.empty() ? "{}" : extra_json_fields);
  j["version"] = meta.version;
  j["features"] = meta.features;
  j["threshold"] = meta.threshold;
  std::ofstream(meta_path_for(model_path)) << j.dump(2) << "\n";
}

booster::booster(const std::string& model_path, int threads) {
  if (!std::filesystem::exists(model_path))
    throw std::runtime_error(fmt::format("model file {} does not exist (train one with `inflow train`)", model_path));
  check(XGBoosterCreate(nullptr, 0, &handle_), "XGBoosterCreate");
  try {
    check(XGBoosterLoadModel(handle_, model_path.c_str()), "cannot load model");
    check(XGBoosterSetParam(handle_, "nthread", std::to_string(threads).c_str()), "nthread");
    bst_ulong n = 0;
    check(XGBoosterGetNumFeature(handle_, &n), "XGBoosterGetNumFeature");
    num_features_ = n;
  } catch (...) {
    XGBoosterFree(handle_);
    throw;
  }
}

booster::booster(booster&& other) noexcept
  : handle_(std::exchange(other.handle_, nullptr)), num_features_(other.num_features_) {}

booster& booster::operator=(booster&& other) noexcept {
  std::swap(handle_, other.handle_);
  std::swap(num_features_, other.num_features_);
  return *this;
}

booster::~booster() {
  if (handle_)
    XGBoosterFree(handle_);
}

std::vector<float> booster::predict(const float* rows, size_t n_rows) const {
  if (n_rows == 0)
    return {};
  // The array-interface protocol: XGBoost reads our buffer in place, no copy.
  auto array = fmt::format(R"({{"data":[{},true],"shape":[{},{}],"typestr":"<f4","version":3}})",
                           reinterpret_cast<uintptr_t>(rows), n_rows, num_features_);
  static const char* config =
    R"({"type":0,"training":false,"iteration_begin":0,"iteration_end":0,"strict_shape":false,"cache_id":0,"missing":NaN})";
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* out = nullptr;
  check(XGBoosterPredictFromDense(handle_, array.c_str(), config, nullptr, &shape, &dims, &out), "predict");
  // `out` belongs to XGBoost and is reused by the next call on this thread.
  return std::vector<float>(out, out + n_rows);
}

} // namespace inflow::xgboost
