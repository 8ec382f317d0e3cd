#include "http/client.hpp"
#include "http/server.hpp"

#include <catch2/catch.hpp>

#include <future>
#include <thread>

using namespace inflow::http;

namespace {

result call_once(client& c, call req) {
  std::promise<result> p;
  auto f = p.get_future();
  c.submit(std::move(req), [&p](result r) { p.set_value(std::move(r)); });
  return f.get();
}

server echo_server() {
  return server("127.0.0.1", 0, [](const request& r) {
    if (r.target == "/slow")
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (r.target == "/big")
      return response{200, "text/plain", std::string(2 * 1024 * 1024, 'x')};
    if (r.target == "/busy")
      return response{429, "application/json", R"({"error":"slow down"})"};
    return response{200, "application/json", "echo:" + r.body + ":" + r.header("x-test")};
  });
}

} // namespace

TEST_CASE("URLs are parsed or refused with a reason") {
  auto u = parse_url("http://127.0.0.1:8000/v2/models/fraud/infer");
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 8000);
  CHECK(u.target == "/v2/models/fraud/infer");
  CHECK(parse_url("http://example").port == 80);
  CHECK_THROWS_WITH(parse_url("127.0.0.1:80"), Catch::Contains("not a URL"));
  CHECK_THROWS_WITH(parse_url("http://h:99999/"), Catch::Contains("invalid port"));
}

TEST_CASE("calls reach a real server over loopback and connections are reused") {
  auto srv = echo_server();
  client c(parse_url("http://127.0.0.1:" + std::to_string(srv.port()) + "/"), {.connections = 1, .timeout_ms = 2000});
  for (int i = 0; i < 3; ++i) {
    auto r = call_once(c, {"POST", "/x", {{"X-Test", "h"}}, "body" + std::to_string(i)});
    REQUIRE(r.error == result::failure::none);
    CHECK(r.status == 200);
    CHECK(r.body == "echo:body" + std::to_string(i) + ":h");
    CHECK(r.header("content-type") == "application/json");
  }
  auto busy = call_once(c, {"POST", "/busy", {}, ""});
  CHECK(busy.status == 429);
}

TEST_CASE("a call says when its request left, before its answer arrives") {
  auto srv = echo_server();
  client c(parse_url("http://127.0.0.1:" + std::to_string(srv.port()) + "/"), {.connections = 1, .timeout_ms = 2000});
  const auto submitted = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point sent{};
  int times = 0;
  auto r = call_once(c, {"POST", "/slow", {}, "", [&](std::chrono::steady_clock::time_point at) {
                           sent = at;
                           ++times;
                         }});
  const auto answered = std::chrono::steady_clock::now();
  REQUIRE(r.status == 200);
  CHECK(times == 1);
  CHECK(sent >= submitted);
  CHECK(answered - sent >= std::chrono::milliseconds(500)); // the server took 500 ms to answer
  // A call that never reaches the server was not sent.
  client refused(parse_url("http://127.0.0.1:1/"), {.connections = 1, .timeout_ms = 1000});
  times = 0;
  CHECK(call_once(refused, {"POST", "/", {}, "", [&](auto) { ++times; }}).error == result::failure::connect);
  CHECK(times == 0);
}

TEST_CASE("timeouts, oversized responses and refused connections are failures, not hangs") {
  auto srv = echo_server();
  auto origin = parse_url("http://127.0.0.1:" + std::to_string(srv.port()) + "/");
  client fast(origin, {.connections = 1, .timeout_ms = 100, .max_response_bytes = 1024 * 1024});
  CHECK(call_once(fast, {"POST", "/slow", {}, ""}).error == result::failure::timeout);
  auto big = call_once(fast, {"POST", "/big", {}, ""});
  INFO(big.status << " " << big.body.size() << " " << big.message);
  CHECK(big.error == result::failure::too_large);
  CHECK(call_once(fast, {"POST", "/ok", {}, "again"}).body == "echo:again:"); // reconnects

  client nobody(parse_url("http://127.0.0.1:1/"), {.connections = 1, .timeout_ms = 1000});
  CHECK(call_once(nobody, {"POST", "/", {}, ""}).error == result::failure::connect);
}
