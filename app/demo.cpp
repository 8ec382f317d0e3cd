#include "app/commands.hpp"
#include "app/common.hpp"
#include "node/node.hpp"
#include "embedded_examples.hpp"
#include "xgboost/trainer.hpp"
#include "serve/model_server.hpp"
#include "kafka/mock_broker.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <thread>

namespace inflow::app {

namespace {

std::string human(double v) {
  if (v >= 1e6)
    return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4)
    return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string ms(double seconds) {
  return fmt::format("{:.1f}ms", seconds * 1000);
}

} // namespace

int run_demo(const demo_options& o) {
  try {
    kafka::mock_broker broker(1);
    broker.create_topic("transactions", o.partitions);
    broker.create_topic("fraud-alerts", 1);
    broker.create_topic("transactions.dlq", 1);
    auto bootstrap = broker.bootstrap_servers();
    fmt::print("inflow demo: development broker (in memory) at {}\n", bootstrap);

    auto model_path = (std::filesystem::path(o.model_dir) / "model.json").string();
    if (!std::filesystem::exists(model_path)) {
      fmt::print("no model at {}: training one (inflow train --out {})\n", model_path, o.model_dir);
      xgboost::train_options train;
      train.out_dir = o.model_dir;
      train.rows = 100'000;
      if (int rc = run_train(train); rc != ok)
        return rc;
    }

    std::vector<std::string> overrides{"kafka.bootstrap.servers=" + bootstrap, "models.fraud.path=" + model_path,
                                       "node.admin=" + o.admin,
                                       // The development broker answers an empty fetch only
                                       // after the full wait, never when data arrives.
                                       "kafka.fetch.wait.max.ms=5"};
    std::unique_ptr<serve::model_server> model_server;
    if (o.remote) {
      model_server = std::make_unique<serve::model_server>(
        std::vector<serve::served_model>{{"fraud", model_path}}, serve::serve_options{"127.0.0.1", 0});
      auto endpoint = fmt::format("http://127.0.0.1:{}/v2/models/fraud/infer", model_server->port());
      fmt::print("model server (KServe v2) at {}\n", endpoint);
      nlohmann::json features = xgboost::read_meta(model_path).features;
      overrides.insert(overrides.end(), {"models.fraud.provider=kserve", "models.fraud.path=~",
                                         "models.fraud.endpoint=" + endpoint,
                                         "models.fraud.input=" + features.dump()});
    }
    auto loaded = config::load_text(config::fraud_example_yaml, overrides);
    if (!loaded.config) {
      for (const auto& e : loaded.errors)
        fmt::print(stderr, "{}\n", config::format_error("config/examples/fraud.yaml", e));
      return config_error;
    }
    const auto pipeline = loaded.config->pipelines.begin()->first;
    const auto rule = loaded.config->pipelines.begin()->second.alert; // names the id and key in alerts
    node node(std::move(*loaded.config));
    node.start();
    fmt::print("node running the fraud pipeline; dashboard at http://{}/ (metrics at /metrics, status at "
               "/api/status)\n",
               o.admin.substr(0, o.admin.rfind(':')) + ":" + std::to_string(node.admin_port()));

    auto& reg = node.metrics();
    auto label = metrics::label("pipeline", pipeline);
    // Transactions written before the consumer group has assigned partitions (a few seconds on the
    // development broker) would only wait, and their latency would hide the pipeline's own.
    fmt::print("joining the consumer group...\n");
    auto& assigned = reg.get_gauge("inflow_partitions_assigned", "", label);
    bool interrupted = false;
    while (assigned.value() == 0 && !(interrupted = wait_for_stop(std::chrono::milliseconds(100)))) {
    }
    fmt::print("generating {:.0f} transactions/s ({:.1f}% fraud); Ctrl-C stops\n\n", o.rate, o.fraud_rate * 100);

    std::atomic<bool> stop_gen{interrupted};
    gen_report generated;
    std::thread generator([&] {
      gen_options g;
      g.bootstrap = bootstrap;
      g.count = 0;
      g.rate = o.rate;
      g.fraud_rate = o.fraud_rate;
      generated = generate(g, stop_gen, {});
    });

    auto& consumed = reg.get_counter("inflow_records_consumed_total", "", label);
    auto& alerted = reg.get_counter("inflow_records_alerted_total", "", label);
    auto& dead = reg.get_counter("inflow_records_dead_lettered_total", "", label);
    auto& in_flight = reg.get_gauge("inflow_records_in_flight", "", label);
    auto& lag = reg.get_gauge("inflow_consumer_lag_records", "", label);
    auto& latency = reg.get_histogram("inflow_end_to_end_latency_seconds", "", label, {});

    fmt::print("{:>6} {:>11} {:>9} {:>7} {:>5} {:>9} {:>8} {:>8} {:>8}\n", "time", "scored/s", "consumed", "alerts",
               "dlq", "in-flight", "p50", "p99", "p99.9");
    auto started = std::chrono::steady_clock::now();
    uint64_t last_consumed = 0, alerts_seen = 0, last_alerts = 0;
    auto last_latency = latency.read();
    int tick = 0;
    while (!interrupted && !(interrupted = wait_for_stop(std::chrono::seconds(1)))) {
      ++tick;
      auto now_latency = latency.read();
      auto window = now_latency.minus(last_latency);
      last_latency = now_latency;
      uint64_t c = consumed.value();
      fmt::print("{:>5}s {:>11} {:>9} {:>7} {:>5} {:>9} {:>8} {:>8} {:>8}\n", tick, human(double(c - last_consumed)),
                 human(double(c)), alerted.value(), dead.value(), in_flight.value(), ms(window.quantile(0.5)),
                 ms(window.quantile(0.99)), ms(window.quantile(0.999)));
      last_consumed = c;
      auto fresh = node.alerts().since(alerts_seen);
      size_t shown = 0;
      for (auto it = fresh.rbegin(); it != fresh.rend() && shown < 2; ++it, ++shown) {
        auto a = nlohmann::json::parse(*it);
        fmt::print("       ALERT {} score {:.3f} tx {} ({})\n", a[rule.key_as].get<std::string>(),
                   a["score"].get<double>(), a[rule.id_as].get<std::string>(), a["alert_id"].get<std::string>());
      }
      uint64_t alerts_now = alerted.value();
      if (alerts_now - last_alerts > shown)
        fmt::print("       ... and {} more alerts this second\n", alerts_now - last_alerts - shown);
      last_alerts = alerts_now;
      if (o.duration_s > 0 &&
          std::chrono::steady_clock::now() - started >= std::chrono::duration<double>(o.duration_s))
        break;
    }
    stop_gen = true;
    generator.join();
    fmt::print("\nstopping: draining in-flight records (lag {})\n", lag.value());
    node.stop();
    auto total = latency.read();
    fmt::print("done: generated {}, consumed {}, alerts {}, dead letters {}; latency p50 {} p99 {}\n",
               generated.written, consumed.value(), alerted.value(), dead.value(), ms(total.quantile(0.5)),
               ms(total.quantile(0.99)));
    return ok;
  } catch (const config_failure& e) {
    for (const auto& err : e.errors)
      fmt::print(stderr, "{}\n", config::format_error("demo", err));
    return config_error;
  } catch (const std::exception& e) {
    spdlog::error("demo: {}", e.what());
    return unavailable;
  }
}

} // namespace inflow::app
