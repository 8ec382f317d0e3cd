#include "actors/shadow_book.hpp"
#include "actors/traffic_split.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

using namespace inflow::actors;

TEST_CASE("traffic is split by key within 2 points of each version's share over 100,000 keys") {
  for (const auto& weights : std::vector<std::vector<double>>{{90, 10}, {70, 20, 10}, {1, 1}, {5, 0.5, 94.5}}) {
    traffic_split split(weights);
    std::vector<int> counts(weights.size());
    const int keys = 100'000;
    for (int i = 0; i < keys; ++i)
      ++counts[split.version_of(fmt::format("card-{:06d}", i))];
    double total = 0;
    for (double w : weights)
      total += w;
    for (size_t v = 0; v < weights.size(); ++v) {
      INFO("weights " << fmt::format("{}", fmt::join(weights, "/")) << ", version " << v << ": " << counts[v]);
      CHECK(std::abs(counts[v] / double(keys) - weights[v] / total) <= 0.02);
    }
  }
}

TEST_CASE("a key always gets the same version, and one version takes everything") {
  traffic_split split({50, 50});
  for (int i = 0; i < 1000; ++i) {
    auto key = fmt::format("user-{}", i);
    CHECK(split.version_of(key) == split.version_of(key));
  }
  traffic_split one({3});
  CHECK(one.version_of("anything") == 0);
  CHECK(one.version_of("") == 0);
}

TEST_CASE("the shadow book pairs answers in either order and forgets the unpaired") {
  shadow_book book(3);
  CHECK_FALSE(book.add_live(1, {0.9f, true, 0, {"id-1", "k"}}));
  auto pair = book.add_shadow(1, 0.2f);
  REQUIRE(pair);
  CHECK(pair->live.identity.id == "id-1");
  CHECK(pair->live.alert);
  CHECK(pair->shadow == 0.2f);
  CHECK(book.size() == 0);

  CHECK_FALSE(book.add_shadow(2, 0.5f));
  pair = book.add_live(2, {0.4f, false, 1, {}});
  REQUIRE(pair);
  CHECK(pair->live.route == 1);

  CHECK_FALSE(book.add_shadow(3, 0.1f));
  CHECK(book.forget(3));
  CHECK_FALSE(book.forget(3));
  CHECK(book.size() == 0);

  for (int64_t o = 10; o < 14; ++o) // one more than it holds: the oldest goes
    book.add_shadow(o, 0.f);
  CHECK(book.size() == 3);
  CHECK(book.take_evicted() == 1);
  CHECK(book.take_evicted() == 0);
  CHECK_FALSE(book.add_live(10, {}));   // 10 was pushed out: a new entry again
  CHECK(book.add_live(13, {}).has_value());
}
