#pragma once
// The Kafka side of one pipeline: a librdkafka consumer (eager roundrobin by
// default; cooperative-sticky if configured) driven by its own thread, handing each assigned partition's records to that
// partition's actor. It pauses partitions whose in-flight window is full,
// commits finished offsets, and drains on revoke and shutdown.
// CAF-free: partition actors are reached through partition_handle.

#include "actors/pipeline_health.hpp"
#include "actors/probes.hpp"
#include "kafka/client.hpp"
#include "kafka/producer.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace inflow::actors {

/// Owns consumed messages until the partition actor has read them.
struct record_batch {
  std::vector<rd_kafka_message_t*> messages;
  int64_t polled_ms = 0; ///< wall clock when the consumer thread took them from librdkafka
  record_batch() = default;
  record_batch(const record_batch&) = delete;
  ~record_batch() {
    for (auto* m : messages)
      rd_kafka_message_destroy(m);
  }
};

/// What the consumer thread and a partition actor share.
struct partition_shared {
  int32_t partition = 0;
  std::atomic<int64_t> in_flight{0};    ///< dispatched, no final outcome yet
  std::atomic<int64_t> committable{-1}; ///< next offset to commit, -1: nothing finished
  // exactly_once: the actor's answer to a hold (see source::commit_transaction)
  std::atomic<int64_t> held_epoch{0};  ///< the last hold the actor obeys
  std::atomic<int64_t> issued_end{-1}; ///< then: the first offset whose outcome is not written yet
};

/// What a partition holds in memory, in records: the span from its oldest unfinished offset
/// (`committable`, or the first consumed before any finished) to the next to consume, or the
/// unfinished count when larger. Backpressure pauses on it, so one stuck record bounds memory
/// as surely as many slow ones.
int64_t window_held(int64_t in_flight, int64_t committable, int64_t first_offset, int64_t next_offset);

/// How long a partition holding records has made no progress (its committable offset has not
/// moved), counted from its assignment until progress is first seen.
class progress_watch {
public:
  using clock = std::chrono::steady_clock;
  progress_watch() : progress_watch(clock::now()) {}
  explicit progress_watch(clock::time_point assigned) : since_(assigned) {}
  /// Zero while it moves or holds nothing.
  clock::duration stuck_for(int64_t held, int64_t committable, clock::time_point now) {
    if (held == 0 || committable != mark_) {
      mark_ = committable;
      since_ = now;
    }
    return now - since_;
  }

private:
  int64_t mark_ = -1;
  clock::time_point since_;
};

/// The consumer thread's view of one partition actor.
class partition_handle {
public:
  virtual ~partition_handle() = default;
  virtual void deliver(std::shared_ptr<record_batch> batch) = 0;
  /// Ends the actor; returns once it has terminated.
  virtual void stop() = 0;
  /// exactly_once: issue no more writes and answer through partition_shared::held_epoch.
  virtual void hold(int64_t epoch) = 0;
  virtual void release() = 0;
};

struct source_options {
  std::string pipeline;
  std::string topic;
  kafka::properties kafka; ///< the config's `kafka:` section
  // From the pipeline's and the node's options (their defaults are declared there, once).
  int64_t max_in_flight{};
  int64_t commit_interval_ms{};
  int64_t drain_timeout_ms{};
  int64_t stall_timeout_ms{}; ///< a partition with work and no progress for this long is stalled
  /// exactly_once: the pipeline's transactional producer; offsets are committed in its transactions.
  kafka::producer* transactions = nullptr;
};

class source {
public:
  using spawn_fn = std::function<std::unique_ptr<partition_handle>(std::shared_ptr<partition_shared>)>;

  /// Throws std::runtime_error when the consumer cannot be created.
  source(source_options options, spawn_fn spawn, pipeline_probe& probe, pipeline_health& health);
  ~source();

  void start();
  /// Stops taking records and starts draining, committing and closing, all by `deadline`. Returns at once.
  void request_stop(std::chrono::steady_clock::time_point deadline);
  /// Waits for what request_stop started (asking for it first, with drain_timeout_ms, if nobody did);
  /// when it returns, every partition actor has terminated. True if every record consumed was
  /// finished and committed; false if some will be read again by the next start.
  bool stop();
  /// stop() gave up waiting for the consumer thread, which still uses this object: it must
  /// outlive the process (the node exits without destroying it).
  bool abandoned() const { return abandoned_; }

