#include "actors/outcome_sink.hpp"
#include "events/json_text.hpp"
#include "events/trace.hpp"
#include "kafka/produce_errors.hpp"
#include "kafka/record_fit.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace inflow::actors {

namespace {

/// The traceparent a record's outputs and model call carry: a child span of the one in the
/// record's headers (events/trace.hpp), or nothing when it has none.
std::optional<std::string> traceparent_of(const rd_kafka_message_t* m) {
  rd_kafka_headers_t* headers = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  // librdkafka parses a message's headers on first use; the message is this partition's alone.
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(m), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(headers, "traceparent", &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR || !value)
    return std::nullopt;
  auto parent = events::parse_traceparent({static_cast<const char*>(value), size});
  if (!parent)
    return std::nullopt;
  return events::child_traceparent(*parent, events::record_span_id(*parent, m->partition, m->offset));
}

/// What splits records between versions: the key, else the Kafka key, else the id.
std::string_view split_key(const events::record_identity& identity, const rd_kafka_message_t* m) {
  if (!identity.key.empty())
    return identity.key;
  if (m->key_len > 0)
    return {static_cast<const char*>(m->key), m->key_len};
  return identity.id;
}

std::vector<double> weights_of(const std::vector<config::model_route>& routes) {
  std::vector<double> weights;
  for (const auto& r : routes)
    weights.push_back(r.weight);
  return weights;
}

using write_kind = outcome_sink::write_kind;

const char* to_string(write_kind k) {
  switch (k) {
    case write_kind::alert: return "alert";
    case write_kind::dead_letter: return "dead letter";
    case write_kind::result: return "result";
    case write_kind::shadow: return "shadow answer";
  }
  return "?";
}

/// Stops the pipeline for good (the first reason stays), once in the metric and the log.
void stop_pipeline(const pipeline_context& ctx, const std::string& reason) {
  if (ctx.health.stop(reason)) {
    ctx.probe.stopped.set(1);
    spdlog::error("{}: pipeline stopped: {}", ctx.config.name, reason);
  }
}

} // namespace

outcome_sink::outcome_sink(std::shared_ptr<const pipeline_context> ctx, std::shared_ptr<partition_shared> shared,
                           outside& out)
  : ctx_(std::move(ctx)),
    shared_(std::move(shared)),
    out_(out),
    decoder_(ctx_->config.source.format, ctx_->features.fields(), ctx_->config.source.limits,
             ctx_->make_reader ? ctx_->make_reader() : nullptr),
    split_(weights_of(ctx_->config.routes)),
    shadow_book_(2 * static_cast<size_t>(ctx_->config.max_in_flight)),
    in_order_(ctx_->config.in_offset_order()) {
  for (const auto& monitor : ctx_->drift)
    drift_tallies_.push_back(monitor->make_tally());
  for (const auto& version : ctx_->versions)
    traced_routes_.push_back(version.carries_trace || (ctx_->shadow && ctx_->shadow->carries_trace));
}

/// The record's outcome is complete (`now`: one clock reading per message handled).
void outcome_sink::finish(int64_t offset, const pending_record& rec, int64_t now) {
  finished_ages_.push_back(std::max(0.0, static_cast<double>(now - rec.timestamp_ms) / 1000.0));
  node_ages_.push_back(std::max(0.0, static_cast<double>(now - rec.polled_ms) / 1000.0));
  pending_.mark_done(offset); // resets `rec`
}

/// Publishes what the message just handled finished: the consumer thread's
/// counters, the latency histogram and the batches no record needs any more,
/// once per message rather than per record (they are shared across threads).
void outcome_sink::settle() {
  if (finished_ages_.empty())
    return;
  ctx_->probe.end_to_end_latency.observe_all(finished_ages_);
  ctx_->probe.node_latency.observe_all(node_ages_);
  node_ages_.clear();
  shared_->in_flight.fetch_sub(static_cast<int64_t>(finished_ages_.size()));
  finished_ages_.clear();
  const int64_t committable = pending_.committable();
  shared_->committable.store(committable);
  while (!batches_.empty() && batches_.front()->messages.back()->offset < committable)
    batches_.pop_front();
}

/// In offset order: issues the decided records no earlier one holds back, and finishes the written ones.
void outcome_sink::advance_in_order() {
  order_.issue_ready([&](int64_t o) { return pending_.find(o)->scored; },
                     [&](int64_t o) {
                       const auto& rec = *pending_.find(o);
                       return rec.dead_lettered || rec.alert || rec.output;
                     },
                     [&](int64_t o) { issue(o); });
  const int64_t now = out_.now_ms();
  order_.finish_ready([&](int64_t o) { return pending_.find(o)->writes == 0; },
                      [&](int64_t o) { finish(o, *pending_.find(o), now); });
}

