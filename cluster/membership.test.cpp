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
