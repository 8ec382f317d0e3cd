#include "gateways/common/result_cache.hpp"

#include <catch2/catch.hpp>

using inflow::gateways::result_cache;

TEST_CASE("cached answers survive their trip through the cache topic") {
  result_cache::entry scores{{0.25f, -1.5f, 3.0f}, {}, 0.125f, 42.5f};
  auto back = result_cache::decode(result_cache::encode(scores));
  REQUIRE(back);
  CHECK(back->values == scores.values);
  CHECK(back->text.empty());
  CHECK(back->call_share == 0.125f);
  CHECK(back->cost_micro_usd == 42.5f);

  result_cache::entry text{{}, "a generated answer"};
  back = result_cache::decode(result_cache::encode(text));
  REQUIRE(back);
  CHECK(back->text == "a generated answer");
  CHECK(back->values.empty());

  // Not ours: ignored, not trusted.
  CHECK_FALSE(result_cache::decode(""));
  CHECK_FALSE(result_cache::decode("x123"));
  CHECK_FALSE(result_cache::decode(std::string("v\x01\x02", 3))); // not whole floats
  CHECK_FALSE(result_cache::decode("s123"));                       // savings cut short
  CHECK(result_cache::decode(std::string("v\0\0\x80\x3f", 5))->values == std::vector<float>{1.0f}); // an older entry
}
