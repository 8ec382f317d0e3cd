#include "actors/outcome_order.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

using inflow::actors::outcome_order;

namespace {

/// A partition as the actor drives it: records decided and acknowledged in any order.
struct partition {
  outcome_order order;
  std::set<int64_t> decided, written, silent; ///< silent: decided with nothing to write
  std::vector<int64_t> issued, finished;

  void step() {
    order.issue_ready([&](int64_t o) { return decided.count(o) > 0; }, [&](int64_t o) { return !silent.count(o); },
                      [&](int64_t o) { issued.push_back(o); });
    order.finish_ready([&](int64_t o) { return written.count(o) > 0; }, [&](int64_t o) { finished.push_back(o); });
  }
};

} // namespace

TEST_CASE("outcomes are issued in offset order whatever order they are decided in") {
  partition p;
  for (int64_t o : {3, 4, 7, 8}) // gaps, as transaction markers leave them
    p.order.consumed(o);
  p.decided = {7, 8};
  p.step();
  CHECK(p.issued.empty()); // 3 is not decided: nothing may overtake it
  CHECK(p.order.issued_end() == 3);
  p.decided.insert(4);
  p.step();
  CHECK(p.issued.empty());
  p.decided.insert(3);
  p.step();
  CHECK(p.issued == std::vector<int64_t>{3, 4, 7, 8});
  CHECK(p.order.issued_end() == 9);
}

TEST_CASE("records finish in offset order whatever order their writes are acknowledged in") {
  partition p;
  for (int64_t o = 0; o < 4; ++o) {
    p.order.consumed(o);
    p.decided.insert(o);
  }
  p.step();
  p.written = {1, 2};
  p.step();
  CHECK(p.finished.empty());
  p.written.insert(0);
  p.step();
  CHECK(p.finished == std::vector<int64_t>{0, 1, 2});
}

TEST_CASE("a rewind writes the failed record and every later issued one again, in order") {
  partition p;
  for (int64_t o = 0; o < 5; ++o) {
    p.order.consumed(o);
    p.decided.insert(o);
  }
  p.step();
  p.written = {0, 3}; // 1 failed; 2 and 4 are still on their way; 3 is written, after 1
  p.step();
  CHECK(p.finished == std::vector<int64_t>{0});
  p.order.rewind(1);
  p.order.hold(); // until nothing is outstanding
  p.issued.clear();
  p.written.clear();
  p.step();
  CHECK(p.issued.empty());
  CHECK(p.order.issued_end() == 1);
  p.order.release();
  p.step();
  CHECK(p.issued == std::vector<int64_t>{1, 2, 3, 4}); // 3 again after 1: its newer outcome stays last
}

TEST_CASE("a hold stops issuing and says where the written outcomes end") {
  partition p;
  for (int64_t o = 10; o < 13; ++o)
    p.order.consumed(o);
  p.decided = {10};
  p.step();
  p.order.hold();
  p.decided = {10, 11, 12};
  p.step();
  CHECK(p.issued == std::vector<int64_t>{10});
  CHECK(p.order.issued_end() == 11); // what a transaction committed now may cover
  p.order.release();
  p.step();
  CHECK(p.issued == std::vector<int64_t>{10, 11, 12});
  CHECK(p.order.issued_end() == 13);
}

TEST_CASE("while held, records that write nothing still go out, up to the first that writes") {
  partition p;
  for (int64_t o = 0; o < 4; ++o)
    p.order.consumed(o);
  p.order.hold();
  p.decided = {0, 1, 2, 3};
  p.silent = {0, 1, 3};
  p.step();
  CHECK(p.issued == std::vector<int64_t>{0, 1}); // 2 writes: it and everything after it wait
  p.order.release();
  p.step();
  CHECK(p.issued == std::vector<int64_t>{0, 1, 2, 3});
}

TEST_CASE("random decisions, acknowledgements and failures keep every key's last outcome its newest") {
  std::mt19937 rng(7);
  partition p;
  std::map<int64_t, int64_t> last_for_key; // the log a compacted topic keeps: key -> offset
  const int64_t n = 2000;
  std::vector<int64_t> undecided;
  for (int64_t o = 0; o < n; ++o) {
    p.order.consumed(o);
    undecided.push_back(o);
  }
  std::shuffle(undecided.begin(), undecided.end(), rng);
  std::vector<int64_t> in_flight;
  auto issue = [&](int64_t o) {
    in_flight.push_back(o);
    last_for_key[o % 17] = o; // the write lands in the log when issued; order per partition kept
  };
  while (p.finished.size() < static_cast<size_t>(n)) {
    if (!undecided.empty() && rng() % 2) {
      p.decided.insert(undecided.back());
      undecided.pop_back();
    } else if (!in_flight.empty()) {
      auto i = rng() % in_flight.size();
      int64_t o = in_flight[i];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(i));
      if (rng() % 10 == 0) { // failed: written again, as the actor does, once nothing is outstanding
        p.order.rewind(o);
        if (!p.order.held())
          p.order.hold();
      } else {
        p.written.insert(o);
      }
    } else if (p.order.held()) {
      for (auto o = p.order.issued_end(); o < n; ++o) // the rewound ones are written afresh
        p.written.erase(o);
      p.order.release();
    }
    p.order.issue_ready([&](int64_t o) { return p.decided.count(o) > 0; }, [](int64_t) { return true; }, issue);
    p.order.finish_ready([&](int64_t o) { return p.written.count(o) > 0; },
                         [&](int64_t o) { p.finished.push_back(o); });
  }
  CHECK(std::is_sorted(p.finished.begin(), p.finished.end()));
  for (auto [key, offset] : last_for_key) {
    int64_t newest = n - 1;
    while (newest % 17 != key)
      --newest;
    CHECK(offset == newest);
  }
}
