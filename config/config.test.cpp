#include "config/config.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace inflow::config;

namespace {

const char* minimal = R"(
kafka:
  bootstrap.servers: 127.0.0.1:9092
  group.id: g
models:
  fraud:
    task: classification
    provider: embedded-xgboost
    path: m.json
pipelines:
  fraud:
    source: { topic: transactions }
    model: fraud
    alert: { when: score >= 0.9, topic: alerts }
    dead_letter_topic: dlq
)";

bool has_error(const load_result& r, const std::string& path, int line, const std::string& fragment) {
  for (const auto& e : r.errors)
    if (e.path == path && (line < 0 || e.line == line) && e.message.find(fragment) != std::string::npos)
      return true;
  return false;
}

} // namespace

TEST_CASE("a minimal config gets the declared defaults") {
  auto r = load_text(minimal);
  REQUIRE(r.errors.empty());
  const auto& c = *r.config;
  CHECK(c.node.name == "node-1");
  CHECK(c.node.roles == std::vector<std::string>{"ingest", "gateway", "sink"});
  CHECK(c.node.admin.port == 9464);
  CHECK(c.models.at("fraud").batch.max_batch == 256);
  CHECK(c.models.at("fraud").batch.max_linger_ms == 5);
  const auto& p = c.pipelines.at("fraud");
  CHECK(p.max_in_flight == 5000);
  CHECK(p.source.format == wire_format::json);
  CHECK(p.alert.matches(0.95));
  CHECK_FALSE(p.alert.matches(0.5));
  CHECK(c.kafka.size() == 2);
}

TEST_CASE("environment variables are interpolated, with defaults") {
  setenv("INFLOW_TEST_GROUP", "from-env", 1);
  unsetenv("INFLOW_TEST_UNSET");
  std::string yaml = minimal;
  yaml.replace(yaml.find("group.id: g"), 11, "group.id: ${INFLOW_TEST_GROUP}");
  yaml += "node: { name: \"${INFLOW_TEST_UNSET:fallback}-x\" }\n";
  auto r = load_text(yaml);
  REQUIRE(r.errors.empty());
  CHECK(r.config->kafka[1].second == "from-env");
  CHECK(r.config->node.name == "fallback-x");
}

TEST_CASE("an unset variable without default is an error with path and line") {
  unsetenv("INFLOW_TEST_UNSET");
  std::string yaml = minimal;
  yaml.replace(yaml.find("path: m.json"), 12, "path: ${INFLOW_TEST_UNSET}");
  auto r = load_text(yaml);
  REQUIRE_FALSE(r.config);
  CHECK(has_error(r, "models.fraud.path", 9, "INFLOW_TEST_UNSET is not set"));
}

TEST_CASE("every error is reported, each with its path and line") {
  auto r = load_text(R"(
node:
  name: n
  colour: blue
kafka: { bootstrap.servers: x }
models:
  fraud:
    task: clustering
    provider: embedded-xgboost
    path: m.json
    batch: { max_batch: lots, max_linger_ms: -1 }
pipelines:
  fraud:
    source: { topic: t, format: xml }
    model: nope
    alert: { when: score is high, topic: a }
    dead_letter_topic: d
    max_in_flight: 0
extra: 1
)");
  REQUIRE_FALSE(r.config);
  CHECK(has_error(r, "node.colour", 4, "unknown key 'colour'"));
  CHECK(has_error(r, "kafka.group.id", 5, "required"));
  CHECK(has_error(r, "models.fraud.task", 8, "unknown task 'clustering'"));
  CHECK(has_error(r, "models.fraud.batch.max_batch", 11, "expected an integer, got 'lots'"));
  CHECK(has_error(r, "models.fraud.batch.max_linger_ms", 11, "between 0 and"));
  CHECK(has_error(r, "pipelines.fraud.source.format", 14, "unknown format 'xml'"));
  CHECK(has_error(r, "pipelines.fraud.model", 15, "no model named 'nope'"));
  CHECK(has_error(r, "pipelines.fraud.alert.when", 16, "score <op> <number>"));
  CHECK(has_error(r, "pipelines.fraud.max_in_flight", 18, "between 1 and"));
  CHECK(has_error(r, "extra", 19, "unknown key 'extra'"));
  CHECK(r.errors.size() == 10);
  CHECK(format_error("f.yaml", r.errors.front()) == "f.yaml:4: node.colour: unknown key 'colour' (expected one of: "
                                                    "name, roles, admin, listen, advertise, admin_token, admin_token_file, admin_tls_certificate, admin_tls_key, "
                                                    "admin_personal_data, drain_timeout_ms)");
}

