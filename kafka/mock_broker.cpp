#include "kafka/mock_broker.hpp"

#include <stdexcept>

namespace inflow::kafka {

mock_broker::mock_broker(int brokers) {
  owner_ = make_handle(RD_KAFKA_PRODUCER, make_conf({}, {}, {{"log_level", "3"}}) /* no bootstrap.servers warning */);
  cluster_ = rd_kafka_mock_cluster_new(owner_.get(), brokers);
  if (!cluster_)
    throw std::runtime_error("cannot start the development broker");
}

mock_broker::~mock_broker() {
  rd_kafka_mock_cluster_destroy(cluster_);
}

std::string mock_broker::bootstrap_servers() const {
  return rd_kafka_mock_cluster_bootstraps(cluster_);
}

void mock_broker::create_topic(const std::string& name, int partitions) {
  auto err = rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1);
  if (err)
    throw std::runtime_error("cannot create topic " + name + ": " + rd_kafka_err2str(err));
}

} // namespace inflow::kafka
