#pragma once
// A thread-safe, idempotent Kafka producer whose delivery reports reach the
// caller through a listener. Used by the sink (alerts, dead letters) and `gen`.

#include "kafka/client.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace inflow::kafka {

struct header {
  std::string name;
  std::string value;
};

/// Receives the outcome of each produced record. Called on the producer's
/// delivery thread; implementations must be quick and thread-safe.
class delivery_listener {
public:
  virtual ~delivery_listener() = default;
  /// `error` is RD_KAFKA_RESP_ERR_NO_ERROR once Kafka acknowledged the record.
  virtual void on_delivery(uint64_t token, rd_kafka_resp_err_t error) = 0;
};

class producer {
public:
  /// `user` holds the `kafka:` properties of the config; consumer-only ones are skipped.
  explicit producer(const properties& user, const properties& overrides = {});
  ~producer();
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  /// Copies key, value and headers. When librdkafka's local queue is full it
  /// waits for room rather than failing. `timestamp_ms` 0 means now.
  /// Returns RD_KAFKA_RESP_ERR_NO_ERROR once queued; any other value says why the
  /// record could not be queued at all (too large, unknown topic, a fatal producer),
  /// and then the listener is not called.
  rd_kafka_resp_err_t produce(const std::string& topic, std::string_view key, std::string_view value,
                              const std::vector<header>& headers, std::shared_ptr<delivery_listener> listener,
                              uint64_t token, int64_t timestamp_ms = 0);

  /// The largest record this producer sends (`message.max.bytes`).
  size_t max_message_bytes() const;

  /// The error that made the producer unusable, or NO_ERROR (librdkafka's fatal error).
  rd_kafka_resp_err_t fatal_error(std::string* reason = nullptr) const;

  /// Waits until every queued record is delivered or failed; false on timeout.
  bool flush(int timeout_ms);
  /// The same without a timeout of its own: each record is bounded by its delivery timeout
  /// (`message.timeout.ms`), so a broker back within it still gets them. Calls `waiting(left)`
  /// every 5 s; false when `give_up()` says so first.
  bool flush_all(const std::function<bool()>& give_up, const std::function<void(int left)>& waiting);

  // Transactions (`transactional.id` set in the overrides), for exactly_once delivery.

  /// Fences any earlier producer with the same transactional.id (aborting its open
  /// transaction) and begins the first transaction. Throws std::runtime_error.
  void begin_transactions(int timeout_ms);

  enum class transaction_end { committed, must_abort, fatal };
  /// Commits the open transaction with the consumer's `offsets` (their group's `metadata`)
  /// and begins the next one. `must_abort`: Kafka refused it; abort_transaction rolls it back.
  /// `fatal`: this producer is fenced or broken. `why` says what went wrong.
  transaction_end commit_transaction(const rd_kafka_topic_partition_list_t* offsets,
                                     const rd_kafka_consumer_group_metadata_t* metadata, int timeout_ms,
                                     std::string& why);
  /// Rolls back the open transaction and begins the next one; false if the producer is unusable.
  bool abort_transaction(int timeout_ms, std::string& why);
  /// Replaces a fenced or broken producer with a new one of the same transactional.id (which
  /// fences the old one for good) and begins its first transaction; what the old one had not
  /// written is purged. Nobody may produce meanwhile. Throws std::runtime_error.
  void renew_transactions(int timeout_ms);

  rd_kafka_t* raw() const { return rk_.get(); }

private:
  static void on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* msg, void*);
  void open(rd_kafka_conf_t* conf);
  void close();

  struct conf_deleter {
    void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
  };
  std::unique_ptr<rd_kafka_conf_t, conf_deleter> conf_;
  handle rk_;
  std::atomic<bool> stop_{false};
  std::thread delivery_thread_;
};

} // namespace inflow::kafka