TEST_CASE("a pipeline writes alerts, results or both, as its model allows") {
  std::string yaml = minimal;
  yaml.replace(yaml.find("    alert: { when: score >= 0.9, topic: alerts }\n"), 48, "    output: { topic: scores }\n");
  yaml.replace(yaml.find("    source: { topic: transactions }\n"), 35,
               "    source: { topic: t, id_field: tx, key_field: account }\n");
  auto r = load_text(yaml);
  REQUIRE(r.errors.empty());
  const auto& p = r.config->pipelines.at("fraud");
  CHECK(p.output_topic == "scores");
  CHECK(p.alert.topic.empty());

  auto none = load_text(minimal, {"pipelines.fraud.alert=~"});
  CHECK(has_error(none, "pipelines.fraud.alert", 0, "needs `alert:`"));

  auto embedding = load_text(minimal, {"models.fraud.task=embedding"});
  CHECK(has_error(embedding, "pipelines.fraud.alert", 14, "no score to alert on"));
}

TEST_CASE("a YAML syntax error names its line") {
  auto r = load_text("node:\n  name: [unclosed\n");
  REQUIRE_FALSE(r.config);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line >= 2);
}

TEST_CASE("overrides from --set replace values and kafka properties keep their dots") {
  auto r = load_text(minimal, {"kafka.bootstrap.servers=10.0.0.1:9092", "kafka.security.protocol=SASL_SSL",
                               "models.fraud.batch.max_batch=64", "node.roles=[ingest, sink]"});
  REQUIRE(r.errors.empty());
  const auto& kafka = r.config->kafka;
  CHECK(std::count(kafka.begin(), kafka.end(), std::pair<std::string, std::string>{"bootstrap.servers", "10.0.0.1:9092"}) == 1);
  CHECK(std::count(kafka.begin(), kafka.end(), std::pair<std::string, std::string>{"security.protocol", "SASL_SSL"}) == 1);
  CHECK(r.config->models.at("fraud").batch.max_batch == 64);
  CHECK(r.config->node.roles == std::vector<std::string>{"ingest", "sink"});

  auto bad = load_text(minimal, {"models.fraud.batch.max_batch=many", "no-equals-sign"});
  CHECK(has_error(bad, "models.fraud.batch.max_batch", 0, "expected an integer"));
  CHECK(has_error(bad, "no-equals-sign", 0, "key=value"));
}

TEST_CASE("delivery: at_least_once by default, ordered or exactly_once by choice") {
  CHECK(load_text(minimal).config->pipelines.at("fraud").delivery == delivery::at_least_once);
  auto ordered = load_text(minimal, {"pipelines.fraud.delivery=ordered"});
  REQUIRE(ordered.errors.empty());
  CHECK(ordered.config->pipelines.at("fraud").in_offset_order());
  auto exact = load_text(minimal, {"pipelines.fraud.delivery=exactly_once"});
  REQUIRE(exact.errors.empty());
  CHECK(exact.config->pipelines.at("fraud").delivery == delivery::exactly_once);
  auto bad = load_text(minimal, {"pipelines.fraud.delivery=twice"});
  CHECK(has_error(bad, "pipelines.fraud.delivery", -1, "unknown delivery 'twice'"));
}

TEST_CASE("the example configs are valid") {
  setenv("OPENAI_API_KEY", "sk-example", 1);
  setenv("GOOGLE_API_KEY", "example", 1);
  for (std::string file : {INFLOW_SOURCE_DIR "/config/examples/fraud.yaml", INFLOW_SOURCE_DIR "/config/examples/embeddings.yaml",
                           INFLOW_SOURCE_DIR "/config/examples/support.yaml",
                           INFLOW_SOURCE_DIR "/config/examples/cluster-ingest.yaml",
                           INFLOW_SOURCE_DIR "/config/examples/cluster-gateway.yaml"}) {
    INFO(file);
    auto r = load_file(file);
    for (const auto& e : r.errors)
      UNSCOPED_INFO(format_error(file, e));
    CHECK(r.config);
  }
}

