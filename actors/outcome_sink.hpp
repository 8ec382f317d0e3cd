#pragma once
// Everything one partition decides about its records, from consumption to commit: decoding,
// the model's answer, the writes that make up an outcome (alert, result, dead letter), what a
// failed write means (kafka/produce_errors.hpp), the reorder buffer of ordered delivery and
// the offset up to which records are finished. Every record's outcome passes through it.
//
// CAF-free, so tests drive it with a fake producer and clock (outcome_sink.test.cpp); the
// partition actor (partition_actor.cpp) connects it to the gateway, the producer and timers.

#include "actors/offset_window.hpp"
#include "actors/outcome_order.hpp"
#include "actors/pipeline_health.hpp"
#include "actors/probes.hpp"
#include "actors/recent_alerts.hpp"
#include "actors/shadow_book.hpp"
#include "actors/source.hpp"
#include "actors/traffic_split.hpp"
#include "config/config.hpp"
#include "drift/monitor.hpp"
#include "events/decoder.hpp"
#include "events/features.hpp"
#include "gateways/common/gateway_api.hpp"
#include "kafka/producer.hpp"

#include <chrono>
#include <deque>
#include <memory>
#include <optional>

namespace inflow::actors {

/// Alerts and results in another format than their JSON (`output_format: avro`, avro/), made from
/// the JSON; shared by the partitions. Throws std::runtime_error when a record does not fit.
class output_encoder {
public:
  virtual ~output_encoder() = default;
  virtual std::string alert(const std::string& json) const = 0;
  virtual std::string result(const std::string& json) const = 0;
};

/// Everything the partitions of one pipeline share; immutable once built.
struct pipeline_context {
  config::pipeline_config config;
  events::feature_map features;
  /// Per config.routes, the version that answers that share: its task, input and version.
  std::vector<gateways::model_info> versions;
  pipeline_probe& probe;
  recent_alerts& alerts;
  recent_alerts& dead_letters; ///< the latest dead letters' JSON: where from and why
  pipeline_health& health;
  size_t dead_letter_limit_bytes; ///< the smaller of the producer's and the topic's record limits
  std::optional<gateways::model_info> shadow = {}; ///< config.shadow_model's, when it has one
  /// Per version (config.routes), its drift monitor; empty when the pipeline does not watch drift.
  std::vector<std::shared_ptr<drift::monitor>> drift = {};
  /// A reader of the source's format for each partition's decoder, when events/ does not parse it (Avro).
  std::function<std::unique_ptr<events::format_reader>()> make_reader = {};
  std::shared_ptr<const output_encoder> encoder = {}; ///< unset: alerts and results as JSON

  const gateways::model_info& model() const { return versions.front(); }
};

/// What the model said about one record.
struct model_result {
  uint16_t route = 0; ///< the version the record went to (config.routes)
  std::string model;  ///< a fallback that answered instead (empty: the version did)
  std::string model_version;
  float score = 0;           ///< classification, regression
  std::vector<float> vector; ///< embedding
  std::string text;          ///< text_generation
};

class outcome_sink {
public:
  /// What the sink asks of the world around it.
  class outside {
  public:
    virtual ~outside() = default;
    /// Queues a write; Kafka's verdict comes back through on_ack(token, ...). Any other
    /// return than NO_ERROR: it was not queued, and no verdict follows.
    virtual rd_kafka_resp_err_t produce(const std::string& topic, std::string_view key, std::string_view value,
                                        const std::vector<kafka::header>& headers, uint64_t token) = 0;
    /// Why the producer became unusable, after a fatal write error.
    virtual std::string producer_failure() = 0;
    /// Asks a version of the model (config.routes; the shadow's is routes.size()); the answer
    /// comes back through on_scores.
    virtual void call_model(size_t route, gateways::score_request request) = 0;
    /// Queues a shadow's answer on a producer outside any transaction (exactly_once): best
    /// effort, its verdict comes back through on_ack but nothing waits for it.
    virtual rd_kafka_resp_err_t produce_shadow(const std::string& topic, std::string_view key, std::string_view value,
                                               uint64_t token) = 0;
    /// Calls retry(token) after `delay`.
    virtual void retry_after(std::chrono::milliseconds delay, uint64_t token) = 0;
    /// Calls rewind() after `delay`.
    virtual void rewind_after(std::chrono::milliseconds delay) = 0;
    /// Calls retry_schemas() after `delay`.
    virtual void retry_schemas_after(std::chrono::milliseconds delay) = 0;
    virtual int64_t now_ms() = 0;
  };

  outcome_sink(std::shared_ptr<const pipeline_context> ctx, std::shared_ptr<partition_shared> shared,
               outside& out);

  /// Records from the consumer thread, in offset order.
  void on_batch(const std::shared_ptr<const record_batch>& batch);
  /// The model's answer (or error) for some of the records asked for.
  void on_scores(gateways::score_reply& reply);
  /// Kafka's verdict on one write.
  void on_ack(uint64_t token, rd_kafka_resp_err_t error);
  /// Writes again what a retriable failure put off.
  void retry(uint64_t token);
  /// (in offset order) Writes again, in order, what a failed write rewound.
  void rewind();
  /// Decodes again the records held because the schema registry did not answer.
  void retry_schemas();
  /// (exactly_once) Issues no more writes and answers through partition_shared; release() ends it.
  void hold(int64_t epoch);
  void release();
  /// A fault of the node itself (an exception escaped a handler, so this sink's state is not to be
  /// trusted): the pipeline fails and the node exits 70 saying why. Nothing after the last commit
  /// is committed, so a restart reads it again.
  void fail(const std::string& what);

