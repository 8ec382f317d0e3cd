#include "actors/offset_tracker.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

using inflow::actors::offset_tracker;

TEST_CASE("the commit offset stops at the oldest unfinished record") {
  offset_tracker t;
  CHECK(t.committable() == -1);
  for (int64_t o : {10, 11, 12, 15}) // gaps, as compaction or transaction markers leave them
    REQUIRE(t.add(o));
  CHECK(t.in_flight() == 4);
  CHECK(t.mark_done(12));
  CHECK(t.committable() == -1);
  CHECK(t.mark_done(10));
  CHECK(t.committable() == 11);
  CHECK(t.mark_done(11));
  CHECK(t.committable() == 13);
  CHECK(t.mark_done(15));
  CHECK(t.committable() == 16);
  CHECK(t.in_flight() == 0);
}

TEST_CASE("unknown, repeated and out-of-order offsets are refused") {
  offset_tracker t;
  REQUIRE(t.add(5));
  CHECK_FALSE(t.add(5));
  CHECK_FALSE(t.add(4));
  CHECK_FALSE(t.mark_done(6));
  CHECK(t.mark_done(5));
  CHECK_FALSE(t.mark_done(5));
  CHECK(t.committable() == 6);
}

TEST_CASE("any completion order ends at the last offset plus one") {
  std::mt19937 rng(3);
  for (int round = 0; round < 20; ++round) {
    offset_tracker t;
    std::vector<int64_t> offsets;
    for (int64_t o = 100; o < 1100; o += 1 + static_cast<int64_t>(rng() % 3))
      offsets.push_back(o);
    for (auto o : offsets)
      t.add(o);
    auto order = offsets;
    std::shuffle(order.begin(), order.end(), rng);
    int64_t last_commit = -1;
    for (auto o : order) {
      REQUIRE(t.mark_done(o));
      REQUIRE(t.committable() >= last_commit); // never moves backwards
      last_commit = t.committable();
      // Everything below the commit offset is finished.
      auto first_open = std::find_if(offsets.begin(), offsets.end(), [&](int64_t x) {
        return std::find(order.begin(), std::find(order.begin(), order.end(), o) + 1, x) ==
               std::find(order.begin(), order.end(), o) + 1;
      });
      if (first_open != offsets.end() && last_commit != -1)
        REQUIRE(last_commit <= *first_open);
    }
    CHECK(t.committable() == offsets.back() + 1);
  }
}