TEST_CASE("cluster settings: seeds, mutual TLS off loopback, roles that fit together") {
  auto r = load_text(minimal, {"node.listen=127.0.0.1:4500", "cluster.seeds=[127.0.0.1:4500, 127.0.0.2:4500]"});
  REQUIRE(r.errors.empty());
  CHECK(r.config->node.listen->port == 4500);
  CHECK(r.config->cluster.seeds.at(1).host == "127.0.0.2");
  CHECK(r.config->cluster.max_message_bytes == 8 << 20);
  CHECK_FALSE(r.config->cluster.tls.enabled());

  auto open = load_text(minimal, {"node.listen=10.0.0.1:4500"});
  CHECK(has_error(open, "cluster.tls", -1, "must use mutual TLS"));
  auto partial = load_text(minimal, {"node.listen=10.0.0.1:4500", "cluster.tls.certificate=node.pem"});
  CHECK(has_error(partial, "cluster.tls", -1, "needs all of certificate, key and ca_file"));
  auto tls = load_text(minimal, {"node.listen=10.0.0.1:4500", "cluster.tls={certificate: a, key: b, ca_file: c}"});
  CHECK(tls.errors.empty());
  auto every = load_text(minimal, {"node.listen=0.0.0.0:4500", "cluster.tls={certificate: a, key: b, ca_file: c}"});
  CHECK(has_error(every, "node.listen", -1, "set node.advertise"));
  auto seeds_alone = load_text(minimal, {"cluster.seeds=[127.0.0.1:4500]"});
  CHECK(has_error(seeds_alone, "node.listen", -1, "needs node.listen"));
  auto bad_seed = load_text(minimal, {"node.listen=127.0.0.1:1", "cluster.seeds=[nowhere]"});
  CHECK(has_error(bad_seed, "cluster.seeds[0]", -1, "expected host:port"));
  auto no_sink = load_text(minimal, {"node.roles=[ingest, gateway]"});
  CHECK(has_error(no_sink, "node.roles", -1, "needs the sink role"));
}

TEST_CASE("malformed documents are errors, never crashes") {
  SECTION("a key that is not a string") {
    auto r = load_text(std::string(minimal) + "? [a, b]\n: 1\n");
    CHECK(has_error(r, "(document)", 16, "a key must be a plain string"));
    CHECK_FALSE(r.config);
  }
  SECTION("a duplicate key, at any depth") {
    auto r = load_text(std::string(minimal) + "    dead_letter_topic: other\n");
    CHECK(has_error(r, "pipelines.fraud.dead_letter_topic", 16, "duplicate key 'dead_letter_topic'"));
  }
  SECTION("aliases that would expand exponentially") {
    std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 12; ++i)
      yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) + ", *a" +
              std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + "]\n";
    auto r = load_text(yaml);
    CHECK_FALSE(r.config);
    CHECK_FALSE(r.errors.empty());
  }
}

TEST_CASE("every kafka property is checked by librdkafka itself") {
  std::string yaml = minimal;
  yaml.replace(yaml.find("  group.id: g"), 12, "  group.id: g\n  session.timeout.ms: banana\n  no.such.thing: 1");
  auto r = load_text(yaml);
  CHECK(has_error(r, "kafka.session.timeout.ms", 5, "Invalid value"));
  CHECK(has_error(r, "kafka.no.such.thing", 6, "No such configuration property"));
}

TEST_CASE("topics must be names Kafka takes, rules finite numbers, listening addresses IP addresses") {
  auto with = [](const std::string& from, const std::string& to) {
    std::string yaml = minimal;
    yaml.replace(yaml.find(from), from.size(), to);
    return load_text(yaml);
  };
  CHECK(has_error(with("topic: alerts", "topic: ''"), "pipelines.fraud.alert.topic", -1, "not a Kafka topic name"));
  CHECK(has_error(with("topic: transactions", "topic: \"\""), "pipelines.fraud.source.topic", -1, "not a Kafka"));
  CHECK(has_error(with("dead_letter_topic: dlq", "dead_letter_topic: 'a b'"), "pipelines.fraud.dead_letter_topic",
                  -1, "not a Kafka topic name"));
  CHECK(has_error(with("score >= 0.9", "score >= nan"), "pipelines.fraud.alert.when", -1, "finite number"));
  CHECK(has_error(with("score >= 0.9", "score >= inf"), "pipelines.fraud.alert.when", -1, "finite number"));
  auto admin = [&](const std::string& address) { return with("kafka:", "node: { admin: '" + address + "' }\nkafka:"); };
  CHECK(has_error(admin("localhost:9464"), "node.admin", -1, "expected an IP address"));
  CHECK(has_error(admin("300.1.1.1:9464"), "node.admin", -1, "expected an IP address"));
  CHECK(has_error(admin("127.0.0.1:99999"), "node.admin", -1, "expected an IP address"));
  CHECK(admin("[::1]:9464").errors.empty());
  CHECK(has_error(admin("0.0.0.0:9464"), "node.admin", -1, "set node.admin_token"));
  CHECK(with("kafka:", "node: { admin: '0.0.0.0:9464', admin_token: t0ken }\nkafka:").errors.empty());
}

