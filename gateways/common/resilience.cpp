#include "gateways/common/resilience.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <charconv>
#include <cmath>
#include <ctime>

namespace inflow::gateways {

std::string_view to_string(call_error e) {
  switch (e) {
    case call_error::connect: return "connect";
    case call_error::timeout: return "timeout";
    case call_error::reset: return "reset";
    case call_error::too_large: return "too_large";
    case call_error::rate_limited: return "rate_limited";
    case call_error::unavailable: return "unavailable";
    case call_error::server_error: return "server_error";
    case call_error::unauthorized: return "unauthorized";
    case call_error::client_error: return "client_error";
    case call_error::bad_response: return "bad_response";
  }
  return "unknown";
}

std::optional<call_error> classify_status(int status) {
  if (status >= 200 && status < 300)
    return std::nullopt;
  if (status == 429)
    return call_error::rate_limited;
  if (status == 408)
    return call_error::timeout;
  if (status == 502 || status == 503 || status == 504)
    return call_error::unavailable;
  if (status >= 500)
    return call_error::server_error;
  if (status == 401 || status == 403)
    return call_error::unauthorized;
  if (status >= 400)
    return call_error::client_error;
  return call_error::bad_response; // 1xx, 3xx: nothing we can use
}

milliseconds backoff(int attempt, milliseconds initial, milliseconds max, std::mt19937_64& rng) {
  double cap = std::min<double>(static_cast<double>(max.count()),
                                static_cast<double>(initial.count()) * std::pow(2.0, std::min(attempt, 30)));
  return milliseconds(static_cast<int64_t>(std::uniform_real_distribution<double>(0.0, cap)(rng)));
}

std::optional<milliseconds> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  while (!value.empty() && value.front() == ' ')
    value.remove_prefix(1);
  if (value.empty())
    return std::nullopt;
  int64_t seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc{} && end == value.data() + value.size())
    return seconds < 0 ? std::nullopt : std::optional<milliseconds>(milliseconds(seconds * 1000));
  // IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  std::string text(value);
  if (!strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm))
    return std::nullopt;
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  auto wait = std::chrono::duration_cast<milliseconds>(at - now);
  return std::max(wait, milliseconds(0));
}

std::optional<milliseconds> parse_retry_after_ms(std::string_view value) {
  double ms = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
  if (value.empty() || ec != std::errc{} || end != value.data() + value.size() || ms < 0)
    return std::nullopt;
  return milliseconds(static_cast<int64_t>(std::ceil(ms)));
}

std::optional<milliseconds> parse_reset_duration(std::string_view value) {
  double total_ms = 0;
  bool any = false;
  while (!value.empty()) {
    double number = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (ec != std::errc{})
      return std::nullopt;
    value.remove_prefix(static_cast<size_t>(end - value.data()));
    double unit;
    if (value.rfind("ms", 0) == 0) {
      unit = 1;
      value.remove_prefix(2);
    } else if (value.rfind("s", 0) == 0) {
      unit = 1000;
      value.remove_prefix(1);
    } else if (value.rfind("m", 0) == 0) {
      unit = 60'000;
      value.remove_prefix(1);
    } else if (value.rfind("h", 0) == 0) {
      unit = 3'600'000;
      value.remove_prefix(1);
    } else if (value.empty() && !any) {
      unit = 1000; // a bare number: seconds
    } else {
      return std::nullopt;
    }
    total_ms += number * unit;
    any = true;
  }
  if (!any)
    return std::nullopt;
  return milliseconds(static_cast<int64_t>(total_ms + 0.5));
}

token_bucket::token_bucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst), last_(clock::now()) {}

void token_bucket::set_rate(double rate, double burst) {
  refill(clock::now());
  rate_ = rate;
  burst_ = burst;
  tokens_ = std::min(tokens_, burst_);
}

void token_bucket::refill(clock::time_point now) {
  if (now <= last_)
    return;
  tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
  last_ = now;
}

bool token_bucket::try_take(clock::time_point now, double tokens) {
  if (rate_ <= 0)
    return true;
  refill(now);
  if (tokens_ < tokens)
    return false;
  tokens_ -= tokens;
  return true;
}