/// Finishes the record once none of its writes is outstanding (in offset order when ordered).
void outcome_sink::finish_if_written(int64_t offset, const pending_record& rec) {
  if (in_order_)
    advance_in_order();
  else if (rec.writes == 0)
    finish(offset, rec, out_.now_ms());
  settle();
}

/// The record's outcome is decided: write it now, or when its turn comes.
void outcome_sink::decided(int64_t offset) {
  if (in_order_) {
    advance_in_order();
    return;
  }
  issue(offset);
  if (auto* rec = pending_.find(offset); rec && rec->writes == 0) // a refused write may have finished it
    finish(offset, *rec, out_.now_ms());
}

/// Queues one write of the record's outcome; Kafka's verdict (on_ack) counts it done.
void outcome_sink::write(int64_t offset, write_kind kind) {
  auto& rec = *pending_.find(offset); // callers hold an unfinished record
  const auto& ctx = *ctx_;
  const auto& cfg = ctx.config;
  const auto partition = shared_->partition;
  const auto token = token_of(offset, kind);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  // An alert or result its output format cannot hold is refused as Kafka would refuse it.
  auto encoded = [&](std::string json, bool alert) {
    try {
      return ctx.encoder ? (alert ? ctx.encoder->alert(json) : ctx.encoder->result(json)) : json;
    } catch (const std::exception& e) {
      spdlog::error("{}: partition {} offset {}: {}", cfg.name, partition, offset, e.what());
      err = RD_KAFKA_RESP_ERR_INVALID_RECORD;
      return std::string();
    }
  };
  std::vector<kafka::header> trace;
  if (auto parent = traceparent_of(rec.message))
    trace.push_back({"traceparent", *parent});
  switch (kind) {
    case write_kind::alert:
      if (rec.alert_json.empty())
        rec.alert_json = make_alert_json(ctx, partition, offset, rec.identity, rec.result, out_.now_ms());
      if (auto value = encoded(rec.alert_json, true); !err)
        err = out_.produce(cfg.alert.topic, rec.identity.key, value, trace, token);
      break;
    case write_kind::result:
      if (auto value = encoded(make_result_json(ctx, partition, offset, rec.identity, rec.result, out_.now_ms()), false);
          !err)
        err = out_.produce(cfg.output_topic, rec.identity.key, value, trace, token);
      break;
    case write_kind::dead_letter: {
      // Kafka Connect's dead-letter headers, so existing tools can read them.
      std::vector<kafka::header> headers{
        {"__connect.errors.topic", cfg.source.topic},
        {"__connect.errors.partition", std::to_string(partition)},
        {"__connect.errors.offset", std::to_string(offset)},
        {"__connect.errors.exception.class.name", std::string(events::to_string(rec.error))},
        {"__connect.errors.exception.message", rec.error_message},
        {"inflow.pipeline", cfg.name},
      };
      headers.insert(headers.end(), trace.begin(), trace.end());
      if (rec.error == events::record_error::model_failed)
        headers.push_back({"inflow.model.failure", std::string(gateways::to_string(rec.model_failure))});
      // A record Kafka would refuse must not stall the partition: keep its head and say so.
      const auto* m = rec.message;
      std::string_view key = m->key ? std::string_view(static_cast<const char*>(m->key), m->key_len) : "";
      std::string_view value(static_cast<const char*>(m->payload), m->len);
      kafka::fit_record(key, value, headers, ctx.dead_letter_limit_bytes);
      err = out_.produce(cfg.dead_letter_topic, key, value, headers, token);
      break;
    }
    case write_kind::shadow: return; // never part of an outcome: compare() writes it
  }
  if (err)
    write_failed(offset, kind, err);
  else
    ++outstanding_;
}

/// Writes every part of the record's decided outcome.
void outcome_sink::issue(int64_t offset) {
  auto& rec = *pending_.find(offset);
  if (rec.dead_lettered) {
    rec.writes = 1;
    write(offset, write_kind::dead_letter);
    return;
  }
  rec.writes = rec.alert + rec.output;
  if (rec.alert)
    write(offset, write_kind::alert);
  if (rec.output)
    write(offset, write_kind::result);
}

