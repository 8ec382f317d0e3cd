// What the transport alone adds to a record's latency: from its timestamp (set
// by the writer) to a plain librdkafka consumer on the same broker holding it,
// read one message at a time, with no model and nothing written.
//
//   build/bench_transport_latency BOOTSTRAP TOPIC SECONDS [PROPERTY=VALUE ...]
//
// Prints "ready" once positioned at the end of every partition, then, after
// SECONDS, the p50, p99 and p99.9 in ms.

#include "kafka/client.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

int main(int argc, char** argv) {
  using namespace inflow;
  if (argc < 4) {
    fmt::print(stderr, "usage: {} BOOTSTRAP TOPIC SECONDS [PROPERTY=VALUE ...]\n", argv[0]);
    return 64;
  }
  kafka::properties props{{"bootstrap.servers", argv[1]}, {"group.id", "inflow-bench-transport"},
                          {"enable.auto.commit", "false"}};
  for (int i = 4; i < argc; ++i) { // librdkafka properties, as the node in the latency runs has them
    std::string_view kv = argv[i];
    const auto eq = kv.find('=');
    props.emplace_back(std::string(kv.substr(0, eq)), eq == kv.npos ? "" : std::string(kv.substr(eq + 1)));
  }
  auto rk = kafka::make_handle(RD_KAFKA_CONSUMER, kafka::make_conf({}, props));
  kafka::partition_list parts;
  try {
    parts = kafka::topic_partitions(rk.get(), argv[2], RD_KAFKA_OFFSET_END, 10'000);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 69;
  }
  rd_kafka_assign(rk.get(), parts.get());
  rd_kafka_poll_set_consumer(rk.get());
  if (auto* m = rd_kafka_consumer_poll(rk.get(), 2'000)) // connected and positioned
    rd_kafka_message_destroy(m);
  fmt::print("ready\n");
  std::fflush(stdout);

  using clock = std::chrono::system_clock;
  std::vector<int64_t> ages;
  const auto end = clock::now() + std::chrono::duration<double>(std::stod(argv[3]));
  while (clock::now() < end) {
    auto* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m)
      continue;
    if (!m->err) {
      const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now().time_since_epoch()).count();
      ages.push_back(now - rd_kafka_message_timestamp(m, nullptr));
    }
    rd_kafka_message_destroy(m);
  }
  if (ages.empty()) {
    fmt::print("0 0 0\n");
    return 0;
  }
  std::sort(ages.begin(), ages.end());
  auto at = [&](double q) { return ages[static_cast<size_t>(q * static_cast<double>(ages.size() - 1))]; };
  fmt::print("{} {} {}\n", at(0.5), at(0.99), at(0.999));
  return 0;
}