void token_bucket::adjust(clock::time_point now, double tokens) {
  if (rate_ <= 0)
    return;
  refill(now);
  tokens_ = std::min(burst_, tokens_ - tokens);
}

milliseconds token_bucket::wait_for(clock::time_point now, double tokens) {
  if (rate_ <= 0)
    return milliseconds(0);
  refill(now);
  if (tokens_ >= tokens)
    return milliseconds(0);
  return milliseconds(static_cast<int64_t>(std::ceil((tokens - tokens_) / rate_ * 1000.0)));
}

void sliding_window::expire(clock::time_point now) {
  while (!uses_.empty() && uses_.front().first + window_ <= now)
    uses_.pop_front();
}

double sliding_window::used(clock::time_point now) {
  expire(now);
  double sum = 0;
  for (const auto& u : uses_)
    sum += u.second;
  return sum;
}

milliseconds sliding_window::wait_for(clock::time_point now, double amount) {
  if (capacity_ <= 0)
    return milliseconds(0);
  double sum = used(now);
  if (uses_.empty() || sum + amount <= capacity_)
    return milliseconds(0);
  // Walk the uses from the oldest until enough of them have left the window.
  for (const auto& [at, n] : uses_) {
    sum -= n;
    if (sum + amount <= capacity_ || sum <= 0)
      return std::chrono::ceil<milliseconds>(at + window_ - now);
  }
  return std::chrono::ceil<milliseconds>(uses_.back().first + window_ - now);
}

void sliding_window::take(clock::time_point at, double amount) {
  if (capacity_ > 0)
    insert(at, amount);
}

void sliding_window::insert(clock::time_point at, double amount) {
  auto pos = std::upper_bound(uses_.begin(), uses_.end(), at, [](auto t, const auto& u) { return t < u.first; });
  uses_.insert(pos, {at, amount});
}

void sliding_window::correct(clock::time_point at, double estimated, double actual) {
  for (auto& u : uses_)
    if (u.first == at && u.second == estimated) {
      u.second = actual;
      return;
    }
}

void sliding_window::move(clock::time_point from, clock::time_point to, double amount) {
  for (auto it = uses_.begin(); it != uses_.end(); ++it)
    if (it->first == from && it->second == amount) {
      uses_.erase(it);
      insert(to, amount); // even if the capacity dropped to 0 meanwhile: it counts again once raised
      return;
    }
}

std::shared_ptr<shared_cooldown> shared_cooldown::of(const std::string& origin) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<shared_cooldown>> all;
  std::lock_guard<std::mutex> guard(mutex);
  auto& c = all[origin];
  if (!c)
    c = std::make_shared<shared_cooldown>();
  return c;
}

void shared_cooldown::extend_to(clock::time_point until) {
  int64_t ns = until.time_since_epoch().count();
  int64_t old = until_ns_.load();
  while (ns > old && !until_ns_.compare_exchange_weak(old, ns)) {
  }
}

clock::time_point shared_cooldown::until() const {
  return clock::time_point(clock::duration(until_ns_.load()));
}

bool circuit_breaker::allow(clock::time_point now) {
  switch (state_) {
    case state::closed:
      return true;
    case state::open:
      if (now < reopens_at())
        return false;
      state_ = state::half_open;
      probe_in_flight_ = false;
      [[fallthrough]];
    case state::half_open:
      if (probe_in_flight_)
        return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void circuit_breaker::on_success() {
  state_ = state::closed;
  failures_ = 0;
  probe_in_flight_ = false;
}

void circuit_breaker::on_failure(clock::time_point now) {
  probe_in_flight_ = false;
  if (state_ == state::half_open || ++failures_ >= threshold_) {
    state_ = state::open;
    opened_at_ = now;
    failures_ = 0;
  }
}

std::string_view to_string(circuit_breaker::state s) {
  switch (s) {
    case circuit_breaker::state::closed: return "closed";
    case circuit_breaker::state::open: return "open";
    case circuit_breaker::state::half_open: return "half_open";
  }
  return "unknown";
}

} // namespace inflow::gateways
