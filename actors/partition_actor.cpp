#include "actors/partition_actor.hpp"
#include "actors/messages.hpp"
#include "actors/offset_window.hpp"
#include "actors/outcome_order.hpp"
#include "kafka/produce_errors.hpp"
#include "kafka/record_fit.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>

namespace inflow::actors {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// The writes that make up a record's outcome. A produce token carries the
/// offset and the kind: offset * 4 + kind.
enum class write_kind : uint8_t { alert = 0, dead_letter = 1, result = 2 };

const char* to_string(write_kind k) {
  switch (k) {
    case write_kind::alert: return "alert";
    case write_kind::dead_letter: return "dead letter";
    case write_kind::result: return "result";
  }
  return "?";
}

uint64_t token_of(int64_t offset, write_kind k) {
  return static_cast<uint64_t>(offset) * 4 + static_cast<uint64_t>(k);
}

struct pending_record {
  bool scored = false; ///< its outcome is decided: scored, or a dead letter
  bool alert = false;  ///< the outcome includes an alert
  bool output = false; ///< ... and a result
  int writes = 0; ///< alert, result or dead letter issued and not yet acknowledged
  int64_t timestamp_ms = 0;
  /// The consumed record itself (partition_state::batches keeps it alive): the
  /// dead-letter topic gets its key and value unchanged.
  const rd_kafka_message_t* message = nullptr;
  std::string_view key() const {
    return message->key ? std::string_view(static_cast<const char*>(message->key), message->key_len) : "";
  }
  std::string_view value() const { return {static_cast<const char*>(message->payload), message->len}; }
  events::record_identity identity;
  model_result result;
  std::string alert_json; ///< built once, written (and rewritten on retry) as is
  events::record_error error{};
  std::string error_message;
  bool dead_lettered = false; ///< its dead letter is written or on its way
  int attempts = 0;
};

/// Delivery reports arrive on the producer's thread; forward them as messages.
class actor_delivery : public kafka::delivery_listener {
public:
  explicit actor_delivery(caf::actor target) : target_(std::move(target)) {}
  void on_delivery(uint64_t token, rd_kafka_resp_err_t error) override {
    caf::anon_send(target_, produce_ack{static_cast<int64_t>(token), error});
  }

private:
  caf::actor target_;
};

struct partition_state {
  std::shared_ptr<const pipeline_context> ctx;
  std::shared_ptr<partition_shared> shared;
  caf::actor gateway;
  std::optional<events::decoder> decoder;
  std::vector<events::field_value> values;
  offset_window<pending_record> pending;
  bool in_order = false; ///< delivery ordered or exactly_once: `order` decides when writes go out
  outcome_order order;
  int64_t outstanding = 0; ///< writes queued and not yet acknowledged, all records
  bool rewinding = false;  ///< a failed write was rewound; rewriting waits for `outstanding` to reach 0
  /// Consumed batches, kept until every record in them is finished.
  std::deque<std::shared_ptr<const record_batch>> batches;
  /// Ages (s) of the records finished while handling the current message; settle() publishes them.
  std::vector<double> finished_ages;
  std::shared_ptr<kafka::delivery_listener> delivery;
  bool warned_produce = false;
  bool warned_refused = false;
  static inline const char* name = "inflow.partition";
};

using partition_actor = caf::stateful_actor<partition_state>;

/// The record's outcome is complete (`now`: one clock reading per message handled).
void finish(partition_actor* self, int64_t offset, const pending_record& rec, int64_t now) {
  auto& st = self->state;
  st.finished_ages.push_back(std::max(0.0, static_cast<double>(now - rec.timestamp_ms) / 1000.0));
  st.pending.mark_done(offset); // resets `rec`
}

/// Publishes what the message just handled finished: the consumer thread's
/// counters, the latency histogram and the batches no record needs any more,
/// once per message rather than per record (they are shared across threads).
void settle(partition_actor* self) {
  auto& st = self->state;
  if (st.finished_ages.empty())
    return;
  st.ctx->probe.end_to_end_latency.observe_all(st.finished_ages);
  st.shared->in_flight.fetch_sub(static_cast<int64_t>(st.finished_ages.size()));
  st.finished_ages.clear();
  const int64_t committable = st.pending.committable();
  st.shared->committable.store(committable);
  while (!st.batches.empty() && st.batches.front()->messages.back()->offset < committable)
    st.batches.pop_front();
}

void write_failed(partition_actor* self, int64_t offset, write_kind kind, rd_kafka_resp_err_t error);

/// Stops the pipeline for good (the first reason stays), once in the metric and the log.
void stop_pipeline(const pipeline_context& ctx, const std::string& reason) {
  if (ctx.health.stop(reason)) {
    ctx.probe.stopped.set(1);
    spdlog::error("{}: pipeline stopped: {}", ctx.config.name, reason);
  }
}

void issue(partition_actor* self, int64_t offset);

/// In offset order: issues the decided records no earlier one holds back, and finishes the written ones.
void advance_in_order(partition_actor* self) {
  auto& st = self->state;
  st.order.issue_ready([&](int64_t o) { return st.pending.find(o)->scored; }, [&](int64_t o) { issue(self, o); });
  const int64_t now = now_ms();
  st.order.finish_ready([&](int64_t o) { return st.pending.find(o)->writes == 0; },
                        [&](int64_t o) { finish(self, o, *st.pending.find(o), now); });
}

/// Finishes the record once none of its writes is outstanding (in offset order when ordered).
void finish_if_written(partition_actor* self, int64_t offset, const pending_record& rec) {
  if (self->state.in_order)
    advance_in_order(self);
  else if (rec.writes == 0)
    finish(self, offset, rec, now_ms());
  settle(self);
}

/// The record's outcome is decided: write it now, or when its turn comes.
void decided(partition_actor* self, int64_t offset) {
  auto& st = self->state;
  if (st.in_order) {
    advance_in_order(self);
    return;
  }
  issue(self, offset);
  if (auto* rec = st.pending.find(offset); rec && rec->writes == 0) // a refused write may have finished it
    finish(self, offset, *rec, now_ms());
}

/// Queues one write of the record's outcome; Kafka's ack (on_ack) counts it done.
void write(partition_actor* self, int64_t offset, write_kind kind) {
  auto& st = self->state;
  auto& rec = *st.pending.find(offset); // callers hold an unfinished record
  const auto& ctx = *st.ctx;
  const auto& cfg = ctx.config;
  const auto partition = st.shared->partition;
  const auto token = token_of(offset, kind);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  switch (kind) {
    case write_kind::alert:
      if (rec.alert_json.empty())
        rec.alert_json = make_alert_json(ctx, partition, offset, rec.identity, rec.result, now_ms());
      err = ctx.producer.produce(cfg.alert.topic, rec.identity.key, rec.alert_json, {}, st.delivery, token);
      break;
    case write_kind::result:
      err = ctx.producer.produce(cfg.output_topic, rec.identity.key,
                                 make_result_json(ctx, partition, offset, rec.identity, rec.result, now_ms()), {},
                                 st.delivery, token);
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
      // A record Kafka would refuse must not stall the partition: keep its head and say so.
      std::string_view key = rec.key(), value = rec.value();
      kafka::fit_record(key, value, headers, ctx.dead_letter_limit_bytes);
      err = ctx.producer.produce(cfg.dead_letter_topic, key, value, headers, st.delivery, token);
      break;
    }
  }
  if (err)
    write_failed(self, offset, kind, err);
  else
    ++st.outstanding;
}

