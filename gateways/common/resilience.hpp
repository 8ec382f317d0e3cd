#pragma once
// The pieces that keep remote model calls within a provider's limits and
// survive its failures. Plain classes, owned by one gateway actor each.

#include "gateways/common/gateway_api.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace inflow::gateways {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Why a model call failed. Every value is decided in is_retriable().
enum class call_error : uint8_t {
  connect = 1,   ///< could not connect
  timeout,       ///< no complete response within timeout_ms
  reset,         ///< the connection broke mid-call
  too_large,     ///< response over max_response_bytes (or headers over their cap)
  rate_limited,  ///< HTTP 429
  unavailable,   ///< HTTP 502, 503, 504
  server_error,  ///< other HTTP 5xx
  unauthorized,  ///< HTTP 401, 403: the credential is missing, wrong or expired
  client_error,  ///< other HTTP 4xx than 408/429: this request is wrong
  bad_response,  ///< 2xx but not the shape we expect (invalid JSON, wrong count, wrong type)
};

std::string_view to_string(call_error e);

/// What a call's callers learn of an error that ended it.
constexpr failure failure_of(call_error e) {
  if (e == call_error::unauthorized)
    return failure::unauthorized;
  return e == call_error::client_error ? failure::rejected : failure::failed;
}

/// Exhaustive on purpose: a new error cannot become retriable by accident.
constexpr bool is_retriable(call_error e) {
  switch (e) {
    case call_error::connect:
    case call_error::timeout:
    case call_error::reset:
    case call_error::rate_limited:
    case call_error::unavailable:
    case call_error::server_error:
      return true;
    case call_error::too_large:
    case call_error::unauthorized:
    case call_error::client_error:
    case call_error::bad_response:
      return false;
  }
  return false;
}

/// The error an HTTP status means, if any (2xx: none).
std::optional<call_error> classify_status(int status);

/// Exponential backoff with full jitter: uniform in [0, min(max, initial * 2^attempt)].
milliseconds backoff(int attempt, milliseconds initial, milliseconds max, std::mt19937_64& rng);

/// `Retry-After`: delta seconds or an HTTP-date. nullopt when absent or unreadable.
std::optional<milliseconds> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

/// `retry-after-ms` (OpenAI, Azure OpenAI): milliseconds, exact where `Retry-After` is rounded up
/// to whole seconds. nullopt when absent or unreadable.
std::optional<milliseconds> parse_retry_after_ms(std::string_view value);

/// `x-ratelimit-reset-requests` / `-tokens` as OpenAI sends them: `1s`, `6m0s`, `20ms`, `1.5s`.
std::optional<milliseconds> parse_reset_duration(std::string_view value);

/// Requests per second as a token bucket; `rate` 0 means unlimited.
class token_bucket {
public:
  token_bucket(double rate_per_second, double burst);
  bool try_take(clock::time_point now, double tokens = 1);
  /// How long until `tokens` are available (zero if they are now).
  milliseconds wait_for(clock::time_point now, double tokens = 1);
  void set_rate(double rate_per_second, double burst);
  /// Takes (or gives back, when negative) tokens after the fact: the balance may go below zero.
  void adjust(clock::time_point now, double tokens);

private:
  void refill(clock::time_point now);
  double rate_;
  double burst_;
  double tokens_;
  clock::time_point last_;
};

/// At most `capacity` units in any window of `window` length: every use is
/// remembered until it is older than the window. Uses can be corrected after
/// the fact (an estimate replaced by what was really used). A single use
/// larger than the capacity may go when the window is empty.
class sliding_window {
public:
  sliding_window(double capacity, milliseconds window) : capacity_(capacity), window_(window) {}
  /// How long until `amount` fits (zero if it does now). Unlimited when capacity is 0.
  milliseconds wait_for(clock::time_point now, double amount);
  void take(clock::time_point at, double amount);
  /// Replaces a use of `estimated` taken at `at` by `actual`.
  void correct(clock::time_point at, double estimated, double actual);
  /// Moves a use of `amount` taken at `from` to `to`: it happened later than planned.
  void move(clock::time_point from, clock::time_point to, double amount);
  double used(clock::time_point now);
  /// A new capacity; what was used in the window still counts against it.
  void set_capacity(double capacity) { capacity_ = capacity; }
  double capacity() const { return capacity_; }

private:
  void expire(clock::time_point now);
  void insert(clock::time_point at, double amount);
  double capacity_;
  milliseconds window_;
  std::deque<std::pair<clock::time_point, double>> uses_; ///< in time order
};

/// A cooldown shared by every gateway of the process that calls the same
/// origin: a provider's "wait" applies to all our models on it.
class shared_cooldown {
public:
  /// The cooldown of `origin` (scheme://host:port), created on first use. Thread-safe.
  static std::shared_ptr<shared_cooldown> of(const std::string& origin);
  void extend_to(clock::time_point until);
  clock::time_point until() const;

private:
  std::atomic<int64_t> until_ns_{0};
};

/// closed -> open after `threshold` consecutive failures; open -> half-open after
/// `open_for`; half-open lets one call through: success closes, failure reopens.
class circuit_breaker {
public:
  enum class state : uint8_t { closed, open, half_open };
  circuit_breaker(int threshold, milliseconds open_for) : threshold_(threshold), open_for_(open_for) {}

  /// May a call start now? In half-open, only one call at a time.
  bool allow(clock::time_point now);
  void on_success();
  void on_failure(clock::time_point now);
  state current() const { return state_; }
  /// When an open breaker lets the next probe through.
  clock::time_point reopens_at() const { return opened_at_ + open_for_; }

private:
  int threshold_;
  milliseconds open_for_;
  state state_ = state::closed;
  int failures_ = 0;
  bool probe_in_flight_ = false;
  clock::time_point opened_at_{};
};

std::string_view to_string(circuit_breaker::state s);

} // namespace inflow::gateways