  /// Writes queued and not acknowledged yet.
  int64_t outstanding() const { return outstanding_; }

  /// The writes of a record's outcome. A produce token carries the offset and the kind.
  enum class write_kind : uint8_t { alert = 0, dead_letter = 1, result = 2, shadow = 3 };
  /// Set in the ids of a shadow's call, so that its answers are never taken for the live ones.
  static constexpr uint64_t shadow_bit = uint64_t(1) << 63;
  static uint64_t token_of(int64_t offset, write_kind k) {
    return static_cast<uint64_t>(offset) * 4 + static_cast<uint64_t>(k);
  }
  static int64_t offset_of(uint64_t token) { return static_cast<int64_t>(token / 4); }
  static write_kind kind_of(uint64_t token) { return static_cast<write_kind>(token % 4); }

private:
  struct pending_record {
    bool scored = false; ///< its outcome is decided: scored, or a dead letter
    bool alert = false;  ///< the outcome includes an alert
    bool output = false; ///< ... and a result
    int writes = 0;      ///< alert, result or dead letter issued and not yet acknowledged
    int64_t timestamp_ms = 0;
    int64_t polled_ms = 0; ///< when the node took it from Kafka: its own part of the latency starts
    /// The consumed record itself (batches_ keeps it alive): the dead-letter topic gets
    /// its key and value unchanged.
    const rd_kafka_message_t* message = nullptr;
    events::record_identity identity;
    model_result result;
    std::string alert_json; ///< built once, written (and rewritten on retry) as is
    events::record_error error{};
    gateways::failure model_failure{}; ///< how the model failed, when error is model_failed
    std::string error_message;
    bool dead_lettered = false; ///< its dead letter is written or on its way
    int attempts = 0;
  };

  void finish(int64_t offset, const pending_record& rec, int64_t now);
  void settle();
  void advance_in_order();
  void finish_if_written(int64_t offset, const pending_record& rec);
  void decided(int64_t offset);
  void issue(int64_t offset);
  void write(int64_t offset, write_kind kind);
  void write_failed(int64_t offset, write_kind kind, rd_kafka_resp_err_t error);
  void dead_letter(int64_t offset, events::record_error error, std::string message);
  enum class taken : uint8_t { to_model, dead_letter, awaiting_schema };
  taken take(int64_t offset, pending_record& rec, std::vector<gateways::score_request>& requests);
  void call_models(std::vector<gateways::score_request>& requests);
  void await_schema(int64_t offset, const std::string& why);
  void call_shadow(const std::vector<gateways::score_request>& live);
  void on_shadow_scores(const gateways::score_reply& reply);
  void compare(int64_t offset, const shadow_book::pair& answers);

  std::shared_ptr<const pipeline_context> ctx_;
  std::shared_ptr<partition_shared> shared_;
  outside& out_;
  events::decoder decoder_;
  std::vector<events::field_value> values_;
  std::vector<float> row_; ///< the record being taken's features
  std::string text_;       ///< ... or its text
  traffic_split split_;
  std::vector<drift::tally> drift_tallies_; ///< per version: counted since the last merge
  shadow_book shadow_book_;
  int64_t shadow_outstanding_ = 0; ///< records copied to the shadow and not answered yet
  offset_window<pending_record> pending_;
  /// Per route, whether its calls (or the shadow's copies of them) carry a traceparent anywhere:
  /// librdkafka parses all of a record's headers to find one, a sixth of an embedded node's CPU.
  std::vector<bool> traced_routes_;
  bool in_order_; ///< delivery ordered or exactly_once: `order_` decides when writes go out
  outcome_order order_;
  int64_t outstanding_ = 0; ///< writes queued and not yet acknowledged, all records
  bool rewinding_ = false;  ///< a failed write was rewound; rewriting waits for outstanding_ to reach 0
  /// Consumed batches, kept until every record in them is finished.
  std::deque<std::shared_ptr<const record_batch>> batches_;
  /// Ages (s) of the records finished while handling the current message; settle() publishes them.
  std::vector<double> finished_ages_; ///< since the records' timestamps
  std::vector<double> node_ages_;     ///< since the node polled them
  /// Records whose writer's schema the registry did not give yet, in offset order: held (and
  /// so uncommitted) rather than dead-lettered, decoded again with a growing pause.
  std::deque<int64_t> awaiting_schema_;
  std::chrono::milliseconds schema_retry_{0};
  std::chrono::steady_clock::time_point warned_schema_{};
  bool warned_produce_ = false;
  bool warned_refused_ = false;
};

/// The alert's JSON; `alert_id` is `topic/partition/offset`, the same on every replay.
std::string make_alert_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                            const events::record_identity& identity, const model_result& result, int64_t now_ms);

/// The result's JSON for the output topic: score, embedding or text, by task.
std::string make_result_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                             const events::record_identity& identity, const model_result& result, int64_t now_ms);

/// The shadow's answer for the shadow topic, beside the live version's.
std::string make_shadow_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                             const shadow_book::pair& answers, bool shadow_alert, int64_t now_ms);

} // namespace inflow::actors
