#include "app/commands.hpp"
#include "app/common.hpp"
#include "events/generator.hpp"
#include "events/use_cases.hpp"
#include "kafka/producer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

namespace inflow::app {

namespace {

class counting_listener : public kafka::delivery_listener {
public:
  void on_delivery(uint64_t, rd_kafka_resp_err_t error) override {
    if (error) {
      failed.fetch_add(1);
      if (!warned.exchange(true))
        spdlog::warn("gen: a record was not written: {}", rd_kafka_err2str(error));
    }
  }
  std::atomic<int64_t> failed{0};
  std::atomic<bool> warned{false};
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace

gen_report generate(const gen_options& o, const std::atomic<int>& stop_requests,
                    const std::function<void(const gen_report&, double)>& progress) {
  kafka::producer producer({{"bootstrap.servers", o.bootstrap}},
                           {{"client.id", "inflow-gen"}, {"linger.ms", std::to_string(o.linger_ms)}});
  auto listener = std::make_shared<counting_listener>();
  events::generator gen(o.seed, o.fraud_rate);
  events::sample_source other = o.use_case == "fraud" ? nullptr : events::source_for(o.use_case, o.seed);
  const auto topic = o.topic.empty() ? default_topic(o.use_case) : o.topic;
  const bool msgpack = o.format == "msgpack";
  gen_report report;
  using clock = std::chrono::steady_clock;
  auto start = clock::now(), last_progress = start;
  for (int64_t i = 0; (o.count == 0 || i < o.count) && stop_requests.load(std::memory_order_relaxed) == 0; ++i) {
    if (o.rate > 0) {
      auto due = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(i / o.rate));
      if (due > clock::now())
        std::this_thread::sleep_until(due);
    }
    if (i == o.shift_after)
      gen.shift();
    const auto ts = now_ms();
    events::sample event;
    if (other) {
      event = other(ts);
    } else {
      auto sample = gen.next(ts);
      event = {sample.tx.card_id, msgpack ? events::to_msgpack(sample.tx) : events::to_json(sample.tx),
               sample.fraud ? 1.f : 0.f};
    }
    if (auto err = producer.produce(topic, event.key, event.json, {{"inflow.label", fmt::format("{}", event.label)}},
                                    listener, static_cast<uint64_t>(i), ts))
      throw std::runtime_error(fmt::format("cannot write to {}: {}", topic, rd_kafka_err2str(err)));
    if (i == 0 && o.rate > 0) {
      // The idempotent producer may not send for about a second after it starts; pacing from
      // then on keeps a rate from turning into a burst of everything queued meanwhile.
      producer.flush(10'000);
      start = clock::now();
    }
    ++report.written;
    report.fraud += !other && event.label > 0.5f;
    if (progress && clock::now() - last_progress >= std::chrono::seconds(1)) {
      last_progress = clock::now();
      report.failed = listener->failed.load();
      progress(report, std::chrono::duration<double>(last_progress - start).count());
    }
  }
  // The stop that ended the writing must not also end the wait: only a later one gives up.
  const int stops_before_wait = stop_requests.load();
  producer.flush_all([&] { return stop_requests.load() > stops_before_wait; }, [](int left) {
    spdlog::info("gen: waiting for Kafka to acknowledge {} records (Ctrl-C gives up)", left);
  });
  report.failed = listener->failed.load() + rd_kafka_outq_len(producer.raw());
  return report;
}

std::string default_topic(const std::string& use_case) {
  if (use_case == "maintenance")
    return "telemetry";
  if (use_case == "personalization")
    return "user-events";
  if (use_case == "support")
    return "support-messages";
  return "transactions";
}

int run_gen(const gen_options& o) {
  if (o.use_case != "fraud" && (o.format != "json" || o.shift_after >= 0)) {
    spdlog::error("gen: --format msgpack and --shift-after are for the fraud use case's transactions");
    return usage;
  }
  std::atomic<int> stop_requests{0};
  stop_counter counting(stop_requests);
  const bool tty = stderr_is_terminal();
  auto started = std::chrono::steady_clock::now();
  gen_report report;
  int code = ok;
  try {
    int64_t printed = 0;
    report = generate(o, stop_requests, [&](const gen_report& r, double elapsed) {
      auto line = o.count > 0 ? fmt::format("gen: {}/{} records ({:.0f}%), {:.0f}/s, {} fraud", r.written, o.count,
                                            100.0 * r.written / o.count, r.written / elapsed, r.fraud)
                              : fmt::format("gen: {} records, {:.0f}/s, {} fraud", r.written, r.written / elapsed, r.fraud);
      // On a terminal the line updates in place; in logs, one line every 5 s.
      if (tty)
        fmt::print(stderr, "\r{}\x1b[K", line);
      else if (printed++ % 5 == 0)
        fmt::print(stderr, "{}\n", line);
    });
    if (tty)
      fmt::print(stderr, "\n");
  } catch (const std::exception& e) {
    spdlog::error("gen: {}", e.what());
    code = unavailable;
  }
  if (code != ok)
    return code;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fmt::print(stderr, "gen: wrote {} records to {} ({} fraud) in {:.1f} s, {:.0f}/s; {} not acknowledged\n",
             report.written - report.failed, o.topic.empty() ? default_topic(o.use_case) : o.topic, report.fraud, secs, report.written / secs, report.failed);
  return report.failed ? unavailable : ok;
}

} // namespace inflow::app
