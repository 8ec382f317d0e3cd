#include "xgboost/booster.hpp"
#include "xgboost/trainer.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

using namespace inflow::xgboost;

TEST_CASE("a trained fraud model separates fraud and scores batches like single rows") {
  auto dir = std::filesystem::temp_directory_path() / "inflow-booster-test";
  std::filesystem::remove_all(dir);
  train_options opt;
  opt.out_dir = dir.string();
  opt.rows = 20'000;
  opt.rounds = 30;
  opt.fraud_rate = 0.05;
  auto report = train_fraud_model(opt);
  CHECK(report.auc > 0.8);
  CHECK(report.precision > 0.5);
  CHECK(report.holdout_rows == 4000);

  auto meta = read_meta(report.model_path);
  CHECK(meta.version == report.version);
  CHECK(meta.features == fraud_features());

  booster model(report.model_path);
  REQUIRE(model.num_features() == fraud_features().size());
  const size_t w = model.num_features();
  std::vector<float> rows(8 * w);
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i] = static_cast<float>((i * 37) % 101);
  auto batch = model.predict(rows.data(), 8);
  REQUIRE(batch.size() == 8);
  for (size_t r = 0; r < 8; ++r) {
    auto single = model.predict(rows.data() + r * w, 1);
    CHECK(single[0] == Approx(batch[r]));
    CHECK(batch[r] >= 0.0f);
    CHECK(batch[r] <= 1.0f);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a missing model file is a clear error") {
  CHECK_THROWS_WITH(booster("/nonexistent/model.json"), Catch::Contains("inflow train"));
}

TEST_CASE("AUC is computed with ties") {
  CHECK(roc_auc({0.1f, 0.9f}, {0, 1}) == Approx(1.0));
  CHECK(roc_auc({0.9f, 0.1f}, {0, 1}) == Approx(0.0));
  CHECK(roc_auc({0.5f, 0.5f}, {0, 1}) == Approx(0.5));
}
