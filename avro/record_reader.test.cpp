#include "avro/record_reader.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

using namespace inflow;
using namespace std::chrono;

TEST_CASE("a registry that takes requests and never answers holds no caller for its timeout", "[avro]") {
  // A listening socket nobody accepts on: connections complete, requests go unanswered.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(listen(listener, 16) == 0);
  REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  auto registry = std::make_shared<avro::registry>(fmt::format("http://127.0.0.1:{}", ntohs(address.sin_port)), 3000);
  avro::schemas schemas(registry, "transactions-value",
                        R"({"type":"record","name":"T","fields":[{"name":"amount","type":"double"}]})");
  for (int attempt = 0; attempt < 3; ++attempt) { // the first asks; the others find it on its way
    auto start = steady_clock::now();
    CHECK_THROWS_WITH(schemas.writer_of(1), Catch::Contains("has not answered yet for schema 1"));
    CHECK(steady_clock::now() - start < milliseconds(1000)); // the registry's timeout is 3000
  }
  close(listener);
}
