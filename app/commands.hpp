#pragma once
// The `inflow` subcommands. Each returns a sysexits exit code (app/common.hpp).

#include "xgboost/trainer.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace inflow::app {

struct broker_options {
  int brokers = 1;
  std::vector<std::string> topics; ///< NAME:PARTITIONS
};
int run_broker(const broker_options& o);

struct gen_options {
  std::string bootstrap;
  std::string use_case = "fraud";
  std::string topic; ///< empty: the use case's (default_topic)
  int64_t count = 100'000; ///< 0: until stopped
  double rate = 0;         ///< records per second; 0: as fast as possible
  double fraud_rate = 0.01;
  uint64_t seed = 1;
  std::string format = "json";
  int linger_ms = 5; ///< the producer's linger; the development broker returns one batch per fetch
  int64_t shift_after = -1; ///< from this record on, the shifted distribution (drift); -1: never
};
struct gen_report {
  int64_t written = 0;
  int64_t fraud = 0;
  int64_t failed = 0;
};
/// Writes transactions until `count` or the first stop request, then waits for Kafka to
/// acknowledge them until a stop request made during that wait; `progress` is called about once a second.
gen_report generate(const gen_options& o, const std::atomic<int>& stop_requests,
                    const std::function<void(const gen_report&, double elapsed_s)>& progress);
int run_gen(const gen_options& o);

int run_train(xgboost::train_options o, const std::string& use_case);
/// The topic a use case's events go to: transactions, telemetry, user-events, support-messages.
std::string default_topic(const std::string& use_case);

struct redrive_options {
  std::string bootstrap;
  std::string from;  ///< the dead-letter topic
  std::string to;    ///< empty: each letter's source topic (its __connect.errors.topic header)
  std::string error_class = "inflow.errors.model_failed"; ///< "any": every class
  std::string reason; ///< a part of the dead letters' reason, or empty
  std::vector<std::string> failures; ///< model failures (header inflow.model.failure) to take, or empty: any
  std::string group = "inflow-redrive";
  bool dry_run = false;
};
int run_redrive(const redrive_options& o);

struct node_options {
  std::string config_path;
  std::vector<std::string> overrides;
};
int run_node(const node_options& o);
int run_validate(const node_options& o, bool print_reference);
int run_gateways();

struct serve_cli_options {
  std::vector<std::string> models; ///< NAME=PATH
  bool support_replies = false;    ///< serve/reply_server.hpp instead of models
  std::string listen = "127.0.0.1:8000";
  std::string token; ///< required off loopback; also from INFLOW_SERVE_TOKEN
  size_t max_request_bytes = 8 << 20;
  int request_timeout_ms = 30'000;
  size_t max_batch = 256;
  int64_t max_linger_ms = 2;
  int threads = 1;
};
int run_serve(const serve_cli_options& o);

struct status_options {
  std::string admin = "127.0.0.1:9464";
  bool json = false;
};
int run_status(const status_options& o);

struct demo_options {
  std::string use_case = "fraud"; ///< fraud, maintenance, personalization or support
  double duration_s = 0; ///< 0: until Ctrl-C
  double rate = 0;       ///< records/s; 0: the use case's own
  int partitions = 6;
  std::string model_dir; ///< empty: models/<use case>
  std::string admin = "127.0.0.1:9464";
  double fraud_rate = 0.01;
  bool remote = false; ///< score through `inflow serve` and the kserve gateway
};
int run_demo(const demo_options& o);

} // namespace inflow::app
