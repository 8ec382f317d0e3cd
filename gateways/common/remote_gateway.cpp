#include "gateways/common/remote_gateway.hpp"

#include "gateways/common/gateway_actor.hpp"
#include "gateways/common/gateway_probe.hpp"
#include "gateways/common/batcher.hpp"
#include "gateways/common/resilience.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <deque>

namespace inflow::gateways {

namespace {

using gateways::flush_atom;
using wake_atom = caf::atom_constant<caf::atom("wake")>;

struct call_done {
  uint64_t batch_id = 0;
  http::result result;
};

/// A call's request was written at `at`, later than it was counted against the limits.
struct call_sent {
  uint64_t batch_id = 0;
  clock::time_point at;
};

} // namespace
} // namespace inflow::gateways

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::gateways::call_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::gateways::call_sent)

namespace inflow::gateways {

namespace {

/// A provider's one-second limit windows, a little longer here: calls that left a window apart may
/// meet the provider closer together (calls paced exactly 1/rate apart sit on the window's edge;
/// 50 ms covers the jitter measured on a loaded two-core machine, for requests and tokens alike).
constexpr milliseconds limit_window{1050};

struct outgoing {
  uint64_t id;
  batcher<caf::strong_actor_ptr>::batch batch;
  int attempts = 0;
  int64_t estimated_tokens = 0;   ///< taken from the token budget when the call left
  clock::time_point not_before{}; ///< backoff: no call before this
  clock::time_point started{};    ///< of the call in flight
  clock::time_point counted{};    ///< where the call sits in the limit windows: when it left
  clock::time_point ready_at = clock::now(); ///< when the batch was ready to go
  clock::time_point created = ready_at;      ///< its records' deadline counts from here
  bool halved = false;                       ///< half of a refused call: takes no more inputs
  bool held = false;                         ///< counted in held_rows (on_failure: block)
  bool refreshed = false;                    ///< the credential was read again after a 401/403
  uint64_t credential_generation = 0;        ///< of the credential its call carried
};

/// Dead-lettered rows of one cause, between two warnings about it.
struct failure_note {
  uint64_t rows = 0;
  clock::time_point warned{};
};

struct remote_state {
  config::model_config cfg;
  model_info info;
  scorer_actor fallback; ///< takes what this model cannot score; may be unset
  bool warned_fallback = false;
  std::shared_ptr<const codec> codec_;
  std::shared_ptr<http::client> client;
  std::shared_ptr<gateway_probe> probe;
  metrics::registry* metrics = nullptr;
  std::optional<batcher<caf::strong_actor_ptr>> pending;
  size_t width = 0;
  std::deque<outgoing> ready;             ///< batches waiting for their call, oldest first
  std::map<uint64_t, outgoing> in_flight; ///< calls the provider has not answered
  uint64_t next_id = 1;
  token_bucket rate{0, 0};
  /// The requests in any one second (plus 50 ms for jitter): this node's part of the limit when
  /// other nodes host the model too, so that the parts add up to it in every window.
  std::optional<sliding_window> requests;
  bool paused = false; ///< no budget yet: the cluster has not given this node its part
  std::optional<sliding_window> tokens; ///< tokens per minute, held in every one-second window
  token_bucket token_pace{0, 0};        ///< spreads those tokens evenly over the second
  double estimate_scale = 1.0;          ///< reported usage / our estimate, learnt from responses
  double tokens_per_input = 0; ///< reported usage per input, learnt from responses (at first, estimated)
  std::optional<circuit_breaker> breaker;
  std::shared_ptr<shared_cooldown> cooldown; ///< this model's, or its origin's (cooldown_scope)
  std::map<std::string, failure_note> failures; ///< by cause: warned at most once a minute
  bool warned_holding = false;
  clock::time_point wake_at = clock::time_point::max();
  std::mt19937_64 rng{std::random_device{}()};
  static inline const char* name = "inflow.gateway.remote";
};

/// The gateway role, its own timers and its calls' answers (from the HTTP client's thread).
using remote_interface =
  gateway_actor::extend<caf::reacts_to<flush_atom, uint64_t>, caf::reacts_to<wake_atom>, caf::reacts_to<call_done>,
                        caf::reacts_to<call_sent>>;
using remote_actor = remote_interface::stateful_base<remote_state>;

void dispatch(remote_actor* self);
void track_breaker(remote_actor* self);
void release(remote_actor* self, outgoing& b);

void answer(remote_actor* self, outgoing& b, score_reply whole) {
  split_results(b.batch.parts, std::move(whole), self->state.info, [self](const caf::strong_actor_ptr& to, score_reply r) {
    self->send(caf::actor_cast<caller_actor>(to), std::move(r));
  });
}

/// Hands a batch this model cannot score to the fallback model, in the name of
/// each original caller, so that the fallback answers them directly.
void to_fallback(remote_actor* self, outgoing& b, const std::string& why) {
  auto& st = self->state;
  if (!st.warned_fallback) {
    spdlog::warn("model {}: {}; scoring with the fallback model", st.cfg.name, why);
    st.warned_fallback = true;
  }
  st.probe->fallback_rows.inc(b.batch.size());
  size_t next = 0;
  for (auto& part : b.batch.parts) {
    const auto first = static_cast<std::ptrdiff_t>(next), k = static_cast<std::ptrdiff_t>(part.ids.size());
    score_request request{std::move(part.ids), {}, {}, b.batch.traceparent};
    if (st.width == 0)
      request.texts.assign(b.batch.texts.begin() + first, b.batch.texts.begin() + first + k);
    else
      request.rows.assign(b.batch.rows.begin() + first * static_cast<std::ptrdiff_t>(st.width),
                          b.batch.rows.begin() + (first + k) * static_cast<std::ptrdiff_t>(st.width));
    next += static_cast<size_t>(k);
    caf::send_as(caf::actor_cast<caf::actor>(part.caller), st.fallback, std::move(request));
  }
}

void wake_in(remote_actor* self, clock::time_point at) {
  auto& st = self->state;
  if (at >= st.wake_at && st.wake_at > clock::now())
    return; // an earlier wake-up is already on its way
  st.wake_at = at;
  auto delay = std::chrono::duration_cast<milliseconds>(at - clock::now()) + milliseconds(1);
  self->delayed_send(self, std::max(delay, milliseconds(1)), wake_atom::value);
}

/// Cooldown from the provider's own hints, shared by every caller of this gateway.
void apply_cooldown(remote_actor* self, const http::result& r) {
  auto& st = self->state;
  // `retry-after-ms` is exact; `Retry-After` is rounded up to seconds, which costs a second's calls.
  std::optional<milliseconds> wait = parse_retry_after_ms(r.header("retry-after-ms"));
  if (!wait) {
    wait = parse_retry_after(r.header("retry-after"), std::chrono::system_clock::now());
    for (const char* h : {"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"})
      if (r.status == 429)
        if (auto reset = parse_reset_duration(r.header(h)))
          wait = std::max(wait.value_or(milliseconds(0)), *reset);
  }
  if (wait && *wait > milliseconds(0)) {
    // A proxy's `Retry-After: 3600` must not stop a stream for an hour.
    auto capped = std::min(*wait, milliseconds(st.cfg.max_cooldown_ms));
    auto until = clock::now() + capped;
    if (until > st.cooldown->until()) {
      st.cooldown->extend_to(until);
      if (capped < *wait)
        spdlog::warn("model {}: provider asked to wait {} ms; waiting max_cooldown_ms={} ms", st.cfg.name,
                     wait->count(), capped.count());
      else
        spdlog::warn("model {}: provider asked to wait {} ms; no call {}leaves before then", st.cfg.name,
                     wait->count(), st.cfg.cooldown_per_origin ? "to its host " : "");
    }
  }
}

/// What to do about each cause of dead letters, for the warning that reports them.
std::string_view what_to_do(const std::string& cause) {
  if (cause == "unauthorized")
    return "check the model's credential (api_key, api_key_file or the provider's own variables)";
  if (cause == "client_error")
    return "the provider refuses these inputs; the dead letters carry its answer";
  if (cause == "bad_response" || cause == "too_large")
    return "check endpoint, provider and max_response_bytes";
  if (cause == "deadline")
    return "raise deadline_ms, or the provider's limits";
  return "the provider keeps failing; `on_failure: block` keeps records until it answers, "
         "`inflow redrive` replays dead letters";
}

/// Dead-letters a batch (or hands it to the fallback): counted by cause, and said in the log
/// once a minute per cause, with how many and what to do.
void fail(remote_actor* self, outgoing& b, failure kind, const std::string& cause, const std::string& why) {
  auto& st = self->state;
  release(self, b);
  if (st.cfg.on_failure == config::failure_policy::fallback && st.fallback)
    return to_fallback(self, b, why);
  st.metrics
    ->get_counter("inflow_gateway_failed_rows_total", "Rows a model could not score, by cause (dead-lettered).",
                  metrics::label("model", st.cfg.name) + "," + metrics::label("reason", cause))
    .inc(b.batch.size());
  auto& note = st.failures[cause];
  note.rows += b.batch.size();
  auto now = clock::now();
  if (note.warned == clock::time_point{} || now - note.warned >= std::chrono::minutes(1)) {
    spdlog::warn("model {}: {} record(s) dead-lettered{}: {}; {}", st.cfg.name, note.rows,
                 note.warned == clock::time_point{} ? "" : " in the last minute", why, what_to_do(cause));
    note = {0, now};
  }
  answer(self, b, failed_reply({}, kind, why));
}

/// on_failure: block: the batch stays until the provider answers, however long that takes.
void hold(remote_actor* self, outgoing& b, const std::string& why) {
  auto& st = self->state;
  if (!b.held) {
    b.held = true;
    st.probe->held_rows.add(static_cast<int64_t>(b.batch.size()));
  }
  if (!st.warned_holding) {
    spdlog::warn("model {}: retries ran out ({}); holding its records until the provider answers again "
                 "(on_failure: block): their partitions pause when full, nothing is dead-lettered",
                 st.cfg.name, why);
    st.warned_holding = true;
  }
}

void release(remote_actor* self, outgoing& b) {
  auto& st = self->state;
  if (b.held) {
    b.held = false;
    st.probe->held_rows.add(-static_cast<int64_t>(b.batch.size()));
    if (st.probe->held_rows.value() == 0 && st.warned_holding) {
      spdlog::info("model {}: the provider answers again; no records held", st.cfg.name);
      st.warned_holding = false;
    }
  }
}

void on_done(remote_actor* self, call_done& done) {
  auto& st = self->state;
  auto it = st.in_flight.find(done.batch_id);
  if (it == st.in_flight.end())
    return;
  outgoing b = std::move(it->second);
  st.in_flight.erase(it);
  const auto& r = done.result;
  auto now = clock::now();
  st.probe->predict_latency.observe(std::chrono::duration<double>(now - b.started).count());

  std::optional<call_error> error;
  std::string message = r.message;
  switch (r.error) {
    case http::result::failure::none: error = classify_status(r.status); break;
    case http::result::failure::connect: error = call_error::connect; break;
    case http::result::failure::timeout: error = call_error::timeout; break;
    case http::result::failure::reset: error = call_error::reset; break;
    case http::result::failure::too_large: error = call_error::too_large; break;
  }
  std::optional<call_output> output;
  if (!error && !st.codec_->accepts(r.header("content-type"))) {
    error = call_error::bad_response;
    message = fmt::format("unexpected content type '{}'", r.header("content-type"));
  } else if (!error) {
    output = st.codec_->parse(r, b.batch.size(), message);
    if (!output)
      error = call_error::bad_response;
  } else if (r.error == http::result::failure::none) {
    message = fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200));
    apply_cooldown(self, r);
  }

