#include "app/commands.hpp"
#include "app/common.hpp"
#include "kafka/mock_broker.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>

namespace inflow::app {

int run_broker(const broker_options& o) {
  std::vector<std::pair<std::string, int>> topics;
  for (const auto& t : o.topics) {
    auto colon = t.rfind(':');
    int partitions = 0;
    if (colon == std::string::npos || colon == 0 ||
        std::from_chars(t.data() + colon + 1, t.data() + t.size(), partitions).ec != std::errc{} || partitions < 1) {
      spdlog::error("--topic expects NAME:PARTITIONS with PARTITIONS >= 1, got '{}'", t);
      return usage;
    }
    topics.emplace_back(t.substr(0, colon), partitions);
  }
  try {
    kafka::mock_broker broker(o.brokers);
    for (const auto& [name, partitions] : topics)
      broker.create_topic(name, partitions);
    std::printf("%s\n", broker.bootstrap_servers().c_str());
    std::fflush(stdout);
    spdlog::info("development broker ({} broker(s)) on {}: in memory, about 5 MiB kept per partition; "
                 "for development and tests, not production. Ctrl-C stops it.",
                 o.brokers, broker.bootstrap_servers());
    while (!wait_for_stop(std::chrono::seconds(1))) {
    }
    spdlog::info("development broker stopped");
    return ok;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return unavailable;
  }
}

} // namespace inflow::app
