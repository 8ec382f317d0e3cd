#pragma once
// The embedded development broker: librdkafka's mock cluster, a real Kafka
// protocol peer on 127.0.0.1 ephemeral ports. In memory, for development and
// tests only; it keeps only about 5 MiB per partition (older records are
// dropped, like retention). Production uses a real Kafka cluster.

#include "kafka/client.hpp"

#include <librdkafka/rdkafka_mock.h>

#include <string>

namespace inflow::kafka {

class mock_broker {
public:
  explicit mock_broker(int brokers = 1);
  ~mock_broker();
  mock_broker(const mock_broker&) = delete;
  mock_broker& operator=(const mock_broker&) = delete;

  std::string bootstrap_servers() const;
  /// Throws std::runtime_error if the topic cannot be created.
  void create_topic(const std::string& name, int partitions);
  rd_kafka_mock_cluster_t* cluster() const { return cluster_; }

private:
  handle owner_; // the mock cluster lives inside a client handle
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

} // namespace inflow::kafka