  if (!error) {
    st.breaker->on_success();
    st.probe->failing_calls.set(0);
    release(self, b);
    st.probe->rows.inc(b.batch.size());
    st.probe->tokens_in.inc(static_cast<uint64_t>(output->tokens_in));
    st.probe->tokens_out.inc(static_cast<uint64_t>(output->tokens_out));
    st.probe->cost_micro_usd.inc(static_cast<uint64_t>(
      static_cast<double>(output->tokens_in) * st.cfg.price_per_million_input_tokens +
      static_cast<double>(output->tokens_out) * st.cfg.price_per_million_output_tokens));
    if (auto used = output->tokens_in + output->tokens_out; used > 0 && b.estimated_tokens > 0) {
      st.tokens->correct(b.counted, static_cast<double>(b.estimated_tokens), static_cast<double>(used));
      st.token_pace.adjust(now, static_cast<double>(used - b.estimated_tokens));
      // Learn how far off the estimates are, so that the budget is neither overrun nor wasted.
      auto raw = static_cast<double>(b.estimated_tokens) / st.estimate_scale;
      st.estimate_scale = 0.5 * st.estimate_scale + 0.5 * (static_cast<double>(used) / raw);
      auto per_input = static_cast<double>(used) / static_cast<double>(b.batch.size());
      st.tokens_per_input = st.tokens_per_input > 0 ? 0.5 * st.tokens_per_input + 0.5 * per_input : per_input;
    }
    score_reply whole;
    whole.values = std::move(output->values);
    whole.width = static_cast<uint32_t>(output->width);
    whole.texts = std::move(output->texts);
    answer(self, b, std::move(whole));
  } else {
    st.metrics->get_counter("inflow_gateway_call_errors_total", "Failed model calls by type.",
                            metrics::label("model", st.cfg.name) + "," + metrics::label("type", std::string(to_string(*error))))
      .inc();
    st.probe->errors.inc();
    st.probe->failing_calls.add(1);
    // What says nothing of the provider's health does not count: a bad input, a bad answer, a 429.
    if (*error != call_error::client_error && *error != call_error::bad_response && *error != call_error::rate_limited)
      st.breaker->on_failure(now);
    const bool block = st.cfg.on_failure == config::failure_policy::block;
    auto* credential = st.codec_->renewable_credential();
    // Renewed since this call left (by an earlier refusal, or ahead of expiry), or renewed now.
    if (*error == call_error::unauthorized && !b.refreshed && credential &&
        (credential->generation() != b.credential_generation || credential->refresh())) {
      // A rotated key, a renewed token in api_key_file, a revoked access token: once more at once, not counted.
      spdlog::info("model {}: the provider refused the credential; got it again and retrying", st.cfg.name);
      b.refreshed = true;
      --b.attempts;
      b.not_before = now;
      st.ready.push_front(std::move(b));
    } else if ((*error == call_error::client_error || (*error == call_error::rate_limited && b.attempts >= 2)) &&
               b.batch.size() > 1) {
      // One input the provider refuses (over its token limit, caught by a filter) fails the whole
      // call: halve it until that input is alone, so only it fails. A call refused for the rate
      // twice, after waiting as told, may ask for more than the provider allows at once: halve it too.
      release(self, b);
      auto [first, second] = batcher<caf::strong_actor_ptr>::halve(std::move(b.batch), st.width);
      for (auto* half : {&second, &first})
        st.ready.push_front({st.next_id++, std::move(*half), 0, 0, now, {}, {}, now, b.created, true});
    } else if ((is_retriable(*error) && (b.attempts < st.cfg.retry.max_attempts || block)) ||
               (*error == call_error::unauthorized && block)) {
      if (block && b.attempts >= st.cfg.retry.max_attempts)
        hold(self, b, fmt::format("{}: {}", to_string(*error), message));
      b.not_before = now + backoff(b.attempts - 1, milliseconds(st.cfg.retry.initial_backoff_ms),
                                   milliseconds(st.cfg.retry.max_backoff_ms), st.rng);
      b.ready_at = now;
      st.ready.push_front(std::move(b)); // keep its place in line
    } else {
      fail(self, b, failure_of(*error), std::string(to_string(*error)),
           fmt::format("model {} failed after {} attempt(s): {}: {}", st.cfg.name, b.attempts, to_string(*error),
                       message));
    }
  }
  track_breaker(self);
  dispatch(self);
}