/// A write of the record's outcome failed (not queued, or refused by Kafka): decided by
/// what the error means, never retried blindly.
void outcome_sink::write_failed(int64_t offset, write_kind kind, rd_kafka_resp_err_t error) {
  auto& ctx = *ctx_;
  const auto& cfg = ctx.config;
  auto& rec = *pending_.find(offset);
  const auto partition = shared_->partition;
  switch (kafka::classify_write_error(error)) {
    case kafka::write_failure::retriable: {
      // The outcome is not durable: keep the offset uncommitted and write again.
      ctx.probe.produce_retries.inc();
      if (!warned_produce_) {
        spdlog::warn("{}: partition {}: writing an outcome failed ({}); retrying with backoff", cfg.name, partition,
                     rd_kafka_err2str(error));
        warned_produce_ = true;
      }
      auto backoff = std::chrono::milliseconds(std::min(5000, 100 << std::min(rec.attempts++, 6)));
      if (!in_order_) {
        out_.retry_after(backoff, token_of(offset, kind));
        return;
      }
      // Writing this one again after later ones would leave a key's older outcome last:
      // write it and every later issued record again, in order.
      order_.rewind(offset);
      if (!rewinding_) {
        rewinding_ = true;
        order_.hold();
        out_.rewind_after(backoff);
      }
      return;
    }
    case kafka::write_failure::unwritable:
      if (kind != write_kind::dead_letter) {
        // The alert or result can never be written: the record becomes a dead letter saying why.
        const auto& topic = kind == write_kind::alert ? cfg.alert.topic : cfg.output_topic;
        if (!warned_refused_) {
          spdlog::warn("{}: partition {} offset {}: Kafka refused its {} for {} for good ({}); dead-lettering it "
                       "and any like it (inflow_records_dead_lettered_total counts them)",
                       cfg.name, partition, offset, to_string(kind), topic, rd_kafka_err2str(error));
          warned_refused_ = true;
        }
        if (rec.dead_lettered) {
          --rec.writes; // one dead letter per record is enough
          finish_if_written(offset, rec);
          return;
        }
        rec.dead_lettered = true;
        rec.error = events::record_error::output_refused;
        rec.error_message = fmt::format("{} to {} refused: {}", to_string(kind), topic, rd_kafka_err2str(error));
        write(offset, write_kind::dead_letter); // in this write's place: rec.writes stays
        return;
      }
      if (cfg.skip_unwritable) {
        ctx.probe.unwritable.inc();
        spdlog::error("{}: {} partition {} offset {}: its dead letter was refused for good ({}); skipped as "
                      "on_unwritable=skip says, and committed past (counted in inflow_records_unwritable_total)",
                      cfg.name, cfg.source.topic, partition, offset, rd_kafka_err2str(error));
        --rec.writes;
        finish_if_written(offset, rec);
        return;
      }
      stop_pipeline(ctx, fmt::format("{} partition {} offset {}: its dead letter for {} was refused for good ({}); "
                                     "fix the cause (topic size limits, ACLs) and restart, or set "
                                     "pipelines.{}.on_unwritable: skip to commit past such records",
                                     cfg.source.topic, partition, offset, cfg.dead_letter_topic,
                                     rd_kafka_err2str(error), cfg.name));
      return;
    case kafka::write_failure::fatal: {
      if (cfg.delivery == config::delivery::exactly_once)
        return; // the source replaces the transactional producer and reads this record again
      std::string reason = out_.producer_failure();
      stop_pipeline(ctx, fmt::format("the producer failed for good ({}{}{}); nothing more can be written",
                                     rd_kafka_err2str(error), reason.empty() ? "" : ": ", reason));
      return;
    }
  }
}

void outcome_sink::dead_letter(int64_t offset, events::record_error error, std::string message) {
  if (ctx_->shadow && error == events::record_error::model_failed && shadow_book_.forget(offset))
    ctx_->probe.shadow->unmatched.inc(); // no live answer to compare with
  auto& rec = *pending_.find(offset);
  rec.scored = true;
  rec.dead_lettered = true;
  rec.error = error;
  rec.error_message = std::move(message);
  decided(offset);
}