TEST_CASE("the admin token comes from the config or a file, and personal data is masked unless asked") {
  auto with_node = [](const std::string& node) {
    std::string yaml = minimal;
    return load_text("node: " + node + "\n" + yaml);
  };
  const std::string file = "/tmp/inflow-admin-token-test";
  std::ofstream(file) << "from-file\n";
  auto r = with_node("{ admin: '10.1.2.3:9464', admin_token_file: " + file + " }");
  REQUIRE(r.errors.empty());
  CHECK(r.config->node.admin_token == "from-file");
  CHECK_FALSE(r.config->node.admin_personal_data);
  unlink(file.c_str());
  CHECK(has_error(with_node("{ admin_token_file: /nonexistent/token }"), "node.admin_token_file", -1, "cannot read"));
  CHECK(with_node("{ admin_personal_data: show }").config->node.admin_personal_data);
  CHECK(has_error(with_node("{ admin_personal_data: maybe }"), "node.admin_personal_data", -1, "mask or show"));
}

TEST_CASE("each option's bounds and default come from its one declaration") {
  const auto declared = options();
  auto find = [&](const std::string& section, const std::string& key) {
    for (const auto& o : declared)
      if (o.section == section && o.key == key)
        return o;
    FAIL("not declared: " << section << "." << key);
    return option{};
  };
  CHECK(find("pipelines.*", "max_in_flight").default_value == "5000");
  CHECK(find("pipelines.*", "max_in_flight").range == "1..10000000 records");
  CHECK(find("models.*.batch", "max_linger_ms").range == "0..60000 ms");
  CHECK(find("models.*", "on_failure").type == "one of dead_letter, block or fallback");
  // The struct a config fills starts from the same defaults.
  auto defaults = model_defaults();
  CHECK(defaults.batch.max_batch == 256);
  CHECK(defaults.limits.max_in_flight == 16);
  CHECK(defaults.retry.max_backoff_ms == 5000);
  // A model's keys that the core does not declare are left for its provider.
  auto r = load_text(minimal, {"models.fraud.deployment=x"});
  REQUIRE(r.config);
  const auto& rest = r.config->models.at("fraud").provider_options;
  CHECK(rest.has("path"));
  CHECK(rest.has("deployment"));
  CHECK_FALSE(rest.has("task"));
}

TEST_CASE("the README's numbers are the declared defaults") {
  std::ifstream in(INFLOW_SOURCE_DIR "/README.md");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  const auto readme = text.str();
  auto default_of = [](const std::string& section, const std::string& key) {
    for (const auto& o : options())
      if (o.section == section && o.key == key)
        return *o.default_value;
    return std::string();
  };
  CHECK(readme.find("(`commit_interval_ms`, " + default_of("pipelines.*", "commit_interval_ms") + " ms by default") !=
        std::string::npos);
  CHECK(readme.find("`stall_timeout_ms` (" + std::to_string(std::stoi(default_of("pipelines.*", "stall_timeout_ms")) / 1000) +
                    " s)") != std::string::npos);
}

TEST_CASE("loopback means the loopback networks, not a name that starts like one") {
  CHECK(is_loopback("127.0.0.1"));
  CHECK(is_loopback("127.3.4.5"));
  CHECK(is_loopback("::1"));
  CHECK(is_loopback("localhost"));
  CHECK_FALSE(is_loopback("127.evil.example"));
  CHECK_FALSE(is_loopback("1270.0.0.1"));
  CHECK_FALSE(is_loopback("10.0.0.1"));
}

TEST_CASE("only a regular file of a config's size is read") {
  CHECK(load_file("/dev/zero").errors.at(0).message.find("not a regular file") != std::string::npos);
  CHECK(load_file("/nonexistent/inflow.yaml").errors.at(0).message.find("No such file") != std::string::npos);
  const std::string fifo = "/tmp/inflow-config-test.fifo";
  unlink(fifo.c_str());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(load_file(fifo).errors.at(0).message.find("not a regular file") != std::string::npos); // does not block
  unlink(fifo.c_str());
  const std::string big = "/tmp/inflow-config-test-big.yaml";
  std::ofstream(big) << std::string(2 << 20, '#');
  CHECK(load_file(big).errors.at(0).message.find("more than a config may have") != std::string::npos);
  unlink(big.c_str());
}

