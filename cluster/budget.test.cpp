#include "cluster/budget.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace inflow::cluster;
using namespace std::chrono_literals;

TEST_CASE("a limit is split by demand, each node with work gets a part, idle ones lend theirs") {
  auto parts = allocate_requests(30, {{"a", 90}, {"b", 10}, {"c", 0}});
  CHECK(parts.size() == 2); // c has no work: its part is lent
  CHECK(parts["a"] + parts["b"] == 30);
  CHECK(parts["a"] >= 26);
  CHECK(parts["b"] <= 4);
  // Light load: each node's demand, and the rest evenly, so that idle nodes have a part ready.
  parts = allocate_requests(30, {{"a", 3}, {"b", 1}, {"c", 0}});
  CHECK(parts["a"] + parts["b"] + parts["c"] == 30);
  CHECK(parts["a"] >= 3 + 8);
  CHECK(parts["c"] >= 8);
  // Far less demand on one node still leaves it a request a second.
  parts = allocate_requests(10, {{"a", 1000}, {"b", 1}});
  CHECK(parts["b"] == 1);
  CHECK(parts["a"] == 9);
  // Less than one request a second each: the first by name, the others wait for their turn.
  parts = allocate_requests(1, {{"a", 5}, {"b", 5}, {"c", 5}});
  CHECK(parts["a"] + parts["b"] + parts["c"] == 1);
  CHECK(allocate_requests(10, {}).empty());
  for (double limit : {1.0, 2.5, 7.0, 100.0}) {
    auto p = allocate_requests(limit, {{"a", 3}, {"b", 7}, {"c", 1}, {"d", 0}});
    double sum = 0;
    for (auto& [n, v] : p)
      sum += v;
    CHECK(sum == std::floor(limit));
  }
}

TEST_CASE("with less than one request a second each, nodes with work take turns") {
  std::map<std::string, int> waited;
  std::map<std::string, double> parts;
  const std::map<std::string, double> demand{{"a", 5}, {"b", 5}, {"c", 5}};
  std::map<std::string, int> rounds_with_part;
  for (int round = 0; round < 30; ++round) {
    parts = allocate_requests(1, demand, turns(demand, parts, waited));
    for (auto& [n, v] : parts)
      rounds_with_part[n] += v > 0;
  }
  for (auto& n : {"a", "b", "c"})
    CHECK(rounds_with_part[n] >= 5); // nobody left out
  for (auto& [n, w] : waited)
    CHECK(w <= 12); // and nobody waits long
}

TEST_CASE("small moves of a split wait; a host with work and no part, or a host gone, does not") {
  std::map<std::string, double> now{{"a", 10}, {"b", 10}, {"c", 10}};
  std::map<std::string, double> demand{{"a", 5}, {"b", 5}, {"c", 5}};
  CHECK_FALSE(worth_moving(now, {{"a", 11}, {"b", 9}, {"c", 10}}, demand, 30));
  CHECK(worth_moving(now, {{"a", 16}, {"b", 7}, {"c", 7}}, demand, 30));
  CHECK(worth_moving({{"a", 30}}, {{"a", 29}, {"b", 1}}, {{"a", 5}, {"b", 1}}, 30)); // b has work, no part
  CHECK(worth_moving(now, {{"a", 15}, {"b", 15}}, {{"a", 5}, {"b", 5}}, 30));        // c is gone
  CHECK(worth_moving({}, {{"a", 30}}, {{"a", 1}}, 30));
}

TEST_CASE("a part shrinks at once and grows only into room peers left free for a window") {
  request_lease alone(10);
  CHECK(alone.update(10, {}, request_lease::clock::time_point{} + 1s) == 10); // no peer: nothing to wait for

  request_lease lease(10);
  auto t = request_lease::clock::time_point{} + 100s;
  CHECK(lease.update(5, {{"b", 5}}, t) == 0); // a new part waits a window
  CHECK(lease.update(5, {{"b", 5}}, t + 600ms) == 0);
  CHECK(lease.update(5, {{"b", 5}}, t + 1100ms) == 5);
  // The peer hands back 3: this node may take them only once the peer's 5 is out of the window.
  t += 2s;
  CHECK(lease.update(8, {{"b", 2}}, t) == 5);
  CHECK(lease.update(8, {{"b", 2}}, t + 1s) == 5);
  CHECK(lease.update(8, {{"b", 2}}, t + 1100ms) == 8);
  // Shrinks at once.
  CHECK(lease.update(3, {{"b", 2}}, t + 1200ms) == 3);
  // A peer that left still counts what it had for a window.
  t += 5s;
  CHECK(lease.update(10, {{"b", 7}}, t) == 3);
  CHECK(lease.update(10, {}, t + 1s) == 3);     // b is gone: counted a window more
  CHECK(lease.update(10, {}, t + 1500ms) == 3);
  CHECK(lease.update(10, {}, t + 2100ms) == 10);
}

TEST_CASE("with shifting demand and late messages, the parts in use never exceed the limit in any window") {
  // Three nodes follow an allocator that re-splits 20 requests/s every second from random demand;
  // each hears the allocator and its peers up to 400 ms late.
  const double limit = 20;
  const std::vector<std::string> nodes{"a", "b", "c"};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> demand(0, 50), delay(0, 8);
  std::map<std::string, request_lease> leases;
  for (auto& n : nodes)
    leases.emplace(n, request_lease(limit));
  using clock = request_lease::clock;
  auto start = clock::time_point{} + 100s;
  std::vector<std::map<std::string, double>> targets(1), published(1); // by 50-ms step
  std::map<std::string, std::deque<std::pair<clock::time_point, double>>> used;
  double busiest = 0;
  for (int step = 1; step < 1200; ++step) {
    auto now = start + step * 50ms;
    if (step % 20 == 0) {
      std::map<std::string, double> d;
      for (auto& n : nodes)
        d[n] = demand(rng);
      targets.push_back(allocate_requests(limit, d));
    } else {
      targets.push_back(targets.back());
    }
    std::map<std::string, double> now_parts;
    for (auto& n : nodes) {
      auto late = [&](auto& history) { return history[std::max(0, static_cast<int>(history.size()) - 1 - delay(rng))]; };
      auto heard = late(targets);
      auto target = heard.count(n) ? heard.at(n) : 0.0;
      std::map<std::string, double> peers;
      for (auto& [p, v] : late(published))
        if (p != n)
          peers[p] = v;
      now_parts[n] = leases.at(n).update(target, peers, now);
      used[n].emplace_back(now, now_parts[n]);
      while (now - used[n].front().first > 1050ms)
        used[n].pop_front();
    }
    published.push_back(now_parts);
    double in_window = 0;
    for (auto& n : nodes) {
      double most = 0;
      for (auto& [when, v] : used[n])
        most = std::max(most, v);
      in_window += most;
    }
    REQUIRE(in_window <= limit);
    double sum = 0;
    for (auto& [n, v] : now_parts)
      sum += v;
    busiest = std::max(busiest, sum);
  }
  CHECK(busiest >= limit - 1); // and the limit is used, not left idle
}