/// Logs and publishes breaker transitions (a degraded mode: warn once per change).
void track_breaker(remote_actor* self) {
  auto& st = self->state;
  auto now_state = st.breaker->current();
  if (static_cast<int64_t>(now_state) == st.probe->circuit.value())
    return;
  st.probe->circuit.set(static_cast<int64_t>(now_state));
  if (now_state == circuit_breaker::state::open)
    spdlog::warn("model {}: circuit open after repeated failures; calls pause for {} ms", st.cfg.name,
                 st.cfg.breaker.open_ms);
  else if (now_state == circuit_breaker::state::closed)
    spdlog::info("model {}: circuit closed, the provider answers again", st.cfg.name);
}

void send_call(remote_actor* self, outgoing b, clock::time_point now) {
  auto& st = self->state;
  ++b.attempts;
  b.started = b.counted = now;
  st.probe->wait.observe(std::chrono::duration<double>(now - b.ready_at).count());
  auto id = b.id;
  if (auto* credential = st.codec_->renewable_credential())
    b.credential_generation = credential->generation(); // before build(): a renewal meanwhile shows as new
  auto call = st.codec_->build({b.batch.rows.data(), b.batch.size(), st.width, b.batch.texts.data()}, id);
  if (!b.batch.traceparent.empty())
    call.headers.emplace_back("traceparent", b.batch.traceparent);
  st.probe->batches.inc();
  st.probe->batch_size.observe(static_cast<double>(b.batch.size()));
  st.in_flight.emplace(id, std::move(b));
  auto target = caf::actor_cast<remote_interface>(self);
  call.on_sent = [target, id](clock::time_point at) { caf::anon_send(target, call_sent{id, at}); };
  st.client->submit(std::move(call), [target, id](http::result r) { caf::anon_send(target, call_done{id, std::move(r)}); });
}