/// Writes every part of the record's decided outcome.
void issue(partition_actor* self, int64_t offset) {
  auto& rec = *self->state.pending.find(offset);
  if (rec.dead_lettered) {
    rec.writes = 1;
    write(self, offset, write_kind::dead_letter);
    return;
  }
  rec.writes = rec.alert + rec.output;
  if (rec.alert)
    write(self, offset, write_kind::alert);
  if (rec.output)
    write(self, offset, write_kind::result);
}

/// A write of the record's outcome failed (not queued, or refused by Kafka): decided by
/// what the error means (kafka/produce_errors.hpp), never retried blindly.
void write_failed(partition_actor* self, int64_t offset, write_kind kind, rd_kafka_resp_err_t error) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  const auto& cfg = ctx.config;
  auto& rec = *st.pending.find(offset);
  const auto partition = st.shared->partition;
  const auto token = token_of(offset, kind);
  switch (kafka::classify_write_error(error)) {
    case kafka::write_failure::retriable: {
      // The outcome is not durable: keep the offset uncommitted and write again.
      ctx.probe.produce_retries.inc();
      if (!st.warned_produce) {
        spdlog::warn("{}: partition {}: writing an outcome failed ({}); retrying with backoff", cfg.name, partition,
                     rd_kafka_err2str(error));
        st.warned_produce = true;
      }
      auto backoff = std::chrono::milliseconds(std::min(5000, 100 << std::min(rec.attempts++, 6)));
      if (!st.in_order) {
        self->delayed_send(self, backoff, retry_atom::value, static_cast<int64_t>(token));
        return;
      }
      // Writing this one again after later ones would leave a key's older outcome last:
      // write it and every later issued record again, in order.
      st.order.rewind(offset);
      if (!st.rewinding) {
        st.rewinding = true;
        st.order.hold();
        self->delayed_send(self, backoff, rewind_atom::value);
      }
      return;
    }
    case kafka::write_failure::unwritable:
      if (kind != write_kind::dead_letter) {
        // The alert or result can never be written: the record becomes a dead letter saying why.
        const auto& topic = kind == write_kind::alert ? cfg.alert.topic : cfg.output_topic;
        if (!st.warned_refused) {
          spdlog::warn("{}: partition {} offset {}: Kafka refused its {} for {} for good ({}); dead-lettering it "
                       "and any like it (inflow_records_dead_lettered_total counts them)",
                       cfg.name, partition, offset, to_string(kind), topic, rd_kafka_err2str(error));
          st.warned_refused = true;
        }
        if (rec.dead_lettered) {
          --rec.writes; // one dead letter per record is enough
          finish_if_written(self, offset, rec);
          return;
        }
        rec.dead_lettered = true;
        rec.error = events::record_error::output_refused;
        rec.error_message = fmt::format("{} to {} refused: {}", to_string(kind), topic, rd_kafka_err2str(error));
        write(self, offset, write_kind::dead_letter); // in this write's place: rec.writes stays
        return;
      }
      if (cfg.skip_unwritable) {
        ctx.probe.unwritable.inc();
        spdlog::error("{}: {} partition {} offset {}: its dead letter was refused for good ({}); skipped as "
                      "on_unwritable=skip says, and committed past (counted in inflow_records_unwritable_total)",
                      cfg.name, cfg.source.topic, partition, offset, rd_kafka_err2str(error));
        --rec.writes;
        finish_if_written(self, offset, rec);
        return;
      }
      stop_pipeline(ctx, fmt::format("{} partition {} offset {}: its dead letter for {} was refused for good ({}); "
                                     "fix the cause (topic size limits, ACLs) and restart, or set "
                                     "pipelines.{}.on_unwritable: skip to commit past such records",
                                     cfg.source.topic, partition, offset, cfg.dead_letter_topic,
                                     rd_kafka_err2str(error), cfg.name));
      return;
    case kafka::write_failure::fatal: {
      std::string reason;
      ctx.producer.fatal_error(&reason);
      stop_pipeline(ctx, fmt::format("the producer failed for good ({}{}{}); nothing more can be written",
                                     rd_kafka_err2str(error), reason.empty() ? "" : ": ", reason));
      return;
    }
  }
}

