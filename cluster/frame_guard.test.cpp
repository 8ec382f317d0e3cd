#include "cluster/frame_guard.hpp"

#include <catch2/catch.hpp>

#include <vector>

using inflow::cluster::basp_frame_checker;

namespace {

std::vector<uint8_t> header(uint8_t operation, uint32_t payload_length) {
  std::vector<uint8_t> h(basp_frame_checker::header_size, 0);
  h[0] = operation;
  h[4] = static_cast<uint8_t>(payload_length >> 24);
  h[5] = static_cast<uint8_t>(payload_length >> 16);
  h[6] = static_cast<uint8_t>(payload_length >> 8);
  h[7] = static_cast<uint8_t>(payload_length);
  return h;
}

std::vector<uint8_t> frame(uint8_t operation, uint32_t payload_length) {
  auto f = header(operation, payload_length);
  f.resize(f.size() + payload_length, 0xab);
  return f;
}

} // namespace

TEST_CASE("the frame checker passes a handshake, messages and heartbeats in any split") {
  std::vector<uint8_t> stream;
  for (auto f : {frame(0x01, 300), frame(0x02, 5000), frame(0x06, 0), frame(0x03, 1000)})
    stream.insert(stream.end(), f.begin(), f.end());
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{32}, size_t{4096}, stream.size()}) {
    basp_frame_checker checker(1024, 8192);
    for (size_t at = 0; at < stream.size(); at += chunk) {
      REQUIRE_FALSE(checker.feed(stream.data() + at, std::min(chunk, stream.size() - at)));
      if (at + chunk <= 32 + 300 - 1)
        CHECK_FALSE(checker.handshake_done());
    }
    CHECK(checker.handshake_done());
  }
}

TEST_CASE("the frame checker refuses a header before any byte of it passes") {
  SECTION("a forged length on the first frame") {
    basp_frame_checker checker(1024, 8192);
    auto h = header(0x01, 0xfffffff0);
    REQUIRE_FALSE(checker.feed(h.data(), 31)); // not whole yet: nothing to judge
    auto why = checker.feed(h.data() + 31, 1);
    REQUIRE(why);
    CHECK(why->find("4294967280 bytes") != std::string::npos);
  }
  SECTION("a message over the limit after the handshake") {
    basp_frame_checker checker(1024, 8192);
    auto hs = frame(0x01, 10);
    REQUIRE_FALSE(checker.feed(hs.data(), hs.size()));
    auto ok = header(0x02, 8192);
    REQUIRE_FALSE(checker.feed(ok.data(), ok.size()));
    std::vector<uint8_t> payload(8192);
    REQUIRE_FALSE(checker.feed(payload.data(), payload.size()));
    auto big = header(0x02, 8193);
    auto why = checker.feed(big.data(), big.size());
    REQUIRE(why);
    CHECK(why->find("cluster.max_message_bytes") != std::string::npos);
  }
  SECTION("anything but a handshake first") {
    basp_frame_checker checker(1024, 8192);
    auto h = header(0x02, 10);
    CHECK(checker.feed(h.data(), h.size()));
  }
  SECTION("an unknown frame type (HTTP, TLS, noise)") {
    basp_frame_checker checker(1024, 8192);
    std::string http = "GET / HTTP/1.1\r\nHost: inflow.example\r\n\r\n";
    CHECK(checker.feed(reinterpret_cast<const uint8_t*>(http.data()), http.size()));
  }
}
