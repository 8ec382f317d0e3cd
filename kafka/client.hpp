#pragma once
// librdkafka handles and configuration, shared by every Kafka user in Inflow.

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace inflow::kafka {

using properties = std::vector<std::pair<std::string, std::string>>;

struct handle_deleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using handle = std::unique_ptr<rd_kafka_t, handle_deleter>;

struct partition_list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using partition_list = std::unique_ptr<rd_kafka_topic_partition_list_t, partition_list_deleter>;

struct queue_deleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
using queue = std::unique_ptr<rd_kafka_queue_t, queue_deleter>;

/// Applies `defaults`, then `user` (so users can override any default), then
/// `forced` (settings the delivery guarantees depend on). Routes librdkafka's
/// logs to spdlog. Throws std::runtime_error naming the rejected property.
rd_kafka_conf_t* make_conf(const properties& defaults, const properties& user, const properties& forced = {});

/// Creates a producer or consumer; throws std::runtime_error with librdkafka's reason.
handle make_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf);

/// Properties whose values are secrets: never logged, printed or echoed in errors.
bool is_secret(const std::string& key);

/// Which of `topics` the cluster does not have. Throws std::runtime_error when
/// the cluster cannot be reached within `timeout_ms`.
std::vector<std::string> missing_topics(rd_kafka_t* rk, const std::vector<std::string>& topics, int timeout_ms);

/// Every partition of `topic`, each at `offset` (RD_KAFKA_OFFSET_BEGINNING, say), for an assign.
/// Throws std::runtime_error when the cluster cannot be reached within `timeout_ms`, or cannot
/// tell of the topic (it has none of that name, say), with librdkafka's reason.
partition_list topic_partitions(rd_kafka_t* rk, const std::string& topic, int64_t offset, int timeout_ms);

/// Each topic's `max.message.bytes` (the largest record batch the broker accepts for it).
/// Topics whose configs cannot be read (no DescribeConfigs permission, say) are left out.
std::map<std::string, size_t> topic_max_message_bytes(rd_kafka_t* rk, const std::vector<std::string>& topics,
                                                       int timeout_ms);

/// Properties that only a consumer understands, left out of producer configs
/// so librdkafka does not warn about them.
bool is_consumer_only(const std::string& key);

} // namespace inflow::kafka
