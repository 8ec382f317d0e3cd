#include "kafka/client.hpp"
#include "kafka/mock_broker.hpp"

#include <catch2/catch.hpp>

using namespace inflow::kafka;

TEST_CASE("secret librdkafka properties are recognised and never echoed") {
  CHECK(is_secret("sasl.password"));
  CHECK(is_secret("ssl.key.password"));
  CHECK(is_secret("sasl.oauthbearer.client.secret"));
  CHECK_FALSE(is_secret("bootstrap.servers"));
  CHECK_THROWS_WITH(make_conf({}, {{"no.such.property", "x"}}), Catch::Contains("kafka.no.such.property"));
  CHECK_THROWS_WITH(make_conf({}, {{"my.secret.token", "hunter2"}}),
                    Catch::Contains("kafka.my.secret.token") && !Catch::Contains("hunter2"));
}

TEST_CASE("missing topics are found on a real Kafka-protocol peer") {
  mock_broker broker(1);
  broker.create_topic("present", 2);
  auto producer = make_handle(RD_KAFKA_PRODUCER, make_conf({}, {{"bootstrap.servers", broker.bootstrap_servers()}}));
  CHECK(missing_topics(producer.get(), {"present", "absent"}, 5000) == std::vector<std::string>{"absent"});
}