  /// True once the group has answered our join (with or without partitions).
  bool joined() const { return joined_.load(); }
  /// Partition -> in-flight count, for status pages. Thread-safe snapshot.
  std::map<int32_t, int64_t> partitions() const;

private:
  struct assigned {
    std::shared_ptr<partition_shared> shared;
    std::unique_ptr<partition_handle> actor;
    bool paused = false;
    int64_t committed = -1;
    int64_t next_offset = -1;  ///< where the next record should be; -1 unknown
    int64_t first_offset = -1; ///< the first record handed to the actor
    progress_watch progress;
  };
  /// Records held for a partition: from its oldest unfinished offset to its newest consumed
  /// one, so that one stuck record counts everything consumed after it.
  static int64_t held(const assigned& a);

  void run();
  static void on_commit(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque);
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque);
  void assign(rd_kafka_topic_partition_list_t* parts);
  void revoke(rd_kafka_topic_partition_list_t* parts, bool lost);
  void dispatch(std::vector<rd_kafka_message_t*>& polled);
  void count_lost_records(int32_t partition, assigned& a, int64_t first_offset);
  void apply_backpressure();
  /// How long the next shutdown or revoke step may take: `budget`, cut to the stop deadline if one is set.
  int remaining_ms(int64_t budget_ms) const;
  /// Waits (within drain_timeout_ms) until these partitions have nothing in flight; false if some still do.
  bool drain(const std::vector<int32_t>& partitions);
  /// Commits the finished offsets; `sync` waits for Kafka's answer (within remaining_ms). False on failure.
  bool commit(const std::vector<int32_t>& partitions, bool sync);
  /// Leaves the group within remaining_ms; false if Kafka did not answer in time.
  bool close_consumer();
  /// Work around librdkafka #4312 (an abort destroying a cooperative-sticky consumer mid-join):
  /// the first lets a pending first assignment arrive; the second, if none ever came, releases
  /// the handle undestroyed (true).
  void await_first_assignment();
  bool release_if_unsafe_to_destroy();
  /// exactly_once: commits the open transaction with the offsets whose outcomes it holds, on
  /// another thread; `wait` for Kafka's answer. False if it failed (and was rolled back).
  bool commit_transaction(bool wait);
  /// Acts on the answer to the commit on its way: offsets committed and writes resumed, or an abort.
  bool settle_transaction();
  /// Makes every partition actor stop issuing writes; false if one did not answer in time.
  bool hold_all();
  void release_all();
  /// exactly_once: rolls back the open transaction, and with it every partition to its committed offset.
  void abort_transaction(const std::string& why);
  /// Stops the actors of these partitions and forgets them (their records stay uncommitted).
  void drop(const std::vector<int32_t>& partitions);
  void unassign(rd_kafka_topic_partition_list_t* parts);
  /// Stops the pipeline for good (readyz 503 with the reason); logged once.
  void halt(const std::string& reason);
  /// exactly_once: replaces a fenced or broken transactional producer and reads again from the committed offsets.
  void renew_transactions(const std::string& why);
  std::vector<int32_t> all_partitions() const;
  bool cooperative() const; ///< incremental (cooperative-sticky) or eager rebalancing
  void update_lag();
  void check_progress(); ///< stalled partitions and an unreachable Kafka, for /readyz
  std::string check_reachable();

  source_options options_;
  spawn_fn spawn_;
  pipeline_probe& probe_;
  pipeline_health& health_;
  kafka::handle rk_;
  std::map<int32_t, assigned> assigned_; ///< owned by the consumer thread
  mutable std::mutex snapshot_mutex_;
  std::map<int32_t, std::shared_ptr<partition_shared>> snapshot_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> stop_deadline_{0}; ///< steady_clock ticks; 0 until request_stop
  bool clean_ = true;                      ///< consumer thread: every record finished and committed
  std::promise<void> finished_;            ///< set when the consumer thread is done
  bool abandoned_ = false;
  std::atomic<bool> joined_{false};
  /// Since when a lost connection has made Kafka's reachability doubtful (consumer thread
  /// only); unset once a metadata request succeeds.
  std::optional<std::chrono::steady_clock::time_point> doubt_since_;
  std::string unreachable_reason_;
  bool unreachable_reported_ = false;
  int64_t hold_epoch_ = 0;        ///< exactly_once: the last hold asked of the partition actors
  std::optional<std::chrono::steady_clock::time_point> renewed_at_; ///< exactly_once: the transactional producer's last renewal
  int consecutive_aborts_ = 0;    ///< exactly_once: transactions Kafka refused in a row
  struct transaction_outcome {
    kafka::producer::transaction_end end;
    std::string why;
  };
  std::future<transaction_outcome> committing_; ///< exactly_once: the commit on its way, if any
  kafka::partition_list committing_offsets_;   ///< and the offsets it commits
  std::thread thread_;
};

} // namespace inflow::actors