void outcome_sink::on_batch(const std::shared_ptr<const record_batch>& batch) {
  auto& ctx = *ctx_;
  std::vector<gateways::score_request> requests(ctx.versions.size()); // one per version
  if (requests.size() == 1) {
    requests[0].ids.reserve(batch->messages.size());
    requests[0].rows.reserve(batch->messages.size() * ctx.features.size());
  }
  bool kept = false; // some record of the batch is new
  const int64_t polled_ms = batch->polled_ms > 0 ? batch->polled_ms : out_.now_ms();
  for (auto* m : batch->messages) {
    int64_t offset = m->offset;
    auto* added = pending_.add(offset);
    if (!added) {
      ctx.probe.duplicates_skipped.inc();
      shared_->in_flight.fetch_sub(1);
      continue;
    }
    kept = true;
    if (in_order_)
      order_.consumed(offset);
    auto& rec = *added;
    int64_t ts = rd_kafka_message_timestamp(m, nullptr);
    rec.timestamp_ms = ts > 0 ? ts : polled_ms;
    rec.polled_ms = polled_ms;
    rec.message = m;
    // Behind a record that waits for its schema, every record waits its turn to be decoded.
    if (!awaiting_schema_.empty() || take(offset, rec, requests) == taken::awaiting_schema)
      awaiting_schema_.push_back(offset);
  }
  if (kept)
    batches_.push_back(batch);
  settle(); // dead letters that needed no write of their own
  call_models(requests);
}

/// Decodes a consumed record into its version's request, or dead-letters it; one whose schema
/// the registry did not give is left for retry_schemas().
outcome_sink::taken outcome_sink::take(int64_t offset, pending_record& rec,
                                       std::vector<gateways::score_request>& requests) {
  const auto& ctx = *ctx_;
  const auto* m = rec.message;
  row_.resize(ctx.features.size());
  std::string_view value(static_cast<const char*>(m->payload), m->len);
  auto failure = decoder_.decode(value, values_);
  if (!failure)
    failure = ctx.features.is_text() ? ctx.features.extract_text(values_, text_, rec.identity)
                                     : ctx.features.extract(values_, row_.data(), rec.identity);
  if (failure && failure->code == events::record_error::schema_unavailable) {
    await_schema(offset, failure->message);
    return taken::awaiting_schema;
  }
  if (failure) {
    dead_letter(offset, failure->code, std::move(failure->message));
    return taken::dead_letter;
  }
  rec.result.route = static_cast<uint16_t>(split_.version_of(split_key(rec.identity, m)));
  auto& request = requests[rec.result.route];
  if (traced_routes_[rec.result.route] && request.traceparent.empty()) // that of its first traced input
    if (auto parent = traceparent_of(m))
      request.traceparent = std::move(*parent);
  request.ids.push_back(static_cast<uint64_t>(offset));
  if (ctx.features.is_text())
    request.texts.push_back(std::move(text_));
  else
    request.rows.insert(request.rows.end(), row_.begin(), row_.end());
  if (!drift_tallies_.empty()) {
    auto& monitor = *ctx.drift[rec.result.route];
    auto& tally = drift_tallies_[rec.result.route];
    monitor.count_inputs(row_.data(), tally);
    if (tally.rows >= monitor.merge_every())
      monitor.merge(tally);
  }
  return taken::to_model;
}

/// Sends what take() gathered: to each version's model, and a copy to the shadow.
void outcome_sink::call_models(std::vector<gateways::score_request>& requests) {
  for (size_t route = 0; route < drift_tallies_.size(); ++route)
    ctx_->drift[route]->merge(drift_tallies_[route]);
  if (ctx_->shadow)
    call_shadow(requests);
  for (size_t route = 0; route < requests.size(); ++route)
    if (!requests[route].ids.empty())
      out_.call_model(route, std::move(requests[route]));
}

/// A lasting registry outage must not turn the stream into dead letters: the record stays
/// pending (so uncommitted, and the partition pauses at max_in_flight) and is decoded again
/// after 250 ms, doubling to 5 s. Said once a minute while it lasts.
void outcome_sink::await_schema(int64_t offset, const std::string& why) {
  using namespace std::chrono;
  if (schema_retry_ == milliseconds(0)) {
    schema_retry_ = milliseconds(250);
    out_.retry_schemas_after(schema_retry_);
  }
  const auto now = steady_clock::now();
  if (now - warned_schema_ >= minutes(1)) {
    warned_schema_ = now;
    spdlog::warn("{}: partition {} holds offset {} and the records after it until the schema registry answers "
                 "({}); nothing is dead-lettered, decoding is retried with a pause growing to 5 s",
                 ctx_->config.name, shared_->partition, offset, why);
  }
}