void dead_letter(partition_actor* self, int64_t offset, events::record_error error, std::string message) {
  auto& rec = *self->state.pending.find(offset);
  rec.scored = true;
  rec.dead_lettered = true;
  rec.error = error;
  rec.error_message = std::move(message);
  decided(self, offset);
}

void on_batch(partition_actor* self, const std::shared_ptr<record_batch>& batch) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  gateways::score_request request;
  const size_t width = ctx.features.size();
  std::vector<float> row(width);
  std::string text;
  request.ids.reserve(batch->messages.size());
  request.rows.reserve(batch->messages.size() * width);
  bool kept = false; // some record of the batch is new
  for (auto* m : batch->messages) {
    int64_t offset = m->offset;
    auto* added = st.pending.add(offset);
    if (!added) {
      ctx.probe.duplicates_skipped.inc();
      st.shared->in_flight.fetch_sub(1);
      continue;
    }
    kept = true;
    if (st.in_order)
      st.order.consumed(offset);
    auto& rec = *added;
    int64_t ts = rd_kafka_message_timestamp(m, nullptr);
    rec.timestamp_ms = ts > 0 ? ts : now_ms();
    std::string_view value(static_cast<const char*>(m->payload), m->len);
    auto failure = st.decoder->decode(value, st.values);
    if (!failure)
      failure = ctx.features.is_text() ? ctx.features.extract_text(st.values, text, rec.identity)
                                       : ctx.features.extract(st.values, row.data(), rec.identity);
    rec.message = m;
    if (failure) {
      dead_letter(self, offset, failure->code, std::move(failure->message));
      continue;
    }
    request.ids.push_back(static_cast<uint64_t>(offset));
    if (ctx.features.is_text())
      request.texts.push_back(std::move(text));
    else
      request.rows.insert(request.rows.end(), row.begin(), row.end());
  }
  if (kept)
    st.batches.push_back(batch);
  settle(self); // dead letters that needed no write of their own
  if (!request.ids.empty())
    self->send(st.gateway, std::move(request));
}

