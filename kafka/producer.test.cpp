#include "kafka/mock_broker.hpp"
#include "kafka/producer.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <thread>

using namespace inflow::kafka;

namespace {

struct delivered : delivery_listener {
  void on_delivery(uint64_t, rd_kafka_resp_err_t error) override {
    std::lock_guard<std::mutex> lock(mutex);
    (error ? failed : ok) += 1;
  }
  std::mutex mutex;
  int ok = 0, failed = 0;
};

} // namespace

TEST_CASE("flush_all waits for a broker that is down for longer than a flush, saying what is left") {
  mock_broker broker(1);
  broker.create_topic("t", 1);
  producer p({{"bootstrap.servers", broker.bootstrap_servers()}}, {{"reconnect.backoff.max.ms", "200"}});
  rd_kafka_mock_broker_set_down(broker.cluster(), 1);
  auto listener = std::make_shared<delivered>();
  for (uint64_t i = 0; i < 10; ++i)
    REQUIRE(p.produce("t", "k", "v", {}, listener, i) == RD_KAFKA_RESP_ERR_NO_ERROR);

  SECTION("until the broker is back") {
    std::thread back([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(5500)); // past the first "waiting" line
      rd_kafka_mock_broker_set_up(broker.cluster(), 1);
    });
    std::vector<int> left;
    CHECK(p.flush_all([] { return false; }, [&](int n) { left.push_back(n); }));
    back.join();
    REQUIRE_FALSE(left.empty());
    CHECK(left.front() == 10);
    std::lock_guard<std::mutex> lock(listener->mutex);
    CHECK(listener->ok == 10);
  }
  SECTION("or until the caller gives up") {
    int asked = 0;
    CHECK_FALSE(p.flush_all([&] { return ++asked == 2; }, [](int) {}));
    CHECK(asked == 2);
  }
}