/// Dead-letters the ready batches whose records waited deadline_ms; returns when the next one will.
clock::time_point expire(remote_actor* self, clock::time_point now) {
  auto& st = self->state;
  auto next = clock::time_point::max();
  if (st.cfg.deadline_ms <= 0)
    return next;
  const milliseconds deadline(st.cfg.deadline_ms);
  for (auto it = st.ready.begin(); it != st.ready.end();) {
    if (now - it->created < deadline) {
      next = std::min(next, it->created + deadline);
      ++it;
      continue;
    }
    auto b = std::move(*it);
    it = st.ready.erase(it);
    fail(self, b, failure::deadline, "deadline",
         fmt::format("model {}: no answer within deadline_ms={} ({} attempt(s))", st.cfg.name, st.cfg.deadline_ms,
                     b.attempts));
  }
  return next;
}

/// Inputs one call may carry: max_batch, and a share of the token window by what an input has
/// cost so far. Calls sized to the whole window fit it badly (one waits for the other to leave)
/// and, inputs varying, now and then ask for more than the provider allows at once. The call
/// that no longer fits a window waits for the next, so smaller calls waste less of it: a call
/// takes a sixteenth, or a larger share where the request limit allows fewer calls (0.8 of it,
/// as calls of whole inputs come out a little smaller than their share).
size_t inputs_per_call(const remote_state& st) {
  size_t most = st.pending->max_batch();
  if (st.tokens->capacity() > 0 && st.tokens_per_input > 0) {
    const double rps = st.requests ? st.requests->capacity() : 0;
    const double calls_per_window = rps > 0 ? std::clamp(std::floor(0.8 * rps), std::min(rps, 2.0), 16.0) : 16.0;
    most = std::clamp(static_cast<size_t>(st.tokens->capacity() / calls_per_window / st.tokens_per_input), size_t(1),
                      most);
  }
  return most;
}

