#include "xgboost/trainer.hpp"

#include "drift/profile.hpp"
#include "events/features.hpp"
#include "events/generator.hpp"
#include "events/use_cases.hpp"
#include "xgboost/booster.hpp"

#include <fmt/format.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <numeric>
#include <sstream>

namespace inflow::xgboost {

const std::vector<std::string>& fraud_features() {
  static const std::vector<std::string> features{
    "amount",          "amount / amount_avg_30d", "amount_avg_30d", "distance_km",
    "secs_since_last", "tx_last_hour",            "card_present",   "channel == online",
    "channel == atm",  "mcc",                     "mcc == 4829",    "mcc == 7995",
    "mcc == 5967",     "mcc == 5732",             "mcc == 5944",    "mcc == 5815"};
  return features;
}

double roc_auc(const std::vector<float>& scores, const std::vector<float>& labels) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney U with average ranks for ties.
  double rank_sum = 0, positives = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]])
      ++j;
    double avg_rank = (static_cast<double>(i) + static_cast<double>(j) + 1.0) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (labels[order[k]] > 0.5) {
        rank_sum += avg_rank;
        positives += 1;
      }
    i = j;
  }
  double negatives = static_cast<double>(scores.size()) - positives;
  if (positives == 0 || negatives == 0)
    return 0.5;
  return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives);
}

namespace {

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

struct dmatrix {
  DMatrixHandle h = nullptr;
  dmatrix(const std::vector<float>& x, const std::vector<float>& y, size_t cols) {
    check(XGDMatrixCreateFromMat(x.data(), y.size(), cols, std::numeric_limits<float>::quiet_NaN(), &h), "DMatrix");
    check(XGDMatrixSetFloatInfo(h, "label", y.data(), y.size()), "labels");
  }
  ~dmatrix() { XGDMatrixFree(h); }
};

} // namespace

namespace {

/// One generated event as JSON, and its ground truth.
using labeled_json = std::function<std::pair<std::string, float>(int64_t i)>;

/// What a use case trains: its features, how its events are made, and the XGBoost objective.
struct use_case {
  std::string name;
  const std::vector<std::string>& features;
  labeled_json next;
  std::string key_field;   ///< the events' key (source.key_field of its pipeline)
  bool regression = false; ///< else binary classification
};

train_report train_on(const use_case& uc, const train_options& opt) {
  const auto& features = uc.features;
  events::feature_map map(features, {"id", uc.key_field});
  const size_t cols = map.size();
  std::vector<float> x_train, y_train, x_test, y_test;
  std::vector<events::field_value> values;
  events::decoder decoder(events::wire_format::json, map.fields(), {});
  events::record_identity identity;
  std::vector<float> row(cols);
  for (int64_t i = 0; i < opt.rows; ++i) {
    auto [json, label] = uc.next(i);
    // Train on exactly what the pipeline will see: the JSON event, decoded.
    if (auto err = decoder.decode(json, values))
      throw std::runtime_error("generated event failed to decode: " + err->message);
    if (auto err = map.extract(values, row.data(), identity))
      throw std::runtime_error("generated event failed to map: " + err->message);
    bool holdout = i % 5 == 4;
    auto& x = holdout ? x_test : x_train;
    auto& y = holdout ? y_test : y_train;
    x.insert(x.end(), row.begin(), row.end());
    y.push_back(label);
  }

  dmatrix train(x_train, y_train, cols);
  BoosterHandle booster_handle = nullptr;
  check(XGBoosterCreate(&train.h, 1, &booster_handle), "XGBoosterCreate");
  std::unique_ptr<void, int (*)(BoosterHandle)> guard(booster_handle, XGBoosterFree);
  for (auto [k, v] : std::initializer_list<std::pair<const char*, std::string>>{
         {"objective", uc.regression ? "reg:squarederror" : "binary:logistic"}, {"tree_method", "hist"},
         {"max_depth", "6"}, {"eta", "0.2"}, {"seed", std::to_string(opt.seed)},
         {"nthread", std::to_string(opt.threads)}})
    check(XGBoosterSetParam(booster_handle, k, v.c_str()), k);
  for (int round = 0; round < opt.rounds; ++round) {
    check(XGBoosterUpdateOneIter(booster_handle, round, train.h), "training round");
    if (opt.progress)
      opt.progress(round + 1, opt.rounds);
  }

  std::filesystem::create_directories(opt.out_dir);
  train_report report;
  report.model_path = (std::filesystem::path(opt.out_dir) / "model.json").string();
  check(XGBoosterSaveModel(booster_handle, report.model_path.c_str()), "cannot save model");

  std::ifstream saved(report.model_path, std::ios::binary);
  std::stringstream bytes;
  bytes << saved.rdbuf();
  report.version = fmt::format("{}-{:08x}", uc.name, fnv1a(bytes.str()) & 0xffffffffu);

  // Evaluate the saved model the way the gateway will use it. The alert rule is `score >= t`
  // for a classifier, `score <= t` (e.g. hours left) for a regression.
  booster model(report.model_path, opt.threads);
  auto scores = model.predict(x_test.data(), y_test.size());
  report.train_rows = static_cast<int64_t>(y_train.size());
  report.holdout_rows = static_cast<int64_t>(y_test.size());
  report.threshold = opt.threshold;
  report.regression = uc.regression;
  int64_t tp = 0, fp = 0, fn = 0;
  double squares = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    bool flagged = uc.regression ? scores[i] <= opt.threshold : scores[i] >= opt.threshold;
    bool positive = uc.regression ? y_test[i] <= opt.threshold : y_test[i] > 0.5;
    report.holdout_positive += positive;
    tp += flagged && positive;
    fp += flagged && !positive;
    fn += !flagged && positive;
    squares += (scores[i] - y_test[i]) * (scores[i] - y_test[i]);
  }
  if (uc.regression)
    report.rmse = std::sqrt(squares / std::max<double>(1, static_cast<double>(scores.size())));
  else
    report.auc = roc_auc(scores, y_test);
  report.precision = tp + fp ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0.0;
  report.recall = tp + fn ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0.0;

