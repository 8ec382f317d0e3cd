// Kafka-side ceilings: how fast one librdkafka consumer (tuned as Inflow's
// source is) reads a topic, with and without decoding every record into the
// fraud model's features.
//
//   build/bench_consume_ceiling BOOTSTRAP TOPIC RECORDS [--parse MODEL.json]

#include "events/features.hpp"
#include "xgboost/booster.hpp"
#include "kafka/client.hpp"

#include <fmt/format.h>

#include <chrono>
#include <optional>

int main(int argc, char** argv) {
  using namespace inflow;
  if (argc != 4 && argc != 6) {
    fmt::print(stderr, "usage: {} BOOTSTRAP TOPIC RECORDS [--parse MODEL.json]\n", argv[0]);
    return 64;
  }
  const int64_t records = std::stoll(argv[3]);
  std::optional<events::feature_map> features;
  std::optional<events::decoder> decoder;
  if (argc == 6) {
    features.emplace(xgboost::read_meta(argv[5]).features);
    decoder.emplace(events::wire_format::json, features->fields(), events::decoder_limits{});
  }
  auto rk = kafka::make_handle(
    RD_KAFKA_CONSUMER, kafka::make_conf({{"queued.min.messages", "10000000"}, {"queued.max.messages.kbytes", "2097151"}},
                                        {{"bootstrap.servers", argv[1]}, {"group.id", "inflow-bench-ceiling"},
                                         {"enable.auto.commit", "false"}, {"auto.offset.reset", "earliest"},
                                         // as the node in the bench: the development broker holds empty fetches
                                         {"fetch.wait.max.ms", "5"}}));
  kafka::partition_list parts;
  try {
    parts = kafka::topic_partitions(rk.get(), argv[2], RD_KAFKA_OFFSET_BEGINNING, 10'000);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 69;
  }
  rd_kafka_assign(rk.get(), parts.get()); // no group join: the ceiling, not the protocol
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk.get());
  std::vector<rd_kafka_message_t*> batch(1000);
  std::vector<events::field_value> values;
  std::vector<float> row(features ? features->size() : 0);
  events::record_identity id;
  int64_t seen = 0, decoded = 0;
  std::chrono::steady_clock::time_point first;
  while (seen < records) {
    auto n = rd_kafka_consume_batch_queue(queue, 1000, batch.data(), batch.size());
    for (ssize_t i = 0; i < n; ++i) {
      auto* m = batch[static_cast<size_t>(i)];
      if (!m->err) {
        if (seen++ == 0)
          first = std::chrono::steady_clock::now();
        if (decoder && !decoder->decode({static_cast<const char*>(m->payload), m->len}, values) &&
            !features->extract(values, row.data(), id))
          ++decoded;
      }
      rd_kafka_message_destroy(m);
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - first).count();
  rd_kafka_queue_destroy(queue);
  fmt::print("{:.0f}\n", static_cast<double>(seen) / s);
  if (decoder && decoded != seen)
    fmt::print(stderr, "{} of {} records decoded\n", decoded, seen);
  return 0;
}
