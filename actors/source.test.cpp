#include "actors/source.hpp"
#include "admin/metrics.hpp"
#include "config/config.hpp"
#include "kafka/mock_broker.hpp"

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka_mock.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <functional>

using namespace inflow;

namespace {

class idle_partition : public actors::partition_handle {
public:
  void deliver(std::shared_ptr<actors::record_batch>) override {}
  void stop() override {}
  void hold(int64_t) override {}
  void release() override {}
};

/// Calls back on every log line: lets a test act at a given step of librdkafka's group protocol.
class watching_sink : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit watching_sink(std::function<void(const std::string&)> on_line) : on_line_(std::move(on_line)) {}

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    on_line_(std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

private:
  std::function<void(const std::string&)> on_line_;
};

} // namespace

// librdkafka 2.0.2 aborts the process (an assertion in its sticky assignor, librdkafka #4312)
// when a cooperative-sticky consumer is destroyed after joining its group and before its first
// assignment. A broker round trip of 500 ms holds that window open; the stop comes inside it.
TEST_CASE("a cooperative-sticky consumer stopped between joining and its first assignment exits cleanly") {
  kafka::mock_broker broker(1);
  broker.create_topic("events", 4);
  rd_kafka_mock_broker_set_rtt(broker.cluster(), 1, 500); // librdkafka's mock: only it can be this slow on cue

  metrics::registry registry;
  actors::pipeline_probe probe(registry, "p");
  actors::pipeline_health health;
  const auto defaults = config::pipeline_defaults();
  actors::source_options options;
  options.max_in_flight = defaults.max_in_flight;
  options.commit_interval_ms = defaults.commit_interval_ms;
  options.stall_timeout_ms = defaults.stall_timeout_ms;
  options.drain_timeout_ms = 10'000;
  options.pipeline = "p";
  options.topic = "events";
  options.kafka = {{"bootstrap.servers", broker.bootstrap_servers()},
                   {"group.id", "cooperative"},
                   {"partition.assignment.strategy", "cooperative-sticky"},
                   {"debug", "cgrp"}};
  auto source = std::make_unique<actors::source>(
    options, [](std::shared_ptr<actors::partition_shared>) { return std::make_unique<idle_partition>(); }, probe,
    health);

  std::atomic<bool> joined_group{false};
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("watch", std::make_shared<watching_sink>([&](const std::string& line) {
    if (line.find("JoinGroup response: GenerationId") != std::string::npos)
      joined_group = true;
  }));
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);

  source->start();
  for (int i = 0; i < 3000 && !joined_group; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(joined_group);
  CHECK_FALSE(source->joined()); // inside the window: no assignment yet
  CHECK(source->stop());
  CHECK(source->joined()); // the assignment was let in before leaving
  source.reset();          // destroyed here: this aborted before the workaround
  spdlog::set_default_logger(previous);
}
