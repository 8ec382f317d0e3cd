#include "gateways/kserve/protocol.hpp"

#include <catch2/catch.hpp>

using namespace inflow::gateways::kserve;

TEST_CASE("KServe v2 requests and responses round-trip") {
  std::vector<float> rows{1, 2.5f, -3, 4, 5, 6};
  auto body = encode_infer_request("b-1", rows.data(), 2, 3);
  std::string error;
  auto req = decode_infer_request(body, error);
  REQUIRE(req);
  CHECK(req->id == "b-1");
  CHECK(req->n == 2);
  CHECK(req->width == 3);
  CHECK(req->rows == rows);

  auto resp = encode_infer_response("fraud", "v1", "b-1", {0.25f, 0.75f});
  auto scores = decode_infer_response(resp, 2, error);
  REQUIRE(scores);
  CHECK(*scores == std::vector<float>{0.25f, 0.75f});
}

TEST_CASE("KServe v2 bodies that do not fit are refused with a reason") {
  std::string error;
  CHECK_FALSE(decode_infer_request("{", error));
  CHECK_THAT(error, Catch::Contains("not valid JSON"));
  CHECK_FALSE(decode_infer_request(R"({"inputs":[{"shape":[2,2],"datatype":"FP32","data":[1,2,3]}]})", error));
  CHECK_THAT(error, Catch::Contains("3 numbers, shape says [2, 2]"));
  // 2^60 × 16 wraps to 0 in 64 bits: the check must not be fooled into 2^60 rows of nothing.
  CHECK_FALSE(decode_infer_request(R"({"inputs":[{"shape":[1152921504606846976,16],"data":[]}]})", error));
  CHECK_FALSE(decode_infer_request(R"({"inputs":[{"shape":[1152921504606846976,0],"data":[]}]})", error));
  CHECK(decode_infer_request(R"({"inputs":[{"shape":[0,16],"data":[]}]})", error));
  CHECK_FALSE(decode_infer_request(R"({"inputs":[{"shape":[1,2],"data":["a","b"]}]})", error));
  CHECK_FALSE(decode_infer_request(R"({"inputs":[{"shape":[1,2]}]})", error));
  auto nested = decode_infer_request(R"({"inputs":[{"shape":[2,1],"data":[[1],[2]]}]})", error);
  REQUIRE(nested);
  CHECK(nested->rows == std::vector<float>{1, 2});

  CHECK_FALSE(decode_infer_response(R"({"outputs":[{"data":[0.1]}]})", 2, error));
  CHECK_THAT(error, Catch::Contains("1 scores for 2 rows"));
  CHECK_FALSE(decode_infer_response(R"({"error":"model exploded"})", 1, error));
  CHECK_THAT(error, Catch::Contains("model exploded"));
  CHECK_FALSE(decode_infer_response("<html>502</html>", 1, error));
}
