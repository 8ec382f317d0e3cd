#include "kafka/record_fit.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace inflow::kafka;

namespace {

std::vector<header> connect_headers(size_t message_bytes) {
  return {{"__connect.errors.topic", "transactions"},
          {"__connect.errors.exception.message", std::string(message_bytes, 'm')}};
}

} // namespace

TEST_CASE("a record within the limit is left alone") {
  std::string k = "card-1", v(1000, 'v');
  std::string_view key = k, value = v;
  auto headers = connect_headers(50);
  REQUIRE(fit_record(key, value, headers, 4096));
  CHECK(value.size() == 1000);
  CHECK(headers.size() == 2);
}

TEST_CASE("the value is cut first, and the cut is recorded") {
  std::string k = "card-1", v(10'000, 'v');
  std::string_view key = k, value = v;
  auto headers = connect_headers(50);
  REQUIRE(fit_record(key, value, headers, 2000));
  CHECK(record_bytes(key, value, headers) <= 2000);
  CHECK(record_bytes(key, value, headers) > 1900); // no more cut than needed
  CHECK(key == "card-1");
  CHECK(v.compare(0, value.size(), value) == 0);
  CHECK(headers.back().name == "inflow.value.truncated_from_bytes");
  CHECK(headers.back().value == "10000");
}

TEST_CASE("a long header and a long key are cut when the value alone is not enough") {
  std::string k(3000, 'k'), v(100, 'v');
  std::string_view key = k, value = v;
  auto headers = connect_headers(3000);
  REQUIRE(fit_record(key, value, headers, 1000));
  CHECK(record_bytes(key, value, headers) <= 1000);
  CHECK(value.empty());
  CHECK(headers[1].value.size() < 3000);
  CHECK(key.size() < 3000);
  CHECK(headers.back().name == "inflow.key.truncated_from_bytes");
}

TEST_CASE("a limit below the header names cannot be met") {
  std::string k = "k", v = "v";
  std::string_view key = k, value = v;
  auto headers = connect_headers(10);
  CHECK_FALSE(fit_record(key, value, headers, 150));
}
