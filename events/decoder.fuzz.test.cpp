// Poison by the thousand: valid records mutated at random (flipped, cut,
// repeated, spliced bytes) and pure noise. The decoders must answer each with
// a result or a decode_failure, never crash, hang or throw.

#include "events/decoder.hpp"
#include "events/features.hpp"
#include "events/generator.hpp"
#include "gateways/kserve/protocol.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace inflow::events;

namespace {

std::string mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng) : 0; };
  switch (pick(5)) {
    case 0: // flip bytes
      for (int i = 0; i < 3 && !s.empty(); ++i)
        s[pick(s.size())] = static_cast<char>(pick(256));
      break;
    case 1: // cut
      s.resize(pick(s.size() + 1));
      break;
    case 2: // repeat a slice
      if (!s.empty()) {
        auto at = pick(s.size());
        s.insert(at, s.substr(at, pick(64)));
      }
      break;
    case 3: // splice noise
      s.insert(pick(s.size() + 1), std::string(pick(32), static_cast<char>(pick(256))));
      break;
    default: // nest deeper
      s = std::string(pick(200), '[') + s;
  }
  return s;
}

} // namespace

TEST_CASE("decoders survive mutated and random input") {
  std::mt19937_64 rng(2026);
  generator gen(5);
  feature_map map({"amount", "amount / amount_avg_30d", "channel == online", "card_present"});
  decoder json(wire_format::json, map.fields(), {4096, 32});
  decoder msgpack(wire_format::msgpack, map.fields(), {4096, 32});
  std::vector<field_value> values;
  std::vector<float> row(map.size());
  record_identity id;
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    auto tx = gen.next(i).tx;
    for (auto* d : {&json, &msgpack}) {
      std::string input = d == &json ? to_json(tx) : to_msgpack(tx);
      if (i % 10 == 9) { // pure noise now and then
        input.resize(std::uniform_int_distribution<size_t>(0, 300)(rng));
        for (auto& c : input)
          c = static_cast<char>(rng());
      } else {
        input = mutate(input, rng);
      }
      std::optional<decode_failure> failure;
      REQUIRE_NOTHROW(failure = d->decode(input, values));
      if (!failure)
        REQUIRE_NOTHROW(failure = map.extract(values, row.data(), id));
      (failure ? refused : accepted)++;
      if (failure)
        REQUIRE_FALSE(failure->message.empty());
    }
  }
  // Both outcomes happen: the mutations are not all fatal, nor all harmless.
  CHECK(accepted > 1000);
  CHECK(refused > 1000);
}

TEST_CASE("the KServe v2 decoders survive mutated and random input") {
  std::mt19937_64 rng(7);
  std::vector<float> rows(32, 1.5f);
  const auto request = inflow::gateways::kserve::encode_infer_request("x", rows.data(), 4, 8);
  const auto response = inflow::gateways::kserve::encode_infer_response("m", "v", "x", {0.1f, 0.2f, 0.3f, 0.4f});
  std::string error;
  for (int i = 0; i < 20000; ++i) {
    REQUIRE_NOTHROW(inflow::gateways::kserve::decode_infer_request(mutate(request, rng), error));
    REQUIRE_NOTHROW(inflow::gateways::kserve::decode_infer_response(mutate(response, rng), 4, error));
  }
}
