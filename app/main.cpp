// inflow: real-time model inference on Kafka streams. One binary, subcommands.

#include "app/commands.hpp"
#include "app/common.hpp"
#include "config/config.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  using namespace inflow::app;
  block_stop_signals();
  CLI::App app{"Inflow: real-time model inference on Kafka streams"};
  app.set_version_flag("--version", INFLOW_VERSION);
  app.require_subcommand(1);
  std::string log_format = "text", log_level = "info";
  app.add_option("--log-format", log_format, "text or json (JSON lines)")->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
    ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  int code = ok;

  broker_options broker;
  auto* b = app.add_subcommand("broker",
                               "Embedded development broker: librdkafka's in-memory mock cluster, for development and "
                               "tests only. It keeps only about 5 MiB per partition (older records are dropped, like "
                               "retention); production uses a real Kafka cluster. Prints its bootstrap servers as the "
                               "first line of standard output, then serves until SIGINT/SIGTERM.");
  b->add_option("--brokers", broker.brokers, "Number of brokers")->check(CLI::Range(1, 16));
  b->add_option("--topic", broker.topics, "Create a topic: NAME:PARTITIONS (repeatable)");
  b->callback([&] { code = run_broker(broker); });

  gen_options gen;
  auto* g = app.add_subcommand("gen", "Write synthetic card transactions (ground truth in header inflow.label)");
  g->add_option("--bootstrap", gen.bootstrap, "Kafka bootstrap servers")->required();
  g->add_option("--topic", gen.topic, "Topic to write to (default: the use case's: transactions, telemetry, "
                                      "user-events, support-messages)");
  g->add_option("--count", gen.count, "Records to write; 0 writes until Ctrl-C")->capture_default_str()->check(CLI::NonNegativeNumber);
  g->add_option("--rate", gen.rate, "Records per second; 0 is as fast as possible")->capture_default_str()->check(CLI::NonNegativeNumber);
  g->add_option("--fraud-rate", gen.fraud_rate, "Share of fraudulent transactions")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  g->add_option("--seed", gen.seed, "Random seed (same seed, same stream)")->capture_default_str();
  g->add_option("--format", gen.format, "json or msgpack")->capture_default_str()->check(CLI::IsMember({"json", "msgpack"}));
  g->add_option("--linger-ms", gen.linger_ms,
                "Producer linger: larger batches read faster from the development broker (one batch per "
                "partition per fetch); smaller ones wait less")
    ->capture_default_str()->check(CLI::Range(0, 1000));
  g->add_option("--use-case", gen.use_case, "fraud (card transactions), maintenance (sensor telemetry), "
                                            "personalization (shoppers' visits) or support (customers' messages)")
    ->capture_default_str()->check(CLI::IsMember({"fraud", "maintenance", "personalization", "support"}));
  g->add_option("--shift-after", gen.shift_after,
                 "From this record on, write a shifted stream (customers spend ~3x, mostly online): drift to detect")
    ->check(CLI::NonNegativeNumber);
  g->callback([&] { code = run_gen(gen); });

  inflow::xgboost::train_options train;
  std::string train_use_case = "fraud";
  auto* t = app.add_subcommand("train", "Train a use case's model (XGBoost) on generated data and report its quality");
  t->add_option("--use-case", train_use_case, "fraud, maintenance (hours until a machine fails) or personalization "
                                              "(takes an offer)")
    ->capture_default_str()->check(CLI::IsMember({"fraud", "maintenance", "personalization"}));
  t->add_option("--out", train.out_dir, "Directory for model.json and model.meta.json")->required();
  t->add_option("--rows", train.rows, "Generated rows (80% train, 20% held out)")->capture_default_str()->check(CLI::Range(1000, 100'000'000));
  t->add_option("--seed", train.seed, "Random seed")->capture_default_str();
  t->add_option("--threshold", train.threshold,
                 "Alert threshold to report precision and recall at (maintenance: hours left, 48 by default)")
    ->check(CLI::NonNegativeNumber);
  t->add_option("--rounds", train.rounds, "Boosting rounds")->capture_default_str()->check(CLI::Range(1, 5000));
  t->callback([&] {
    if (train_use_case == "maintenance" && t->count("--threshold") == 0)
      train.threshold = 48;
    code = run_train(train, train_use_case);
  });

  redrive_options redrive;
  auto* r = app.add_subcommand("redrive", "Write dead letters back to the topic they came from, once their cause "
                                          "is fixed (a provider outage, an expired credential); a second run "
                                          "continues where the last stopped");
  r->add_option("--bootstrap", redrive.bootstrap, "Kafka bootstrap servers")->required();
  r->add_option("--from", redrive.from, "The dead-letter topic")->required();
  r->add_option("--to", redrive.to, "Topic to write to; default: each letter's source topic")->capture_default_str();
  r->add_option("--class", redrive.error_class,
                "Only dead letters of this class (header __connect.errors.exception.class.name); `any` for all")
    ->capture_default_str();
  r->add_option("--reason", redrive.reason, "Only dead letters whose reason contains this text, e.g. unavailable");
  r->add_option("--failure", redrive.failures,
                "Only model failures of these kinds (header inflow.model.failure), e.g. failed,deadline: "
                "`rejected` inputs fail again as they are")
    ->delimiter(',')
    ->check(CLI::IsMember({"rejected", "failed", "unauthorized", "deadline", "unreachable"}));
  r->add_option("--group", redrive.group, "Consumer group that remembers how far redriving got")->capture_default_str();
  r->add_flag("--dry-run", redrive.dry_run, "Count what would be written; write and commit nothing");
  r->callback([&] { code = run_redrive(redrive); });

  node_options node;
  auto* n = app.add_subcommand("node", "Run a node");
  n->add_option("-c,--config", node.config_path, "YAML config file")->required();
  n->add_option("--set", node.overrides, "Override a config value: key=value (repeatable)");
  n->callback([&] { code = run_node(node); });

  node_options validate;
  bool reference = false;
  auto* v = app.add_subcommand("validate", "Check a config: prints every error and exits 78, or OK and exits 0");
  v->add_option("-c,--config", validate.config_path, "YAML config file");
  v->add_option("--set", validate.overrides, "Override a config value: key=value (repeatable)");
  v->add_flag("--reference", reference, "Print the reference of every option (markdown)");
  v->callback([&] {
    if (validate.config_path.empty() && !reference)
      throw CLI::RequiredError("--config");
    code = run_validate(validate, reference);
  });

  serve_cli_options serve;
  auto* s = app.add_subcommand("serve", "Serve embedded models over KServe v2 REST (the model side on its own machines). "
                                        "Prints its base URL as the first line of standard output.");
  s->add_option("--model", serve.models, "NAME=PATH of a model trained by `inflow train` (repeatable)");
  s->add_flag("--support-replies", serve.support_replies,
              "Serve support replies over OpenAI's chat completions API (POST /v1/chat/completions) instead of "
              "models: the FAQ retrieval model `inflow demo --use-case support` uses");
  s->add_option("--listen", serve.listen, "IP:port to listen on; port 0 picks a free port")->capture_default_str()
    ->check([](const std::string& v) {
      auto address = inflow::config::parse_host_port(v);
      return address && inflow::config::is_ip_address(address->host)
               ? std::string()
               : "expected an IP address and a port 0..65535, e.g. 127.0.0.1:8000 or [::1]:8000";
    });
  s->add_option("--token", serve.token,
                "Bearer token every request must carry (Authorization: Bearer ...); required unless --listen is "
                "loopback. Default: $INFLOW_SERVE_TOKEN")
    ->envname("INFLOW_SERVE_TOKEN");
  s->add_option("--max-request-bytes", serve.max_request_bytes, "Largest request body accepted")
    ->capture_default_str()->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  s->add_option("--request-timeout-ms", serve.request_timeout_ms,
                "A request must arrive whole within this long of the connection being ready for it (idle and "
                "slow clients are cut)")
    ->capture_default_str()->check(CLI::Range(100, 3'600'000));
  s->add_option("--max-batch", serve.max_batch, "Most rows in one model call")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  s->add_option("--max-linger-ms", serve.max_linger_ms, "Longest wait for a batch to fill")->capture_default_str()->check(CLI::Range(0, 1000));
  s->add_option("--threads", serve.threads, "Threads per model call")->capture_default_str()->check(CLI::Range(1, 256));
  s->callback([&] { code = run_serve(serve); });

  status_options status;
  auto* st = app.add_subcommand("status", "The cluster as one node's admin API sees it: nodes, roles, gateways, "
                                          "partitions and in-flight work");
  st->add_option("--admin", status.admin, "Admin API of any node (host:port)")->capture_default_str();
  st->add_flag("--json", status.json, "Print the status as JSON");
  st->callback([&] { code = run_status(status); });

  app.add_subcommand("gateways", "List the model gateway providers")->callback([&] { code = run_gateways(); });

  demo_options demo;
  auto* d = app.add_subcommand("demo", "The whole system on one machine: broker, model, node, generator");
  d->add_option("--duration", demo.duration_s, "Seconds to run; 0 runs until Ctrl-C")->capture_default_str();
  d->add_option("--use-case", demo.use_case, "fraud (card transactions -> fraud alerts), maintenance (sensor "
                                             "telemetry -> service alerts), personalization (visits -> offer scores by "
                                             "user) or support (messages -> drafted replies from a local server)")
    ->capture_default_str()->check(CLI::IsMember({"fraud", "maintenance", "personalization", "support"}));
  d->add_option("--rate", demo.rate, "Records per second (default: 20000 transactions, 5000 readings, 10000 visits, "
                                     "10 messages)")->check(CLI::PositiveNumber);
  d->add_option("--partitions", demo.partitions, "Partitions of the transactions topic")->capture_default_str()->check(CLI::Range(1, 256));
  d->add_option("--model-dir", demo.model_dir, "Where the model is (trained there if missing; default models/<use case>)");
  d->add_option("--admin", demo.admin, "Admin API and metrics address (port 0: any free port)")->capture_default_str();
  d->add_option("--fraud-rate", demo.fraud_rate, "Share of fraudulent transactions")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  d->add_flag("--remote", demo.remote, "Score through a KServe v2 model server (inflow serve) instead of in-process");
  d->callback([&] { code = run_demo(demo); });

  app.parse_complete_callback([&] { setup_logging(log_format, log_level); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? ok : usage;
  }
  return code;
}
