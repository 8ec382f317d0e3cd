#include "kafka/client.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <string_view>

namespace inflow::kafka {

namespace {

void log_to_spdlog(const rd_kafka_t*, int level, const char* facility, const char* message) {
  auto lvl = level <= 3 ? spdlog::level::err : level <= 4 ? spdlog::level::warn
           : level <= 6 ? spdlog::level::info : spdlog::level::debug;
  spdlog::log(lvl, "librdkafka {}: {}", facility, message);
}

} // namespace

rd_kafka_conf_t* make_conf(const properties& defaults, const properties& user, const properties& forced) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto* list : {&defaults, &user, &forced}) {
    for (const auto& [key, value] : *list) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        // librdkafka's message quotes the value: keep secrets out of it.
        throw std::runtime_error("kafka." + key + ": " + (is_secret(key) ? "invalid value (not shown)" : err));
      }
    }
  }
  rd_kafka_conf_set_log_cb(conf, log_to_spdlog);
  return conf;
}

handle make_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("cannot create Kafka client: ") + err);
  }
  return handle(rk);
}

bool is_secret(const std::string& key) {
  for (const char* word : {"password", "secret", "key", "token", "credential", "jaas"})
    if (key.find(word) != std::string::npos)
      return true;
  return false;
}

std::vector<std::string> missing_topics(rd_kafka_t* rk, const std::vector<std::string>& topics, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  // All topics: asking for one by name could make the broker auto-create it.
  if (auto err = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms))
    throw std::runtime_error(std::string("cannot reach Kafka: ") + rd_kafka_err2str(err) +
                             " (check kafka.bootstrap.servers and that the brokers are up)");
  std::vector<std::string> missing;
  for (const auto& t : topics) {
    bool found = false;
    for (int i = 0; i < md->topic_cnt && !found; ++i)
      found = t == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!found)
      missing.push_back(t);
  }
  rd_kafka_metadata_destroy(md);
  return missing;
}

partition_list topic_partitions(rd_kafka_t* rk, const std::string& topic, int64_t offset, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk, 0, handle, &md, timeout_ms);
  rd_kafka_topic_destroy(handle);
  if (err)
    throw std::runtime_error(std::string("cannot reach Kafka: ") + rd_kafka_err2str(err));
  std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> owned(md, rd_kafka_metadata_destroy);
  if (md->topic_cnt != 1 || md->topics[0].err)
    throw std::runtime_error("cannot read topic " + topic + ": " +
                             rd_kafka_err2str(md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
  const auto& found = md->topics[0];
  partition_list parts(rd_kafka_topic_partition_list_new(found.partition_cnt));
  for (int p = 0; p < found.partition_cnt; ++p)
    rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), found.partitions[p].id)->offset = offset;
  return parts;
}

std::map<std::string, size_t> topic_max_message_bytes(rd_kafka_t* rk, const std::vector<std::string>& topics,
                                                       int timeout_ms) {
  std::vector<rd_kafka_ConfigResource_t*> resources;
  for (const auto& t : topics)
    resources.push_back(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, t.c_str()));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, resources.data(), resources.size(), nullptr, queue);
  std::map<std::string, size_t> out;
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, timeout_ms)) {
    if (const auto* result = rd_kafka_event_DescribeConfigs_result(ev); result && !rd_kafka_event_error(ev)) {
      size_t count = 0;
      const rd_kafka_ConfigResource_t** described = rd_kafka_DescribeConfigs_result_resources(result, &count);
      for (size_t i = 0; i < count; ++i) {
        if (rd_kafka_ConfigResource_error(described[i]))
          continue;
        size_t entries = 0;
        const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(described[i], &entries);
        for (size_t j = 0; j < entries; ++j)
          if (std::string_view(rd_kafka_ConfigEntry_name(configs[j])) == "max.message.bytes")
            if (const char* value = rd_kafka_ConfigEntry_value(configs[j]))
              out[rd_kafka_ConfigResource_name(described[i])] = std::stoull(value);
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(queue);
  for (auto* r : resources)
    rd_kafka_ConfigResource_destroy(r);
  return out;
}

bool is_consumer_only(const std::string& key) {
  static const char* prefixes[] = {"group.",        "auto.offset.reset",  "enable.auto.",  "session.timeout.ms",
                                   "heartbeat.",    "partition.assignment", "max.poll.",   "queued.",
                                   "fetch.",        "isolation.level",    "check.crcs",    "auto.commit.",
                                   "enable.partition.eof", "offset.store.", "consume.callback."};
  for (const char* p : prefixes)
    if (key.rfind(p, 0) == 0)
      return true;
  return false;
}

} // namespace inflow::kafka
