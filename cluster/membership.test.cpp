#include "cluster/membership.hpp"

#include <catch2/catch.hpp>

using namespace inflow::cluster;

namespace {

wire::hello peer(std::string name, std::vector<std::string> models) {
  wire::hello h;
  h.node = std::move(name);
  h.listen = h.node + ":4500";
  for (auto& m : models)
    h.gateways.push_back({m, "embedded-xgboost", "v1", "classification"});
  return h;
}

} // namespace

TEST_CASE("calls go to the peer with the fewest outstanding", "[membership]") {
  membership m("ingest-1", {});
  CHECK_FALSE(m.pick("fraud", [](auto&) { return 0; }));
  CHECK(m.upsert(peer("gw-b", {"fraud"})));
  CHECK(m.upsert(peer("gw-a", {"fraud", "churn"})));
  CHECK_FALSE(m.upsert(peer("gw-a", {"fraud"})));
  m.upsert(peer("gw-c", {"churn"}));
  std::map<std::string, uint64_t> load{{"gw-a", 3}, {"gw-b", 1}};
  auto by_load = [&](const std::string& n) { return load[n]; };
  CHECK(m.pick("fraud", by_load) == "gw-b");
  load["gw-b"] = 5;
  CHECK(m.pick("fraud", by_load) == "gw-a");
  CHECK_FALSE(m.pick("churn", by_load) == std::optional<std::string>("gw-a")); // updated hello dropped churn
  CHECK(m.remove("gw-a"));
  CHECK_FALSE(m.remove("gw-a"));
  CHECK(m.pick("fraud", by_load) == "gw-b");
  CHECK(m.knows_address("gw-b:4500"));
  CHECK_FALSE(m.knows_address("gw-a:4500"));
}

TEST_CASE("hosts of a model include this node when it hosts it", "[membership]") {
  membership m("gw-b", {{"fraud", "kserve", "v1", "classification"}});
  m.upsert(peer("gw-a", {"fraud"}));
  m.upsert(peer("ingest", {}));
  CHECK(m.hosts("fraud") == std::vector<std::string>{"gw-a", "gw-b"});
  CHECK(m.hosts("churn").empty());
}

TEST_CASE("request shares add up to the limit and never exceed it", "[membership]") {
  for (double limit : {1.0, 7.0, 10.0, 30.0, 40.5, 1000.0}) {
    for (size_t n = 1; n <= 7; ++n) {
      std::vector<std::string> hosts;
      for (size_t i = 0; i < n; ++i)
        hosts.push_back("node-" + std::to_string(i));
      double sum = 0;
      for (const auto& h : hosts)
        sum += request_share(limit, hosts, h);
      if (n == 1)
        CHECK(sum == limit);
      else
        CHECK(sum == std::floor(limit));
      // A node joining never raises anyone's part: joins are safe in any order.
      if (n > 1) {
        std::vector<std::string> before(hosts.begin() + 1, hosts.end());
        for (const auto& h : before)
          CHECK(request_share(limit, hosts, h) <= request_share(limit, before, h));
      }
    }
  }
  CHECK(request_share(10, {"a", "b", "c"}, "a") == 4);
  CHECK(request_share(10, {"a", "b", "c"}, "c") == 3);
  CHECK(request_share(10, {"a", "b"}, "z") == 0);
}

TEST_CASE("calls never go to a host whose part of the rate limit is nothing", "[membership]") {
  membership m("ingest-1", {});
  for (auto name : {"gw-a", "gw-b", "gw-c"})
    m.upsert(peer(name, {"fraud"}));
  auto idle = [](const std::string&) { return uint64_t{0}; };
  auto busy_a = [](const std::string& n) { return n == "gw-a" ? uint64_t{9} : uint64_t{0}; };
  // 1 request/s over three hosts: gw-a holds it, the others may make no call.
  CHECK(m.pick("fraud", idle, 1) == "gw-a");
  CHECK(m.pick("fraud", busy_a, 1) == "gw-a");
  CHECK(m.pick("fraud", busy_a, 2) == "gw-b");
  CHECK(m.pick("fraud", busy_a, 0) == "gw-b"); // no limit
}
