#include "app/commands.hpp"
#include "app/common.hpp"
#include "node/node.hpp"
#include "embedded_examples.hpp"
#include "xgboost/trainer.hpp"
#include "serve/model_server.hpp"
#include "serve/reply_server.hpp"
#include "kafka/mock_broker.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
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

/// What differs between the use cases the demo runs.
struct use_case {
  const char* name;
  const char* example_yaml;
  const char* example_file; ///< for error messages
  const char* model;        ///< its name under models:
  double rate;              ///< records/s unless --rate says
  const char* what;         ///< "transactions", "readings", ...
};

const use_case& use_case_of(const std::string& name) {
  static const std::array<use_case, 4> cases{{
    {"fraud", config::fraud_example_yaml, "config/examples/fraud.yaml", "fraud", 20'000, "transactions"},
    {"maintenance", config::maintenance_example_yaml, "config/examples/maintenance.yaml", "remaining-life", 5'000,
     "sensor readings"},
    {"personalization", config::personalization_example_yaml, "config/examples/personalization.yaml", "offers",
     10'000, "visits"},
    // A reply is one call of its own: a rate a text model's limits allow.
    {"support", config::support_example_yaml, "config/examples/support.yaml", "replies", 10, "customer messages"},
  }};
  for (const auto& c : cases)
    if (name == c.name)
      return c;
  throw std::invalid_argument("unknown use case " + name);
}

} // namespace

int run_demo(const demo_options& o) {
  try {
    const auto& uc = use_case_of(o.use_case);
    const double rate = o.rate > 0 ? o.rate : uc.rate;
    kafka::mock_broker broker(1);
    auto bootstrap = broker.bootstrap_servers();
    fmt::print("inflow demo ({}): development broker (in memory) at {}\n", uc.name, bootstrap);

    std::vector<std::string> overrides{"kafka.bootstrap.servers=" + bootstrap, "node.admin=" + o.admin,
                                       // The development broker answers an empty fetch only
                                       // after the full wait, never when data arrives.
                                       "kafka.fetch.wait.max.ms=5"};
    std::unique_ptr<serve::model_server> model_server;
    std::unique_ptr<serve::reply_server> reply_server;
    if (o.use_case == "support" && o.remote) {
      fmt::print(stderr, "--remote serves an XGBoost model; the support use case calls a text model already\n");
      return usage;
    }
    if (o.use_case == "support") {
      // A local OpenAI-compatible server in place of OpenAI, and no second provider to fall back on.
      reply_server = std::make_unique<serve::reply_server>("127.0.0.1", 0, "demo-token");
      auto endpoint = fmt::format("http://127.0.0.1:{}/v1", reply_server->port());
      fmt::print("support replies (OpenAI chat completions, FAQ retrieval) at {}\n", endpoint);
      overrides.insert(overrides.end(), {"models.replies.endpoint=" + endpoint, "models.replies.api_key=demo-token",
                                         "models.replies.model=inflow-faq", "models.replies.fallback=~",
                                         "models.replies.price_per_million_input_tokens=0",
                                         "models.replies.price_per_million_output_tokens=0",
                                         "models.replies-gemini=~"});
    } else {
      const auto dir = o.model_dir.empty() ? "models/" + o.use_case : o.model_dir;
      auto model_path = (std::filesystem::path(dir) / "model.json").string();
      if (!std::filesystem::exists(model_path)) {
        fmt::print("no model at {}: training one (inflow train --use-case {} --out {})\n", model_path, uc.name, dir);
        xgboost::train_options train;
        train.out_dir = dir;
        train.rows = 100'000;
        if (o.use_case == "maintenance")
          train.threshold = 48;
        if (int rc = run_train(train, o.use_case); rc != ok)
          return rc;
      }
      overrides.push_back(fmt::format("models.{}.path={}", uc.model, model_path));
      if (o.remote) {
        model_server = std::make_unique<serve::model_server>(
          std::vector<serve::served_model>{{uc.model, model_path}}, serve::serve_options{"127.0.0.1", 0});
        auto endpoint = fmt::format("http://127.0.0.1:{}/v2/models/{}/infer", model_server->port(), uc.model);
        fmt::print("model server (KServe v2) at {}\n", endpoint);
        nlohmann::json features = xgboost::read_meta(model_path).features;
        overrides.insert(overrides.end(), {fmt::format("models.{}.provider=kserve", uc.model),
                                           fmt::format("models.{}.path=~", uc.model),
                                           fmt::format("models.{}.endpoint={}", uc.model, endpoint),
                                           fmt::format("models.{}.input={}", uc.model, features.dump())});
      }
    }
    auto loaded = config::load_text(uc.example_yaml, overrides);
    if (!loaded.config) {
      for (const auto& e : loaded.errors)
        fmt::print(stderr, "{}\n", config::format_error(uc.example_file, e));
      return config_error;
    }
    const auto& [pipeline, pcfg] = *loaded.config->pipelines.begin();
    const auto rule = pcfg.alert; // names the id and key in alerts
    const auto source_topic = pcfg.source.topic;
    broker.create_topic(source_topic, o.partitions);
    for (const auto* topic : {&pcfg.alert.topic, &pcfg.output_topic, &pcfg.dead_letter_topic, &pcfg.drift.topic})
      if (!topic->empty())
        broker.create_topic(*topic, 1);
    node node(std::move(*loaded.config));
    node.start();
    fmt::print("node running the {} pipeline; dashboard at http://{}/ (metrics at /metrics, status at "
               "/api/status)\n",
               pipeline, o.admin.substr(0, o.admin.rfind(':')) + ":" + std::to_string(node.admin_port()));

    auto& reg = node.metrics();
    auto label = metrics::label("pipeline", pipeline);
    // Transactions written before the consumer group has assigned partitions (a few seconds on the
    // development broker) would only wait, and their latency would hide the pipeline's own.
    fmt::print("joining the consumer group...\n");
    auto& assigned = reg.get_gauge("inflow_partitions_assigned", "", label);
    bool interrupted = false;
    while (assigned.value() == 0 && !(interrupted = wait_for_stop(std::chrono::milliseconds(100)))) {
    }
    if (o.use_case == "fraud")
      fmt::print("generating {:.0f} transactions/s ({:.1f}% fraud); Ctrl-C stops\n\n", rate, o.fraud_rate * 100);
    else
      fmt::print("generating {:.0f} {}/s; Ctrl-C stops\n\n", rate, uc.what);

    std::atomic<int> stop_gen{interrupted};
    gen_report generated;
    std::thread generator([&] {
      gen_options g;
      g.use_case = o.use_case;
      g.topic = source_topic;
      g.bootstrap = bootstrap;
      g.count = 0;
      g.rate = rate;
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
        fmt::print("       ALERT {} score {:.3f} {} {} ({})\n", a[rule.key_as].get<std::string>(),
                   a["score"].get<double>(), rule.id_as, a[rule.id_as].get<std::string>(), a["alert_id"].get<std::string>());
      }
      uint64_t alerts_now = alerted.value();
      if (alerts_now - last_alerts > shown)
        fmt::print("       ... and {} more alerts this second\n", alerts_now - last_alerts - shown);
      last_alerts = alerts_now;
      if (o.duration_s > 0 &&
          std::chrono::steady_clock::now() - started >= std::chrono::duration<double>(o.duration_s))
        break;
    }
    // The generator still waits for Kafka to acknowledge what it wrote; a Ctrl-C meanwhile gives that up.
    ++stop_gen;
    {
      stop_counter counting(stop_gen);
      generator.join();
    }
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