TEST_CASE("inputs the fuzzer found are errors, not crashes") {
  // A pipeline whose `source:` key is garbled: reading its missing topic looked up a line under an invalid node.
  std::ifstream in(std::string(INFLOW_SOURCE_DIR) + "/fuzz/corpus/config_loader/regression-missing-source");
  std::stringstream text;
  text << in.rdbuf();
  REQUIRE(!text.str().empty());
  auto r = load_text(text.str());
  CHECK_FALSE(r.config);
  CHECK_FALSE(r.errors.empty());
}

namespace {

const char* versioned = R"(
kafka:
  bootstrap.servers: 127.0.0.1:9092
  group.id: g
models:
  fraud:
    task: classification
    provider: embedded-xgboost
    path: v1.json
    batch: { max_batch: 64 }
    versions:
      v1: {}
      v2: { path: v2.json }
      v3: { provider: kserve, path: ~, endpoint: "http://127.0.0.1:1/v2/models/m/infer" }
    traffic: { v1: 90, v2: 10 }
    shadow: v3
pipelines:
  fraud:
    source: { topic: transactions }
    model: fraud
    alert: { when: score >= 0.9, topic: alerts }
    dead_letter_topic: dlq
    shadow_topic: fraud.shadow
)";

} // namespace

TEST_CASE("a model's versions are models of their own, taking the model's keys") {
  auto r = load_text(versioned);
  REQUIRE(r.errors.empty());
  const auto& c = *r.config;
  CHECK(c.models.count("fraud") == 0);
  REQUIRE(c.models.count("fraud@v1"));
  CHECK(c.models.at("fraud@v1").version == "v1");
  CHECK(c.models.at("fraud@v1").batch.max_batch == 64);
  CHECK(c.models.at("fraud@v2").provider_options.find("path")->text == "v2.json");
  CHECK(c.models.at("fraud@v3").provider == "kserve");
  CHECK_FALSE(c.models.at("fraud@v3").provider_options.has("path"));
  const auto& p = c.pipelines.at("fraud");
  REQUIRE(p.routes.size() == 2);
  CHECK(p.routes[0].model == "fraud@v1");
  CHECK(p.routes[0].version == "v1");
  CHECK(p.routes[0].weight == 90);
  CHECK(p.routes[1].weight == 10);
  CHECK(p.shadow_model == "fraud@v3");
  CHECK(p.shadow_topic == "fraud.shadow");
}

TEST_CASE("a model without versions is its own single route") {
  auto r = load_text(minimal);
  REQUIRE(r.errors.empty());
  const auto& p = r.config->pipelines.at("fraud");
  REQUIRE(p.routes.size() == 1);
  CHECK(p.routes[0].model == "fraud");
  CHECK(p.routes[0].version.empty());
  CHECK(p.shadow_model.empty());
}

TEST_CASE("versions, traffic and shadow are checked") {
  auto with = [](std::vector<std::string> sets) { return load_text(versioned, sets); };
  CHECK(has_error(with({"models.fraud.traffic.v9=5"}), "models.fraud.traffic.v9", 0, "no version 'v9'"));
  CHECK(has_error(with({"models.fraud.traffic.v3=5"}), "models.fraud.traffic.v3", 0, "takes no share"));
  CHECK(has_error(with({"models.fraud.traffic.v1=-1"}), "models.fraud.traffic.v1", 0, "a number, 0 or more"));
  CHECK(has_error(with({"models.fraud.traffic={v1: 0}"}), "models.fraud.traffic", 0, "above 0"));
  CHECK(has_error(with({"models.fraud.traffic=~"}), "models.fraud.traffic", 0, "say how records are split"));
  CHECK(has_error(with({"models.fraud.shadow=v7"}), "models.fraud.shadow", 0, "no version 'v7'"));
  CHECK(has_error(with({"models.fraud.versions.v2.task=regression"}), "models.fraud.versions.v2", -1,
                  "same task"));
  CHECK(has_error(with({"models.fraud.versions.v3.on_failure=block"}), "models.fraud.shadow", -1, "block"));
  CHECK(has_error(with({"models.fraud.shadow=~"}), "pipelines.fraud.shadow_topic", -1, "no `shadow:` version"));
  CHECK(has_error(load_text(minimal, {"models.fraud.traffic={a: 1}"}), "models.fraud.traffic", 0, "needs `versions:`"));
  // One version besides the shadow needs no traffic.
  auto single = with({"models.fraud.traffic=~", "models.fraud.versions.v2=~"});
  REQUIRE(single.errors.empty());
  CHECK(single.config->pipelines.at("fraud").routes.size() == 1);
}