/// Fits the next batch to inputs_per_call. Inputs that arrived while it waited for its call ride
/// in it: a rate-limited provider gets fewer, fuller calls instead of a growing queue of small
/// ones. One formed before a call taught the gateway what an input costs may be too large now:
/// what is over goes right behind it. A batch that was sent keeps its inputs (a retry), and a
/// half of a refused one takes no more (a bisection must end). Returns the batch's position.
std::deque<outgoing>::iterator fit(remote_state& st, std::deque<outgoing>::iterator it, size_t most) {
  if (it->attempts > 0)
    return it;
  if (!it->halved && !st.pending->empty() && it->batch.size() < most)
    batcher<caf::strong_actor_ptr>::append(it->batch, st.pending->take(most - it->batch.size()));
  if (it->batch.size() <= most)
    return it;
  const auto at = it - st.ready.begin();
  auto [first, over] = batcher<caf::strong_actor_ptr>::cut(std::move(it->batch), most, st.width);
  it->batch = std::move(first);
  outgoing rest{st.next_id++, std::move(over)};
  rest.ready_at = it->ready_at;
  rest.created = it->created;
  rest.halved = it->halved;
  st.ready.insert(std::next(it), std::move(rest));
  return st.ready.begin() + at;
}

void dispatch(remote_actor* self) {
  auto& st = self->state;
  const size_t per_call = inputs_per_call(st);
  while (st.pending->pending_rows() >= per_call)
    st.ready.push_back({st.next_id++, st.pending->take(per_call)});
  auto wake = expire(self, clock::now());
  while (!st.paused && !st.ready.empty() && st.in_flight.size() < static_cast<size_t>(st.cfg.limits.max_in_flight)) {
    auto now = clock::now();
    // The oldest batch not backing off goes next: one waiting to be retried holds nobody up.
    auto it = std::find_if(st.ready.begin(), st.ready.end(), [now](const outgoing& o) { return o.not_before <= now; });
    if (it == st.ready.end()) {
      for (const auto& o : st.ready)
        wake = std::min(wake, o.not_before);
      break;
    }
    it = fit(st, it, per_call);
    auto& b = *it;
    if (st.cfg.limits.tokens_per_minute > 0) // only a token budget needs the estimate
      b.estimated_tokens = static_cast<int64_t>(std::llround(
        st.estimate_scale * static_cast<double>(st.codec_->estimate_tokens(
                              {b.batch.rows.data(), b.batch.size(), st.width, b.batch.texts.data()}))));
    auto needed = static_cast<double>(b.estimated_tokens);
    const double pace_burst = st.cfg.limits.tokens_per_minute / 600.0;
    auto at = std::max({st.cooldown->until(), now + st.rate.wait_for(now),
                        now + (st.requests ? st.requests->wait_for(now, 1) : milliseconds(0)),
                        now + st.tokens->wait_for(now, needed),
                        now + st.token_pace.wait_for(now, std::min(needed, pace_burst))});
    if (at > now) {
      wake = std::min(wake, at);
      break;
    }
    bool allowed = st.breaker->allow(now);
    track_breaker(self);
    if (!allowed && st.fallback && st.cfg.on_failure == config::failure_policy::fallback) {
      auto next = std::move(b); // degraded mode: the fallback takes the traffic
      st.ready.erase(it);
      to_fallback(self, next, "circuit open");
      continue;
    }
    if (!allowed) {
      wake = std::min(wake, std::max(st.breaker->reopens_at(), now + milliseconds(1)));
      break;
    }
    st.rate.try_take(now);
    if (st.requests)
      st.requests->take(now, 1);
    st.tokens->take(now, needed);
    st.token_pace.adjust(now, needed);
    auto next = std::move(b);
    st.ready.erase(it);
    send_call(self, std::move(next), now);
  }
  if (!st.ready.empty() && wake != clock::time_point::max())
    wake_in(self, wake);
  size_t waiting = st.pending->pending_rows();
  for (const auto& b : st.ready)
    waiting += b.batch.size();
  st.probe->queued_rows.set(static_cast<int64_t>(waiting));
}

