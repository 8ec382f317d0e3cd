#include "gateways/common/resilience.hpp"

#include <catch2/catch.hpp>

using namespace inflow::gateways;
using namespace std::chrono_literals;

TEST_CASE("only transient failures are retried") {
  CHECK(is_retriable(call_error::timeout));
  CHECK(is_retriable(call_error::rate_limited));
  CHECK(is_retriable(call_error::unavailable));
  CHECK_FALSE(is_retriable(call_error::client_error));
  CHECK_FALSE(is_retriable(call_error::bad_response));
  CHECK_FALSE(is_retriable(call_error::too_large));
  CHECK(classify_status(200) == std::nullopt);
  CHECK(classify_status(429) == call_error::rate_limited);
  CHECK(classify_status(503) == call_error::unavailable);
  CHECK(classify_status(500) == call_error::server_error);
  CHECK(classify_status(400) == call_error::client_error);
  CHECK(classify_status(401) == call_error::unauthorized);
  CHECK(classify_status(403) == call_error::unauthorized);
  CHECK(classify_status(408) == call_error::timeout);
}

TEST_CASE("backoff grows exponentially under a cap, with full jitter") {
  std::mt19937_64 rng(1);
  for (int attempt = 0; attempt < 12; ++attempt) {
    auto cap = std::min<int64_t>(5000, 50 << attempt);
    for (int i = 0; i < 50; ++i) {
      auto d = backoff(attempt, 50ms, 5000ms, rng);
      REQUIRE(d.count() >= 0);
      REQUIRE(d.count() <= cap);
    }
  }
}

TEST_CASE("Retry-After in seconds and as an HTTP-date") {
  auto now = std::chrono::system_clock::from_time_t(1445412480); // Wed, 21 Oct 2015 07:28:00 GMT
  CHECK(parse_retry_after("3", now) == 3000ms);
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now) == 10000ms);
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0ms);
  CHECK_FALSE(parse_retry_after("soon", now));
  CHECK_FALSE(parse_retry_after("", now));
}

TEST_CASE("x-ratelimit-reset durations") {
  CHECK(parse_reset_duration("1s") == 1000ms);
  CHECK(parse_reset_duration("6m0s") == 360000ms);
  CHECK(parse_reset_duration("20ms") == 20ms);
  CHECK(parse_reset_duration("1.5s") == 1500ms);
  CHECK(parse_reset_duration("2") == 2000ms);
  CHECK_FALSE(parse_reset_duration("x"));
  CHECK(parse_retry_after_ms("57") == 57ms);
  CHECK(parse_retry_after_ms("12.2") == 13ms);
  CHECK_FALSE(parse_retry_after_ms(""));
  CHECK_FALSE(parse_retry_after_ms("-1"));
  CHECK_FALSE(parse_retry_after_ms("1s"));
}

TEST_CASE("the token bucket holds its rate") {
  token_bucket bucket(100, 10);
  auto t = clock::now();
  int taken = 0;
  while (bucket.try_take(t))
    ++taken;
  CHECK(taken == 10); // the burst
  CHECK(bucket.wait_for(t) == 10ms);
  t += 1s;
  taken = 0;
  while (bucket.try_take(t))
    ++taken;
  CHECK(taken == 10); // refilled up to the burst, not beyond
  token_bucket unlimited(0, 0);
  CHECK(unlimited.try_take(t));
}

TEST_CASE("the circuit breaker opens, probes once and closes") {
  circuit_breaker breaker(3, 100ms);
  auto t = clock::now();
  breaker.on_failure(t);
  breaker.on_failure(t);
  CHECK(breaker.allow(t));
  breaker.on_failure(t);
  CHECK(breaker.current() == circuit_breaker::state::open);
  CHECK_FALSE(breaker.allow(t + 50ms));
  CHECK(breaker.allow(t + 100ms)); // the probe
  CHECK(breaker.current() == circuit_breaker::state::half_open);
  CHECK_FALSE(breaker.allow(t + 100ms)); // one at a time
  breaker.on_failure(t + 120ms);
  CHECK(breaker.current() == circuit_breaker::state::open);
  CHECK(breaker.allow(t + 220ms));
  breaker.on_success();
  CHECK(breaker.current() == circuit_breaker::state::closed);
  CHECK(breaker.allow(t + 221ms));
}

TEST_CASE("the sliding window holds its capacity in every window") {
  sliding_window w(100, 1000ms);
  auto t = clock::now();
  CHECK(w.wait_for(t, 60) == 0ms);
  w.take(t, 60);
  CHECK(w.wait_for(t + 100ms, 60) == 900ms); // until the first use leaves the window
  CHECK(w.wait_for(t + 100ms, 40) == 0ms);
  w.correct(t, 60, 30); // it used less than estimated
  CHECK(w.wait_for(t + 100ms, 60) == 0ms);
  CHECK(w.used(t + 1000ms) == 0);
  sliding_window unlimited(0, 1000ms);
  CHECK(unlimited.wait_for(t, 1e9) == 0ms);
  sliding_window small(10, 1000ms);
  CHECK(small.wait_for(t, 50) == 0ms); // a single large use may go into an empty window
}

TEST_CASE("a use that happened later than planned holds the window from when it happened") {
  sliding_window w(2, 1000ms);
  auto t = clock::now();
  w.take(t, 1);
  w.take(t + 10ms, 1);
  CHECK(w.wait_for(t + 20ms, 1) == 980ms);
  w.move(t, t + 300ms, 1); // its call left 300 ms late
  CHECK(w.wait_for(t + 20ms, 1) == 990ms); // the other use now leaves first
  CHECK(w.wait_for(t + 1010ms, 1) == 0ms);
  CHECK(w.wait_for(t + 1010ms, 2) == 290ms);
  w.move(t, t + 500ms, 1); // nothing is at t any more
  CHECK(w.used(t + 1010ms) == 1);
}

TEST_CASE("a use in flight while the capacity was 0 still counts once the capacity is back") {
  sliding_window w(2, 1000ms);
  auto t = clock::now();
  w.take(t, 1);
  w.set_capacity(0); // e.g. a node's part of a shared limit dropped to nothing
  w.move(t, t + 300ms, 1);
  w.set_capacity(2);
  CHECK(w.used(t + 1200ms) == 1);
  CHECK(w.wait_for(t + 1200ms, 2) == 100ms);
}

TEST_CASE("a cooldown is shared by every caller of the same origin") {
  auto a = shared_cooldown::of("https://api.example:443");
  auto b = shared_cooldown::of("https://api.example:443");
  auto other = shared_cooldown::of("https://elsewhere:443");
  auto t = clock::now() + 5s;
  a->extend_to(t);
  CHECK(b->until() == t);
  a->extend_to(t - 1s); // never shortened
  CHECK(b->until() == t);
  CHECK(other->until() < t);
}
