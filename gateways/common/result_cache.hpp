#pragma once
// Replay-safe inference (`models.*.cache`): a model's answers keyed by the model, its version
// and a digest of the input, in a bounded in-memory index backed by a compacted Kafka topic.
// Every node reads the topic to its end when it starts and then follows it, so a crash replay,
// a rebalance or a reprocessing run finds the answers any node already paid for. CAF-free.

#include "kafka/client.hpp"
#include "kafka/producer.hpp"

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace inflow::gateways {

class result_cache {
public:
  /// One input's answer: `values` (a score or an embedding) or `text`.
  struct entry {
    std::vector<float> values;
    std::string text;
    float call_share = 0;     ///< what answering it again would cost: its part of a model call,
    float cost_micro_usd = 0; ///< and of the provider's bill
  };

  /// Reads `topic` to its end, then follows it on a thread of its own. `scope` names the
  /// model and version: answers of another version are other keys. Throws std::runtime_error
  /// when the topic does not exist or cannot be read.
  result_cache(const kafka::properties& kafka, std::string topic, size_t max_entries, std::string scope);
  ~result_cache();
  result_cache(const result_cache&) = delete;
  result_cache& operator=(const result_cache&) = delete;

  std::string key_of(const float* row, size_t width) const;
  std::string key_of(const std::string& text) const;
  std::optional<entry> find(const std::string& key);
  /// Keeps the answer and writes it to the topic; `listener` hears (with `token`) once Kafka has it.
  rd_kafka_resp_err_t store(const std::string& key, const entry& e,
                            const std::shared_ptr<kafka::delivery_listener>& listener, uint64_t token);
  size_t size() const;
  const std::string& topic() const { return topic_; }

  /// The topic's record value of an entry, and back (nullopt: not one of ours).
  static std::string encode(const entry& e);
  static std::optional<entry> decode(std::string_view value);

private:
  void keep(const std::string& key, entry e); // caller holds mutex_
  void apply(const rd_kafka_message_t* m);
  void follow();

  std::string topic_;
  size_t max_entries_;
  std::string scope_;
  mutable std::mutex mutex_;
  std::list<std::string> recency_; ///< most recently used first
  std::unordered_map<std::string, std::pair<entry, std::list<std::string>::iterator>> index_;
  kafka::producer producer_;
  kafka::handle consumer_;
  std::atomic<bool> stopping_{false};
  std::thread follower_;
};

} // namespace inflow::gateways