void on_scores(partition_actor* self, gateways::score_reply& reply) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  const auto& cfg = ctx.config;
  const bool fallback = reply.model != ctx.model.name;
  uint64_t scored = 0, no_alert = 0;
  for (size_t i = 0; i < reply.ids.size(); ++i) {
    auto offset = static_cast<int64_t>(reply.ids[i]);
    auto* found = st.pending.find(offset);
    if (!found || found->scored)
      continue;
    if (!reply.error.empty()) {
      dead_letter(self, offset, events::record_error::model_failed, reply.error);
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
    decided(self, offset);
  }
  ctx.probe.scored.inc(scored);
  ctx.probe.no_alert.inc(no_alert);
  settle(self);
}

void on_ack(partition_actor* self, const produce_ack& ack) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  const int64_t offset = ack.token / 4;
  const auto kind = static_cast<write_kind>(ack.token % 4);
  --st.outstanding;
  auto* found = st.pending.find(offset);
  if (!found)
    return;
  auto& rec = *found;
  if (ack.error) {
    write_failed(self, offset, kind, ack.error);
    return;
  }
  switch (kind) {
    case write_kind::alert:
      ctx.probe.alerted.inc();
      ctx.alerts.add(std::move(rec.alert_json));
      break;
    case write_kind::result: ctx.probe.results.inc(); break;
    case write_kind::dead_letter: ctx.probe.dead_lettered.inc(); break;
  }
  --rec.writes;
  finish_if_written(self, offset, rec);
}

caf::behavior partition(partition_actor* self, std::shared_ptr<const pipeline_context> ctx, caf::actor gateway,
                        std::shared_ptr<partition_shared> shared) {
  auto& st = self->state;
  st.decoder.emplace(ctx->config.source.format, ctx->features.fields(), ctx->config.source.limits);
  st.ctx = std::move(ctx);
  st.gateway = std::move(gateway);
  st.shared = std::move(shared);
  st.delivery = std::make_shared<actor_delivery>(caf::actor_cast<caf::actor>(self));
  st.in_order = st.ctx->config.in_offset_order();
  return {
    [=](std::shared_ptr<record_batch>& batch) { on_batch(self, batch); },
    [=](gateways::score_reply& reply) { on_scores(self, reply); },
    [=](const produce_ack& ack) { on_ack(self, ack); },
    [=](retry_atom, int64_t token) {
      if (self->state.pending.find(token / 4))
        write(self, token / 4, static_cast<write_kind>(token % 4));
    },
    [=](rewind_atom) {
      auto& st = self->state;
      if (st.outstanding > 0) { // a write issued before the rewind may still be acknowledged
        self->delayed_send(self, std::chrono::milliseconds(10), rewind_atom::value);
        return;
      }
      st.rewinding = false;
      st.order.release();
      advance_in_order(self);
      settle(self);
    },
    [=](hold_atom, int64_t epoch) {
      auto& st = self->state;
      st.order.hold();
      st.shared->issued_end.store(st.order.issued_end());
      st.shared->held_epoch.store(epoch);
    },
    [=](release_atom) {
      self->state.order.release();
      advance_in_order(self);
      settle(self);
    },
  };
}

class actor_partition_handle : public partition_handle {
public:
  explicit actor_partition_handle(caf::actor actor) : actor_(std::move(actor)) {}
  void deliver(std::shared_ptr<record_batch> batch) override { caf::anon_send(actor_, std::move(batch)); }
  /// Returns once the actor has terminated: nothing it uses may be freed before.
  void stop() override {
    caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
    caf::scoped_actor waiter{actor_.home_system()};
    waiter->wait_for(actor_);
  }
  void hold(int64_t epoch) override { caf::anon_send(actor_, hold_atom::value, epoch); }
  void release() override { caf::anon_send(actor_, release_atom::value); }

private:
  caf::actor actor_;
};

} // namespace

std::unique_ptr<partition_handle> spawn_partition_actor(caf::actor_system& system,
                                                        std::shared_ptr<const pipeline_context> context,
                                                        const caf::actor& gateway,
                                                        std::shared_ptr<partition_shared> shared) {
  return std::make_unique<actor_partition_handle>(
    system.spawn(partition, std::move(context), gateway, std::move(shared)));
}

} // namespace inflow::actors