void outcome_sink::retry_schemas() {
  using namespace std::chrono;
  std::vector<gateways::score_request> requests(ctx_->versions.size());
  bool held = false;
  while (!awaiting_schema_.empty()) {
    const int64_t offset = awaiting_schema_.front();
    auto* rec = pending_.find(offset);
    if (rec && take(offset, *rec, requests) == taken::awaiting_schema) {
      held = true;
      break;
    }
    awaiting_schema_.pop_front();
  }
  if (held) {
    schema_retry_ = std::min(2 * schema_retry_, milliseconds(5000));
    out_.retry_schemas_after(schema_retry_);
  } else {
    if (warned_schema_ != steady_clock::time_point{})
      spdlog::info("{}: partition {}: the schema registry answers again; the held records go on", ctx_->config.name,
                   shared_->partition);
    schema_retry_ = milliseconds(0);
    warned_schema_ = {};
  }
  settle();
  call_models(requests);
}

/// Copies the batch's calls to the shadow version, unless it is behind by a window already:
/// a slow shadow is sampled, never waited for.
void outcome_sink::call_shadow(const std::vector<gateways::score_request>& live) {
  gateways::score_request copy;
  for (const auto& request : live) {
    for (auto id : request.ids)
      copy.ids.push_back(id | shadow_bit);
    copy.rows.insert(copy.rows.end(), request.rows.begin(), request.rows.end());
    copy.texts.insert(copy.texts.end(), request.texts.begin(), request.texts.end());
    if (copy.traceparent.empty())
      copy.traceparent = request.traceparent;
  }
  const auto n = static_cast<int64_t>(copy.ids.size());
  if (n == 0)
    return;
  if (shadow_outstanding_ + n > ctx_->config.max_in_flight) {
    ctx_->probe.shadow->skipped.inc(static_cast<uint64_t>(n));
    return;
  }
  shadow_outstanding_ += n;
  out_.call_model(live.size(), std::move(copy));
}

void outcome_sink::on_shadow_scores(const gateways::score_reply& reply) {
  auto& probe = *ctx_->probe.shadow;
  shadow_outstanding_ -= static_cast<int64_t>(reply.ids.size());
  for (size_t i = 0; i < reply.ids.size(); ++i) {
    const auto offset = static_cast<int64_t>(reply.ids[i] & ~shadow_bit);
    if (!reply.ok() || reply.width != 1) {
      probe.failed.inc();
      shadow_book_.forget(offset);
    } else if (auto answers = shadow_book_.add_shadow(offset, reply.values[i])) {
      compare(offset, *answers);
    }
  }
  probe.unmatched.inc(shadow_book_.take_evicted());
}

/// Both answers are in: count how they compare, and write the shadow's beside the live one.
void outcome_sink::compare(int64_t offset, const shadow_book::pair& answers) {
  const auto& ctx = *ctx_;
  const auto& cfg = ctx.config;
  const bool shadow_alert = !cfg.alert.topic.empty() && cfg.alert.matches(answers.shadow);
  auto& version = ctx.probe.versions[answers.live.route];
  version.shadow_compared.inc();
  if (shadow_alert == answers.live.alert)
    version.shadow_agreed.inc();
  version.shadow_difference.observe(std::abs(double(answers.shadow) - double(answers.live.score)));
  if (cfg.shadow_topic.empty())
    return;
  auto json = make_shadow_json(ctx, shared_->partition, offset, answers, shadow_alert, out_.now_ms());
  if (out_.produce_shadow(cfg.shadow_topic, answers.live.identity.key, json, token_of(offset, write_kind::shadow)))
    ctx.probe.shadow->write_failures.inc();
}

