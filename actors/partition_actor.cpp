#include "actors/partition_actor.hpp"
#include "actors/messages.hpp"
#include "actors/offset_window.hpp"

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

/// Below Kafka's default message.max.bytes (1 MB) with room for headers.
constexpr size_t max_dead_letter_bytes = 900 * 1024;

/// The writes that make up a record's outcome. A produce token carries the
/// offset and the kind: offset * 4 + kind.
enum class write_kind : uint8_t { alert = 0, dead_letter = 1, result = 2 };

uint64_t token_of(int64_t offset, write_kind k) {
  return static_cast<uint64_t>(offset) * 4 + static_cast<uint64_t>(k);
}

struct pending_record {
  bool scored = false;
  int writes = 0; ///< alert, result or dead letter not yet acknowledged
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
  /// Consumed batches, kept until every record in them is finished.
  std::deque<std::shared_ptr<const record_batch>> batches;
  /// Ages (s) of the records finished while handling the current message; settle() publishes them.
  std::vector<double> finished_ages;
  std::shared_ptr<kafka::delivery_listener> delivery;
  bool warned_produce = false;
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

/// Queues one write of the record's outcome; Kafka's ack (on_ack) counts it done.
void write(partition_actor* self, int64_t offset, write_kind kind) {
  auto& st = self->state;
  auto& rec = *st.pending.find(offset); // callers hold an unfinished record
  const auto& ctx = *st.ctx;
  const auto& cfg = ctx.config;
  const auto partition = st.shared->partition;
  const auto token = token_of(offset, kind);
  bool queued = false;
  switch (kind) {
    case write_kind::alert:
      if (rec.alert_json.empty())
        rec.alert_json = make_alert_json(ctx, partition, offset, rec.identity, rec.result, now_ms());
      queued = ctx.producer.produce(cfg.alert.topic, rec.identity.key, rec.alert_json, {}, st.delivery, token);
      break;
    case write_kind::result:
      queued = ctx.producer.produce(cfg.output_topic, rec.identity.key,
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
      // A value Kafka would refuse must not stall the partition: keep its head and say so.
      std::string_view value = rec.value();
      if (value.size() > max_dead_letter_bytes) {
        headers.push_back({"inflow.value.truncated_from_bytes", std::to_string(value.size())});
        value = value.substr(0, max_dead_letter_bytes);
      }
      queued = ctx.producer.produce(cfg.dead_letter_topic, rec.key(), value, headers, st.delivery, token);
      break;
    }
  }
  if (!queued)
    self->delayed_send(self, std::chrono::seconds(1), retry_atom::value, static_cast<int64_t>(token));
}

void dead_letter(partition_actor* self, int64_t offset, events::record_error error, std::string message) {
  auto& rec = *self->state.pending.find(offset);
  rec.scored = true;
  rec.error = error;
  rec.error_message = std::move(message);
  rec.writes = 1;
  write(self, offset, write_kind::dead_letter);
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
  if (!request.ids.empty())
    self->send(st.gateway, std::move(request));
}

void on_scores(partition_actor* self, gateways::score_reply& reply) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  const auto& cfg = ctx.config;
  const int64_t now = now_ms();
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
    bool alert = !cfg.alert.topic.empty() && cfg.alert.matches(result.score);
    bool output = !cfg.output_topic.empty();
    rec.writes = alert + output;
    no_alert += !alert;
    if (rec.writes == 0) {
      finish(self, offset, rec, now);
      continue;
    }
    if (alert)
      write(self, offset, write_kind::alert);
    if (output)
      write(self, offset, write_kind::result);
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
  auto* found = st.pending.find(offset);
  if (!found)
    return;
  auto& rec = *found;
  if (ack.error) {
    // The outcome is not durable: keep the offset uncommitted and write again.
    ctx.probe.produce_retries.inc();
    if (!st.warned_produce) {
      spdlog::warn("{}: partition {}: writing an outcome failed ({}); retrying with backoff", ctx.config.name,
                   st.shared->partition, rd_kafka_err2str(ack.error));
      st.warned_produce = true;
    }
    auto backoff = std::chrono::milliseconds(std::min(5000, 100 << std::min(rec.attempts++, 6)));
    self->delayed_send(self, backoff, retry_atom::value, ack.token);
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
  if (--rec.writes == 0) {
    finish(self, offset, rec, now_ms());
    settle(self);
  }
}

caf::behavior partition(partition_actor* self, std::shared_ptr<const pipeline_context> ctx, caf::actor gateway,
                        std::shared_ptr<partition_shared> shared) {
  auto& st = self->state;
  st.decoder.emplace(ctx->config.source.format, ctx->features.fields(), ctx->config.source.limits);
  st.ctx = std::move(ctx);
  st.gateway = std::move(gateway);
  st.shared = std::move(shared);
  st.delivery = std::make_shared<actor_delivery>(caf::actor_cast<caf::actor>(self));
  return {
    [=](std::shared_ptr<record_batch>& batch) { on_batch(self, batch); },
    [=](gateways::score_reply& reply) { on_scores(self, reply); },
    [=](const produce_ack& ack) { on_ack(self, ack); },
    [=](retry_atom, int64_t token) {
      if (self->state.pending.find(token / 4))
        write(self, token / 4, static_cast<write_kind>(token % 4));
    },
  };
}

class actor_partition_handle : public partition_handle {
public:
  explicit actor_partition_handle(caf::actor actor) : actor_(std::move(actor)) {}
  void deliver(std::shared_ptr<record_batch> batch) override { caf::anon_send(actor_, std::move(batch)); }
  void stop() override { caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown); }

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
