#include "actors/offset_window.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

using window = inflow::actors::offset_window<int>;

TEST_CASE("the commit offset stops at the oldest unfinished record") {
  window t;
  CHECK(t.committable() == -1);
  for (int64_t o : {10, 11, 12, 15}) // gaps, as compaction or transaction markers leave them
    REQUIRE(t.add(o) != nullptr);
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
  window t;
  REQUIRE(t.add(5) != nullptr);
  CHECK(t.add(5) == nullptr);
  CHECK(t.add(4) == nullptr);
  CHECK_FALSE(t.mark_done(6));
  CHECK(t.mark_done(5));
  CHECK_FALSE(t.mark_done(5));
  CHECK(t.committable() == 6);
}

TEST_CASE("any completion order ends at the last offset plus one") {
  std::mt19937 rng(3);
  for (int round = 0; round < 20; ++round) {
    window t;
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

TEST_CASE("entries are found by offset until they are finished, across gaps and wrap-arounds") {
  window t;
  auto value_of = [](int64_t o) { return static_cast<int>(o % 1000) + 1; };
  std::vector<int64_t> live;
  int64_t offset = 1000;
  // Far more records than the initial capacity with a few hundred unfinished
  // at a time, so that the ring both grows and wraps; every 7th offset leaves a gap.
  for (int i = 0; i < 5000; ++i) {
    offset += (i % 7 == 0) ? 3 : 1;
    int* e = t.add(offset);
    REQUIRE(e != nullptr);
    CHECK(*e == 0); // a fresh entry, whatever the slot held before
    *e = value_of(offset);
    live.push_back(offset);
    if (live.size() > 300) {
      auto o = live.front();
      live.erase(live.begin());
      REQUIRE(t.find(o) != nullptr);
      CHECK(*t.find(o) == value_of(o));
      REQUIRE(t.mark_done(o));
      CHECK(t.find(o) == nullptr);
      CHECK(t.committable() == o + 1);
    }
  }
  CHECK(t.in_flight() == live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    REQUIRE(t.find(live[i]) != nullptr);
    CHECK(*t.find(live[i]) == value_of(live[i]));
    if (i + 1 < live.size() && live[i + 1] > live[i] + 1)
      CHECK(t.find(live[i] + 1) == nullptr); // a gap
  }
  CHECK(t.find(offset + 1) == nullptr);
  CHECK(t.find(live.front() - 1) == nullptr); // finished
  // Finishing out of order releases the entry at once; the commit waits.
  REQUIRE(t.mark_done(live[5]));
  CHECK(t.find(live[5]) == nullptr);
  CHECK(t.committable() <= live.front());
}