void outcome_sink::on_scores(gateways::score_reply& reply) {
  if (!reply.ids.empty() && (reply.ids.front() & shadow_bit)) {
    on_shadow_scores(reply);
    return;
  }
  auto& ctx = *ctx_;
  const auto& cfg = ctx.config;
  const auto& routes = cfg.routes;
  const bool fallback = std::none_of(routes.begin(), routes.end(), [&](auto& r) { return r.model == reply.model; });
  uint64_t scored = 0, no_alert = 0;
  for (size_t i = 0; i < reply.ids.size(); ++i) {
    auto offset = static_cast<int64_t>(reply.ids[i]);
    auto* found = pending_.find(offset);
    if (!found || found->scored)
      continue;
    if (!reply.ok()) {
      found->model_failure = reply.failed;
      dead_letter(offset, events::record_error::model_failed, reply.error);
      continue;
    }
    ++scored;
    auto& rec = *found;
    rec.scored = true;
    auto& result = rec.result;
    if (fallback) {
      result.model = reply.model;
      result.model_version = reply.model_version;
    }
    if (!reply.texts.empty())
      result.text = std::move(reply.texts[i]);
    else if (reply.width == 1)
      result.score = reply.values[i];
    else
      result.vector.assign(reply.values.begin() + static_cast<std::ptrdiff_t>(i * reply.width),
                           reply.values.begin() + static_cast<std::ptrdiff_t>((i + 1) * reply.width));
    rec.alert = !cfg.alert.topic.empty() && cfg.alert.matches(result.score);
    rec.output = !cfg.output_topic.empty();
    no_alert += !rec.alert;
    if (!fallback) {
      ctx.probe.versions[result.route].scored.inc();
      if (!drift_tallies_.empty())
        ctx.drift[result.route]->count_score(result.score, drift_tallies_[result.route]);
    }
    if (ctx.shadow) {
      if (fallback && shadow_book_.forget(offset)) // the version did not answer: nothing to compare
        ctx.probe.shadow->unmatched.inc();
      else if (auto answers = shadow_book_.add_live(offset, {result.score, rec.alert, result.route, rec.identity}))
        compare(offset, *answers);
    }
    decided(offset);
  }
  if (ctx.shadow)
    ctx.probe.shadow->unmatched.inc(shadow_book_.take_evicted());
  for (size_t route = 0; route < drift_tallies_.size(); ++route)
    ctx.drift[route]->merge(drift_tallies_[route]);
  ctx.probe.scored.inc(scored);
  ctx.probe.no_alert.inc(no_alert);
  settle();
}

void outcome_sink::on_ack(uint64_t token, rd_kafka_resp_err_t error) {
  auto& ctx = *ctx_;
  const int64_t offset = offset_of(token);
  const auto kind = kind_of(token);
  if (kind == write_kind::shadow) { // not part of the record's outcome
    auto& probe = *ctx.probe.shadow;
    (error ? probe.write_failures : probe.written).inc();
    return;
  }
  --outstanding_;
  auto* found = pending_.find(offset);
  if (!found)
    return;
  auto& rec = *found;
  if (error) {
    write_failed(offset, kind, error);
    return;
  }
  switch (kind) {
    case write_kind::alert:
      ctx.probe.alerted.inc();
      if (rec.result.model.empty())
        ctx.probe.versions[rec.result.route].alerted.inc();
      ctx.alerts.add(std::move(rec.alert_json));
      break;
    case write_kind::result: ctx.probe.results.inc(); break;
    case write_kind::shadow: break; // returned above
    case write_kind::dead_letter: {
      ctx.probe.dead_lettered.inc();
      std::string letter = fmt::format(R"({{"pipeline":)");
      events::append_quoted(letter, ctx.config.name);
      fmt::format_to(std::back_inserter(letter), R"(,"partition":{},"offset":{},"reason":)", shared_->partition,
                     offset);
      events::append_quoted(letter, events::to_string(rec.error));
      letter += R"(,"message":)";
      events::append_quoted(letter, rec.error_message);
      fmt::format_to(std::back_inserter(letter), R"(,"ts":{}}})", out_.now_ms());
      ctx.dead_letters.add(std::move(letter));
      break;
    }
  }
  --rec.writes;
  finish_if_written(offset, rec);
}

void outcome_sink::retry(uint64_t token) {
  if (pending_.find(offset_of(token)))
    write(offset_of(token), kind_of(token));
}

void outcome_sink::rewind() {
  if (outstanding_ > 0) { // a write issued before the rewind may still be acknowledged
    out_.rewind_after(std::chrono::milliseconds(10));
    return;
  }
  rewinding_ = false;
  order_.release();
  advance_in_order();
  settle();
}

void outcome_sink::hold(int64_t epoch) {
  order_.hold();
  shared_->issued_end.store(order_.issued_end());
  shared_->held_epoch.store(epoch);
}

void outcome_sink::release() {
  order_.release();
  advance_in_order();
  settle();
}

void outcome_sink::fail(const std::string& what) {
  auto reason = fmt::format("partition {}: internal error ({}): a bug in Inflow; please report it with this log",
                            shared_->partition, what);
  ctx_->health.fail(reason);
  ctx_->probe.stopped.set(1);
  spdlog::critical("{}: pipeline stopped: {}", ctx_->config.name, reason);
}

} // namespace inflow::actors
