#include "app/common.hpp"

#include "events/json_text.hpp"

#include <fmt/chrono.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <mutex>
#include <ctime>
#include <unistd.h>

namespace inflow::app {

namespace {

/// One JSON object per line, the message escaped properly.
class json_sink : public spdlog::sinks::base_sink<std::mutex> {
protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::string line = fmt::format(R"({{"ts":"{:%Y-%m-%dT%H:%M:%S}.{:03d}Z","level":")",
                                   fmt::gmtime(std::chrono::system_clock::to_time_t(msg.time)), ms);
    auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += R"(","msg":)";
    events::append_quoted(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

} // namespace

void setup_logging(const std::string& format, const std::string& level) {
  spdlog::drop("inflow");
  std::shared_ptr<spdlog::logger> logger;
  if (format == "json") {
    logger = std::make_shared<spdlog::logger>("inflow", std::make_shared<json_sink>());
  } else {
    logger = spdlog::stderr_color_mt("inflow");
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

namespace {
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
} // namespace

void block_stop_signals() {
  auto set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

bool wait_for_stop(std::chrono::milliseconds timeout) {
  auto set = stop_signals();
  timespec ts{static_cast<time_t>(timeout.count() / 1000), static_cast<long>((timeout.count() % 1000) * 1'000'000)};
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

stop_counter::stop_counter(std::atomic<int>& count)
  : thread_([this, &count] {
      while (!done_)
        count += wait_for_stop(std::chrono::milliseconds(200));
    }) {}

stop_counter::~stop_counter() {
  done_ = true;
  thread_.join();
}

void block_reload_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

signal_seen wait_for_signal(std::chrono::milliseconds timeout) {
  auto set = stop_signals();
  sigaddset(&set, SIGHUP);
  timespec ts{static_cast<time_t>(timeout.count() / 1000), static_cast<long>((timeout.count() % 1000) * 1'000'000)};
  const int signal = sigtimedwait(&set, nullptr, &ts);
  return signal == SIGHUP ? signal_seen::reload : signal > 0 ? signal_seen::stop : signal_seen::none;
}

bool stderr_is_terminal() {
  return isatty(STDERR_FILENO) == 1;
}

} // namespace inflow::app
