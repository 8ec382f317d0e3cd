#include "actors/partition_actor.hpp"

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <stdexcept>
#include <thread>

using namespace inflow;
using namespace inflow::actors;

namespace {

/// A source format whose reader has a bug: it throws.
struct throwing_reader : events::format_reader {
  std::optional<events::decode_failure> read(std::string_view, const std::vector<std::vector<std::string>>&,
                                             std::vector<events::field_value>&) override {
    throw std::logic_error("reader bug");
  }
};

} // namespace

TEST_CASE("an exception in a partition fails the pipeline with its reason instead of stalling it", "[partition]") {
  caf::actor_system_config caf_config;
  caf::actor_system system{caf_config};
  metrics::registry registry;
  pipeline_probe probe{registry, "fraud"};
  recent_alerts alerts, dead_letters;
  pipeline_health health;
  auto cfg = config::pipeline_defaults();
  cfg.name = "fraud";
  cfg.source.topic = "transactions";
  cfg.source.format = config::wire_format::avro;
  cfg.dead_letter_topic = "dead-letters";
  cfg.model = "fraud-model";
  cfg.routes = {{"fraud-model", "", 1}};
  auto ctx = std::make_shared<pipeline_context>(pipeline_context{
    cfg, events::feature_map({"amount"}), {gateways::model_info{"fraud-model", "1", {"amount"}, "classification"}},
    probe, alerts, dead_letters, health, 1 << 20});
  ctx->make_reader = [] { return std::make_unique<throwing_reader>(); };
  // Producers that are never used here: nothing is decoded, so nothing is written.
  kafka::properties nowhere{{"bootstrap.servers", "127.0.0.1:1"}, {"log_level", "0"}};
  kafka::producer producer(nowhere), plain(nowhere);
  auto shared = std::make_shared<partition_shared>();
  shared->partition = 3;
  auto partition = spawn_partition_actor(system, ctx, producer, plain, std::vector<gateways::scorer_actor>{}, shared);

  // One record, as librdkafka hands it over (in zeroed room for its private part).
  std::string payload = "a record";
  auto room = std::make_unique<std::array<std::byte, 1024>>();
  auto* message = new (room->data()) rd_kafka_message_t{};
  message->payload = payload.data();
  message->len = payload.size();
  message->offset = 7;
  auto batch = std::shared_ptr<record_batch>(new record_batch, [](record_batch* b) {
    b->messages.clear(); // the message is this test's, not librdkafka's
    delete b;
  });
  batch->messages.push_back(message);
  shared->in_flight = 1;
  partition->deliver(batch);

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!health.failed() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(health.failed());
  CHECK(health.problem() == "stopped: partition 3: internal error (reader bug): a bug in Inflow; please report it "
                            "with this log");
  CHECK(shared->committable == -1); // nothing is committed past what was not finished
  partition->stop();
}
