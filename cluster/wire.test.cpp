#include "cluster/wire.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

using namespace inflow::cluster;
using inflow::gateways::failure;
using inflow::gateways::score_reply;

namespace {

wire::message round_trip(const wire::message& m) {
  auto bytes = wire::encode(m);
  std::string error;
  auto back = wire::decode(bytes.data(), bytes.size(), 1 << 20, error);
  INFO(error);
  REQUIRE(back);
  return *back;
}

} // namespace

TEST_CASE("every cluster message survives encoding", "[wire]") {
  wire::hello h{"node-2", {"gateway"}, "10.0.0.2:4500", {{"fraud", "embedded-xgboost", "v3", "classification"}},
                {"10.0.0.1:4500"}};
  auto back = std::get<wire::hello>(round_trip(h));
  CHECK(back.node == "node-2");
  CHECK(back.gateways.at(0).version == "v3");
  CHECK(back.peers == h.peers);

  wire::score_call call{"fraud", {{7, 8}, {0.5f, 1.5f, 2.5f, 3.5f}, {}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}};
  auto c = std::get<wire::score_call>(round_trip(call));
  CHECK(c.request.ids == call.request.ids);
  CHECK(c.request.rows == call.request.rows);
  CHECK(c.request.traceparent == call.request.traceparent);

  score_reply result{{1}, {0.25f}, 1, {}, failure::none, "", "fraud", "v3"};
  auto r = std::get<score_reply>(round_trip(result));
  CHECK(r.values == result.values);
  CHECK(r.model_version == "v3");
  CHECK(r.ok());

  score_reply refused{{1, 2}, {}, 1, {}, failure::rejected, "HTTP 400: too long", "fraud", ""};
  auto f = std::get<score_reply>(round_trip(refused));
  CHECK(f.failed == failure::rejected);
  CHECK(f.error == refused.error);

  wire::report rep{{{"fraud", 3, 120}}, 4, 5};
  auto p = std::get<wire::report>(round_trip(rep));
  CHECK(p.partitions.at(0).in_flight == 120);
  CHECK(p.calls_in == 5);
}

TEST_CASE("a call stays within its size bound", "[wire]") {
  wire::score_call call{"fraud", {{0, 1}, {}, {"a text of some length", "another"}}};
  auto bytes = wire::encode(call);
  CHECK(bytes.size() <= wire::call_size_bound(2, 0, 28, 2));
  wire::score_call rows{"fraud", {std::vector<uint64_t>(256, ~0ull), std::vector<float>(256 * 20, 0.1f), {}}};
  CHECK(wire::encode(rows).size() <= wire::call_size_bound(256, 256 * 20, 0, 0));
}

TEST_CASE("oversized, foreign-version and malformed messages are refused with a reason", "[wire]") {
  std::string error;
  auto bytes = wire::encode(wire::score_call{"fraud", {{0}, {1.0f}, {}}});
  CHECK_FALSE(wire::decode(bytes.data(), bytes.size(), bytes.size() - 1, error));
  CHECK(error.find("exceeds the cap") != std::string::npos);

  msgpack::sbuffer other;
  msgpack::packer<msgpack::sbuffer>(other).pack(std::make_tuple(1u, 0u, wire::hello{}));
  CHECK_FALSE(wire::decode(other.data(), other.size(), 1 << 20, error));
  CHECK(error.find("wire version 1") != std::string::npos);

  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    CHECK_FALSE(wire::decode(bytes.data(), cut, 1 << 20, error));
  }
  msgpack::sbuffer unknown;
  msgpack::packer<msgpack::sbuffer>(unknown).pack(std::make_tuple(wire::version, 99u, 0));
  CHECK_FALSE(wire::decode(unknown.data(), unknown.size(), 1 << 20, error));
  CHECK(error.find("unknown message kind") != std::string::npos);

  // A failure this version does not know is malformed, not a value outside the enum.
  msgpack::sbuffer strange;
  msgpack::packer<msgpack::sbuffer>(strange).pack(
    std::make_tuple(wire::version, 2u, std::make_tuple(std::vector<uint64_t>{1}, std::vector<float>{}, 1u,
                                                       std::vector<std::string>{}, 200u, "?", "fraud", "")));
  CHECK_FALSE(wire::decode(strange.data(), strange.size(), 1 << 20, error));
}

TEST_CASE("a header announcing a huge array does not allocate it", "[wire]") {
  // [2, 1, array32 of 2^32-1 elements] in 16 bytes.
  const char huge[] = {'\x93', '\x02', '\x01', '\xdd', '\xff', '\xff', '\xff', '\xff'};
  std::string error;
  CHECK_FALSE(wire::decode(huge, sizeof huge, 1 << 20, error));
  CHECK_FALSE(error.empty());
}

TEST_CASE("random and mutated bytes never crash the decoder", "[wire][fuzz]") {
  std::mt19937 rng(42);
  auto valid = wire::encode(score_reply{{0, 1}, {0.1f, 0.9f}, 1, {}, failure::none, "", "fraud", "v1"});
  std::string error;
  for (int i = 0; i < 20000; ++i) {
    auto bytes = valid;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rng() % 8 == 0)
      bytes.resize(rng() % (bytes.size() + 1));
    wire::decode(bytes.data(), bytes.size(), 1 << 16, error); // must return, whatever it says
  }
  std::vector<char> noise(64);
  for (int i = 0; i < 20000; ++i) {
    for (auto& c : noise)
      c = static_cast<char>(rng());
    wire::decode(noise.data(), noise.size(), 1 << 16, error);
  }
  SUCCEED("no crash, no exception escaped");
}

TEST_CASE("floats go as float32 whatever they hold, 2^64 included", "[wire]") {
  wire::score_call call{"fraud", {{0, 1}, {18446744073709551616.0f, 3.0f, -0.0f, 1e-30f}, {}}};
  auto bytes = wire::encode(call);
  std::string error;
  auto back = wire::decode(bytes.data(), bytes.size(), 1 << 20, error);
  REQUIRE(back);
  CHECK(std::get<wire::score_call>(*back).request.rows == call.request.rows);
}

TEST_CASE("a budget's rates must be rates: huge, negative and NaN are refused", "[wire]") {
  // (2^64 itself cannot be packed here: msgpack-c's packer is what it would upset.)
  for (double odd : {1e300, -1.0, std::nan("")}) {
    msgpack::sbuffer bytes;
    wire::report r;
    r.budgets.push_back({"fraud", 1.0, 2.0, {}});
    r.budgets[0].targets["10.0.0.1:4500"] = odd;
    msgpack::packer<msgpack::sbuffer>(bytes).pack(std::make_tuple(wire::version, 3u, r));
    std::string error;
    CHECK_FALSE(wire::decode(bytes.data(), bytes.size(), 1 << 20, error));
    CHECK(error.find("out of range") != std::string::npos);
  }
  wire::report fine;
  fine.budgets.push_back({"fraud", 0.0, 1e6, {{"10.0.0.1:4500", 20.0}}});
  CHECK(std::get<wire::report>(round_trip(fine)).budgets.at(0).part == 1e6);
}