/// This node's part of the model's limits (0: none), so that dashboards can show the headroom left.
void publish_limits(remote_state& st, double requests_per_second, double tokens_per_minute) {
  const auto model = metrics::label("model", st.cfg.name);
  st.metrics
    ->get_gauge("inflow_gateway_limit_requests_per_minute",
                "This node's part of the model's request limit, per minute (0: none).", model)
    .set(std::llround(requests_per_second * 60));
  st.metrics
    ->get_gauge("inflow_gateway_limit_tokens_per_minute",
                "This node's part of the model's token limit, per minute (0: none).", model)
    .set(std::llround(tokens_per_minute));
}

remote_interface::behavior_type remote_gateway(remote_actor* self, config::model_config cfg, model_info info, size_t width,
                             std::shared_ptr<const codec> c, std::shared_ptr<gateway_probe> probe,
                             metrics::registry* metrics) {
  self->set_exception_handler(end_on_exception);
  auto& st = self->state;
  st.info = std::move(info);
  st.width = width;
  // APIs without batches get one input per call (concurrency still applies).
  size_t per_call = c->max_inputs_per_call();
  size_t max_batch = static_cast<size_t>(cfg.batch.max_batch);
  st.pending.emplace(per_call ? std::min(per_call, max_batch) : max_batch, width,
                     milliseconds(cfg.batch.max_linger_ms));
  st.codec_ = std::move(c);
  st.probe = std::move(probe);
  st.metrics = metrics;
  // A burst of one call: even pacing; and never more than the limit in any 1.05 s, since calls
  // paced exactly 1/rate apart met the provider's one-second window limit + 1 times (jitter).
  st.rate.set_rate(cfg.limits.requests_per_second, 1.0);
  if (cfg.limits.requests_per_second > 0)
    st.requests.emplace(cfg.limits.requests_per_second, limit_window);
  // Tokens: a sixtieth of the minute's budget in any such window, spread evenly (calls of many
  // inputs are counted per input, and corrected by the usage the provider reports).
  st.tokens.emplace(cfg.limits.tokens_per_minute / 60.0, limit_window);
  st.token_pace.set_rate(cfg.limits.tokens_per_minute / 60.0, cfg.limits.tokens_per_minute / 600.0);
  st.breaker.emplace(static_cast<int>(cfg.breaker.failure_threshold), milliseconds(cfg.breaker.open_ms));
  http::client_options options;
  options.connections = static_cast<int>(cfg.limits.max_in_flight);
  options.timeout_ms = static_cast<int>(cfg.timeout_ms);
  options.max_response_bytes = static_cast<size_t>(cfg.max_response_bytes);
  options.ca_file = cfg.ca_file;
  auto origin = http::parse_url(cfg.endpoint);
  st.client = std::make_shared<http::client>(origin, options);
  auto origin_key = origin.scheme + "://" + http::host_header(origin);
  st.cooldown = shared_cooldown::of(cfg.cooldown_per_origin ? origin_key : origin_key + " " + cfg.name);
  st.cfg = std::move(cfg);
  publish_limits(st, st.cfg.limits.requests_per_second, st.cfg.limits.tokens_per_minute);
  return {
    [=](score_request& request) {
      auto& st = self->state;
      auto sender = self->current_sender();
      if (st.tokens_per_input == 0 && st.tokens->capacity() > 0 && !request.ids.empty()) // a first guess
        st.tokens_per_input = static_cast<double>(st.codec_->estimate_tokens(
                                {request.rows.data(), request.ids.size(), st.width, request.texts.data()})) /
                              static_cast<double>(request.ids.size());
      try {
        st.pending->add(sender, std::move(request));
      } catch (const std::invalid_argument& e) {
        self->send(caf::actor_cast<caller_actor>(sender), failed_reply(std::move(request.ids), failure::rejected, e.what()));
        return;
      }
      dispatch(self); // takes the full batches
      // What is left waits at most max_linger_ms for more.
      if (auto generation = st.pending->arm_linger())
        self->delayed_send(self, st.pending->linger(), flush_atom::value, *generation);
    },
    [=](flush_atom, uint64_t generation) {
      auto& st = self->state;
      if (!st.pending->linger_due(generation))
        return;
      const size_t per_call = inputs_per_call(st);
      if (!st.ready.empty())
        fit(st, std::prev(st.ready.end()), per_call);
      while (!st.pending->empty())
        st.ready.push_back({st.next_id++, st.pending->take(per_call)});
      dispatch(self);
    },
    [=](wake_atom) {
      self->state.wake_at = clock::time_point::max();
      dispatch(self);
    },
    [=](call_done& done) { on_done(self, done); },
    [=](const call_sent& sent) {
      // Limits hold where the provider counts: from when a call left, however late its thread
      // wrote it (arrivals of calls decided on 1.05 s apart came 1 s apart on a loaded machine).
      auto& st = self->state;
      auto it = st.in_flight.find(sent.batch_id);
      if (it == st.in_flight.end() || sent.at <= it->second.counted)
        return;
      auto& b = it->second;
      if (st.requests)
        st.requests->move(b.counted, sent.at, 1);
      st.tokens->move(b.counted, sent.at, static_cast<double>(b.estimated_tokens));
      b.counted = sent.at;
    },
    [=](fallback_atom, scorer_actor& fallback) { self->state.fallback = std::move(fallback); },
    [=](budget_atom, double requests_per_second, double tokens_per_minute, bool paused) {
      auto& st = self->state;
      st.paused = paused;
      if (st.cfg.limits.requests_per_second > 0) {
        st.rate.set_rate(requests_per_second, 1.0);
        // 50 ms of guard: calls sent a window apart may meet the provider closer together.
        if (!st.requests)
          st.requests.emplace(requests_per_second, limit_window);
        st.requests->set_capacity(requests_per_second);
      }
      if (st.cfg.limits.tokens_per_minute > 0) {
        st.tokens->set_capacity(tokens_per_minute / 60.0);
        st.token_pace.set_rate(tokens_per_minute / 60.0, tokens_per_minute / 600.0);
      }
      publish_limits(st, st.cfg.limits.requests_per_second > 0 ? requests_per_second : 0,
                     st.cfg.limits.tokens_per_minute > 0 ? tokens_per_minute : 0);
      dispatch(self);
    },
  };
}

} // namespace