  // What drift is measured against (drift/monitor.hpp): the training inputs, the held-out scores.
  drift::profile profile{report.version, features, {}, drift::reference_of(scores, 20)};
  for (size_t c = 0; c < cols; ++c) {
    std::vector<float> column(y_train.size());
    for (size_t r = 0; r < y_train.size(); ++r)
      column[r] = x_train[r * cols + c];
    profile.inputs.push_back(drift::reference_of(std::move(column), 10));
  }
  drift::write_profile(drift::profile_path_for(report.model_path), profile);

  write_meta(report.model_path, {report.version, features, opt.threshold},
             fmt::format(R"({{"use_case":"{}","trained_rows":{},"seed":{},"auc":{:.4f},"rmse":{:.4f},)"
                         R"("precision":{:.4f},"recall":{:.4f}}})",
                         uc.name, report.train_rows, opt.seed, report.auc, report.rmse, report.precision,
                         report.recall));
  return report;
}

} // namespace

train_report train_fraud_model(const train_options& opt) {
  events::generator gen(opt.seed, opt.fraud_rate);
  const int64_t t0 = 1'700'000'000'000;
  return train_on({"fraud", fraud_features(), [&](int64_t i) {
                  auto sample = gen.next(t0 + i);
                  return std::pair{events::to_json(sample.tx), sample.fraud ? 1.f : 0.f};
                },
                "card_id"},
               opt);
}

train_report train_use_case_model(const std::string& name, const train_options& opt) {
  if (name == "fraud")
    return train_fraud_model(opt);
  auto source = events::source_for(name, opt.seed); // throws on an unknown name
  const int64_t t0 = 1'700'000'000'000;
  const auto& features = name == "maintenance" ? events::telemetry_features() : events::offer_features();
  if (name == "support")
    throw std::invalid_argument("the support use case calls a text model; there is nothing to train");
  return train_on({name, features,
                [&](int64_t i) {
                  auto s = source(t0 + i);
                  return std::pair{std::move(s.json), s.label};
                },
                name == "maintenance" ? "machine_id" : "user_id", name == "maintenance"},
               opt);
}

} // namespace inflow::xgboost
