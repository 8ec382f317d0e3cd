#include "drift/monitor.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

using namespace inflow::drift;

namespace {

std::vector<float> normal(size_t n, double mean, double sd, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(mean, sd);
  std::vector<float> out(n);
  for (auto& v : out)
    v = static_cast<float>(d(rng));
  return out;
}

std::vector<uint64_t> counts(const distribution& ref, const std::vector<float>& values) {
  std::vector<uint64_t> out(ref.bins());
  for (float v : values)
    ++out[ref.bin_of(v)];
  return out;
}

} // namespace

TEST_CASE("a reference has bins at the quantiles, and fewer when values repeat") {
  auto ref = reference_of(normal(10'000, 0, 1, 1), 10);
  REQUIRE(ref.edges.size() == 9);
  for (size_t i = 0; i < 10; ++i)
    CHECK(ref.shares[i] == Approx(0.1).margin(0.002));
  CHECK(ref.shares.back() == 0); // nothing missing
  auto flags = reference_of({0, 1, 1, 0, 1, NAN}, 10);
  CHECK(flags.edges == std::vector<double>{1});
  CHECK(flags.shares == std::vector<double>{2.0 / 6, 3.0 / 6, 1.0 / 6});
  CHECK(flags.bin_of(NAN) == 2);
}

TEST_CASE("PSI and KS are near 0 on the same distribution and large on a shifted one") {
  auto ref = reference_of(normal(20'000, 0, 1, 1), 10);
  auto same = counts(ref, normal(10'000, 0, 1, 2));
  auto shifted = counts(ref, normal(10'000, 0.8, 1, 3));
  CHECK(psi(ref, same) < 0.01);
  CHECK(psi(ref, shifted) > 0.5);
  CHECK(ks(ref, same) < 0.03);
  CHECK(ks(ref, shifted) > 0.25);
  CHECK(psi(ref, std::vector<uint64_t>(ref.bins())) == 0);
  CHECK(ks(ref, std::vector<uint64_t>(ref.bins())) == 0);
}

TEST_CASE("a profile is written and read back; a broken one says what is wrong") {
  profile p{"m-1", {"amount", "card_present"}, {reference_of(normal(1000, 50, 10, 1), 10),
                                                 reference_of({0, 1, 1}, 10)}, reference_of(normal(1000, 0.2, 0.1, 2), 20)};
  const std::string path = "/tmp/inflow-drift-test.profile.json";
  write_profile(path, p);
  auto back = read_profile(path);
  CHECK(back.version == "m-1");
  CHECK(back.features == p.features);
  CHECK(back.inputs[0].edges == p.inputs[0].edges);
  CHECK(back.score.shares == p.score.shares);
  std::ofstream(path) << R"({"version":"x","score":{"edges":[1,2],"shares":[1]},"features":[]})";
  CHECK_THROWS_WITH(read_profile(path), Catch::Contains("score: 2 edges need 4 shares"));
  CHECK_THROWS_WITH(read_profile("/nonexistent/model.profile.json"), Catch::Contains("inflow train"));
  CHECK(profile_path_for("models/fraud/model.json") == "models/fraud/model.profile.json");
  std::remove(path.c_str());
}

TEST_CASE("a monitor fires once when the stream shifts and once when it is back, never on a steady one") {
  profile p{"m-1", {"x"}, {reference_of(normal(20'000, 0, 1, 1), 10)}, reference_of(normal(20'000, 0.3, 0.1, 2), 20)};
  inflow::metrics::registry registry;
  std::vector<nlohmann::json> events;
  monitor m(p, 2000, {}, {"fraud", "fraud", "v1"}, registry, [&](const std::string& e) {
    events.push_back(nlohmann::json::parse(e));
  });
  auto feed = [&](double mean, double score_mean, uint64_t seed, size_t n) {
    auto xs = normal(n, mean, 1, seed), scores = normal(n, score_mean, 0.1, seed + 100);
    auto t = m.make_tally();
    for (size_t i = 0; i < n; ++i) {
      m.count_inputs(&xs[i], t);
      m.count_score(scores[i], t);
      if (i % 100 == 99) // a partition merges once per batch
        m.merge(t);
    }
  };
  feed(0, 0.3, 10, 10'000);
  CHECK(events.empty());
  CHECK(m.latest().compared > 0);
  CHECK_FALSE(m.latest().drifting);
  feed(1.0, 0.3, 20, 4000);
  REQUIRE(events.size() == 1);
  CHECK(events[0]["event"] == "drift_detected");
  CHECK(events[0]["over"] == nlohmann::json::array({"x"}));
  CHECK(events[0]["psi"]["x"].get<double>() > 0.2);
  CHECK(events[0]["window_records"] == 2000);
  CHECK(registry.render().find("inflow_drift_detected{pipeline=\"fraud\",version=\"v1\"} 1") != std::string::npos);
  feed(0, 0.3, 30, 4000);
  REQUIRE(events.size() == 2);
  CHECK(events[1]["event"] == "drift_over");
  feed(0, 0.6, 40, 4000); // only the scores move
  REQUIRE(events.size() == 3);
  CHECK(events[2]["over"] == nlohmann::json::array({"score"}));
}

TEST_CASE("draining a backlog, inputs run ahead of their scores; neither is judged on a few") {
  profile p{"m-1", {"x"}, {reference_of(normal(20'000, 0, 1, 1), 10)}, reference_of(normal(20'000, 0.3, 0.1, 2), 20)};
  inflow::metrics::registry registry;
  std::vector<nlohmann::json> events;
  monitor m(p, 2000, {}, {"fraud", "fraud", "v1"}, registry, [&](const std::string& e) {
    events.push_back(nlohmann::json::parse(e));
  });
  // 6,000 records taken before the first answers, then their scores, the last 150 from one
  // corner of the distribution (the partition answered last): too few to be a window's.
  auto xs = normal(6000, 0, 1, 10), scores = normal(6000, 0.3, 0.1, 11);
  std::fill(scores.end() - 150, scores.end(), 0.9);
  auto t = m.make_tally();
  for (size_t i = 0; i < xs.size(); ++i) {
    m.count_inputs(&xs[i], t);
    if (i % 100 == 99)
      m.merge(t);
  }
  const auto compared = m.latest().compared;
  CHECK(compared > 0);
  CHECK(m.latest().ks == 0); // no scores yet: not judged
  for (size_t i = 0; i < scores.size(); ++i) {
    m.count_score(scores[i], t);
    if (i % 100 == 99 || i + 1 == scores.size())
      m.merge(t);
  }
  CHECK(m.latest().compared > compared); // the scores close slices of their own
  CHECK(m.latest().ks < 0.1);
  CHECK(m.latest().psi[0] < 0.1); // the inputs' reading stands: the last windows hold none
  CHECK_FALSE(m.latest().drifting);
  CHECK(events.empty());
}