prepared_model prepare_remote(const config::model_config& cfg, metrics::registry& metrics,
                              std::shared_ptr<const codec> c, const std::string& provider_model) {
  if (cfg.endpoint.empty())
    throw std::runtime_error(fmt::format("provider {} needs `endpoint:` (the model's URL)", cfg.provider));
  try {
    http::parse_url(cfg.endpoint);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(fmt::format("endpoint: {}", e.what()));
  }
  if (cfg.input.empty())
    throw std::runtime_error(fmt::format("provider {} needs `input:` (the features the model takes, in order)",
                                         cfg.provider));
  // Without `version:`, what answered: the provider's name for the model, or the endpoint.
  auto endpoint = http::parse_url(cfg.endpoint);
  auto version = !cfg.version.empty()     ? cfg.version
                 : !provider_model.empty() ? provider_model
                                           : http::host_header(endpoint) + endpoint.target;
  model_info info{cfg.name, version, cfg.input, cfg.task};
  auto probe = std::make_shared<gateway_probe>(metrics, cfg.name);
  size_t width = takes_text(cfg.task) ? 0 : cfg.input.size();
  return {info, [cfg, info, width, c, probe, &metrics](caf::actor_system& system) {
            return system.spawn(remote_gateway, cfg, info, width, c, probe, &metrics);
          }};
}

} // namespace inflow::gateways
