#include "config/config.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <functional>
#include <set>
#include <sstream>

namespace inflow::config {

using errors_t = std::vector<config_error>;

void note_overrides(std::vector<config_error>& errors, const std::vector<std::string>& overrides) {
  for (auto& e : errors) {
    bool given = std::any_of(overrides.begin(), overrides.end(), [&](const std::string& o) {
      auto key = o.substr(0, o.find('='));
      return e.path == key || e.path.rfind(key + ".", 0) == 0 || e.path.rfind(key + "[", 0) == 0;
    });
    if (given) {
      e.line = 0;
      e.message += " (from --set)";
    }
  }
}

std::string format_error(const std::string& source, const config_error& e) {
  if (e.line > 0)
    return fmt::format("{}:{}: {}: {}", source, e.line, e.path, e.message);
  return fmt::format("{}: {}: {}", source, e.path, e.message);
}

bool node_config::has(const std::string& role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

bool alert_rule::matches(double score) const {
  switch (op) {
    case comparison::greater_equal: return score >= threshold;
    case comparison::greater: return score > threshold;
    case comparison::less_equal: return score <= threshold;
    case comparison::less: return score < threshold;
  }
  return false;
}

std::optional<host_port> parse_host_port(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return std::nullopt;
  int port = -1;
  auto [end, ec] = std::from_chars(s.data() + colon + 1, s.data() + s.size(), port);
  if (ec != std::errc{} || end != s.data() + s.size() || port < 0 || port > 65535)
    return std::nullopt;
  auto host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') // [::1]:9464
    host = host.substr(1, host.size() - 2);
  return host_port{host, static_cast<uint16_t>(port)};
}

bool is_ip_address(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

const char* to_string(delivery d) {
  switch (d) {
    case delivery::at_least_once: return "at_least_once";
    case delivery::ordered: return "ordered";
    case delivery::exactly_once: return "exactly_once";
  }
  return "?";
}

bool is_loopback(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127; // 127.0.0.0/8
  in6_addr v6{};
  return host == "localhost" || (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
}

namespace {

std::optional<alert_rule> parse_alert_rule(const std::string& text) {
  std::istringstream in(text);
  std::string subject, op, number;
  in >> subject >> op >> number;
  std::string rest;
  if (subject != "score" || number.empty() || (in >> rest))
    return std::nullopt;
  alert_rule rule;
  if (op == ">=")
    rule.op = alert_rule::comparison::greater_equal;
  else if (op == ">")
    rule.op = alert_rule::comparison::greater;
  else if (op == "<=")
    rule.op = alert_rule::comparison::less_equal;
  else if (op == "<")
    rule.op = alert_rule::comparison::less;
  else
    return std::nullopt;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), rule.threshold);
  if (ec != std::errc{} || end != number.data() + number.size() || !std::isfinite(rule.threshold))
    return std::nullopt;
  return rule;
}




/// `choice` values of an enum-like option, in the order the reference lists them.
template <class V>
using named = std::vector<std::pair<std::string, V>>;

std::string host_port_error(const std::string& text, const char* example) {
  return fmt::format("expected an IP address and port to listen on (e.g. {}), got '{}'", example, text);
}

const option_block<node_config>& node_block() {
  static const auto block =
    option_block<node_config>("node")
      .text("name", &node_config::name, "node-1", "Name of this node in logs and metrics.")
      .list("roles", &node_config::roles, "[ingest, gateway, sink]", "What this node runs: any of ingest, gateway, sink.")
      .custom("admin", "host:port", "127.0.0.1:9464",
              "Admin HTTP (/livez, /readyz, /metrics, /api/status). Port 0 picks a free port.",
              [](const std::string& s, node_config& out) {
                auto hp = parse_host_port(s);
                if (!hp || !is_ip_address(hp->host))
                  return host_port_error(s, "127.0.0.1:9464");
                out.admin = *hp;
                return std::string();
              })
      .custom("listen", "host:port", "",
              "Cluster endpoint other nodes connect to; empty: this node works alone. Anything but loopback needs "
              "cluster.tls.",
              [](const std::string& s, node_config& out) {
                if (s.empty())
                  return std::string();
                auto hp = parse_host_port(s);
                if (!hp || !(hp->host.empty() || is_ip_address(hp->host)))
                  return host_port_error(s, "127.0.0.1:7000");
                out.listen = *hp;
                return std::string();
              })
      .custom("advertise", "host:port", "",
              "Address other nodes are told to reach this one at; empty: node.listen (which must then not be 0.0.0.0).",
              [](const std::string& s, node_config& out) {
                if (s.empty())
                  return std::string();
                out.advertise = parse_host_port(s);
                return out.advertise ? std::string() : fmt::format("expected host:port, got '{}'", s);
              })
      .secret("admin_token", &node_config::admin_token,
              "Bearer token the admin API requires for everything but /livez (`Authorization: Bearer ...`); required "
              "when node.admin is not loopback. Write it as ${SOME_ENV_VAR}.")
      .custom("admin_token_file", "string", "", "A file holding node.admin_token (a mounted secret).",
              [](const std::string& file, node_config& out) {
                if (file.empty() || !out.admin_token.empty())
                  return std::string();
                std::ifstream in(file);
                std::getline(in, out.admin_token);
                return !in && out.admin_token.empty() ? fmt::format("cannot read {}", file) : std::string();
              })
      .custom("admin_tls_certificate", "string", "",
              "PEM certificate (chain) for the admin API: with admin_tls_key, it serves HTTPS instead of HTTP.",
              [](const std::string& file, node_config& out) {
                out.admin_tls_certificate = file;
                return file.empty() || std::ifstream(file) ? std::string() : fmt::format("cannot read {}", file);
              })
      .custom("admin_tls_key", "string", "", "PEM private key of admin_tls_certificate.",
              [](const std::string& file, node_config& out) {
                out.admin_tls_key = file;
                return file.empty() || std::ifstream(file) ? std::string() : fmt::format("cannot read {}", file);
              })
      .choice("admin_personal_data", &node_config::admin_personal_data, named<bool>{{"mask", false}, {"show", true}},
              "mask", "Record ids and keys of the recent alerts in /api/status and the dashboard: masked or shown.")
      .integer("drain_timeout_ms", &node_config::drain_timeout_ms, 10'000, 0, 3'600'000, "ms",
               "On shutdown or revoke, how long in-flight records may take to finish before they are abandoned "
               "(and replayed by the next owner).");
  return block;
}

const option_block<tls_config>& tls_block() {
  static const auto block =
    option_block<tls_config>("cluster.tls")
      .text("certificate", &tls_config::certificate, "", "PEM certificate of this node, signed by the cluster's CA.")
      .text("key", &tls_config::key, "", "PEM private key of that certificate.")
      .text("ca_file", &tls_config::ca_file, "", "PEM CA that every peer's certificate must be signed by.");
  return block;
}

const option_block<cluster_config>& cluster_block() {
  static const auto block =
    option_block<cluster_config>("cluster")
      .list("seeds", "[]", "host:port of nodes to join through; every node learns the others from them.",
            [](const std::string& seed, cluster_config& out) {
              auto hp = parse_host_port(seed);
              if (!hp)
                return fmt::format("expected host:port, got '{}'", seed);
              out.seeds.push_back(*hp);
              return std::string();
            })
      .integer("heartbeat_ms", &cluster_config::heartbeat_ms, 200, 10, 60'000, "ms", "Heartbeat interval between nodes.")
      .integer("connection_timeout_ms", &cluster_config::connection_timeout_ms, 2000, 100, 600'000, "ms",
               "A peer silent this long is declared gone: its pending model calls are sent elsewhere at once. "
               "A new connection must complete its handshake within it.")
      .integer("request_timeout_ms", &cluster_config::request_timeout_ms, 30'000, 100, 3'600'000, "ms",
               "A model call on another node not answered by then is logged as late and waited for (never sent twice "
               "while its node may answer); calls wait this long for a node hosting their model to join.")
      .integer("max_message_bytes", &cluster_config::max_message_bytes, 8 << 20, 64 * 1024, 1 << 30, "bytes",
               "Largest message between nodes; larger gateway batches are split, a connection announcing a larger "
               "one is closed before anything is allocated for it.")
      .nested("tls", &cluster_config::tls, tls_block());
  return block;
}

const option_block<cache_config>& cache_block() {
  static const auto block =
    option_block<cache_config>("models.*.cache")
      .topic("topic", &cache_config::topic, "",
             "Keep the model's answers in this compacted topic (and in memory): inputs answered before, after a crash, "
             "a rebalance or in a reprocessing run, are not sent to the provider again. Empty: no cache.")
      .integer("max_entries", &cache_config::max_entries, 100'000, 1, 100'000'000, "answers",
               "Most answers kept in memory (least recently used go).");
  return block;
}

const option_block<batch_config>& batch_block() {
  static const auto block =
    option_block<batch_config>("models.*.batch")
      .integer("max_batch", &batch_config::max_batch, 256, 1, 1'000'000, "rows", "Most rows in one model call.")
      .integer("max_linger_ms", &batch_config::max_linger_ms, 5, 0, 60'000, "ms",
               "Longest a row waits for its batch to fill.");
  return block;
}

const option_block<limits_config>& limits_block() {
  static const auto block =
    option_block<limits_config>("models.*.limits")
      .integer("requests_per_second", &limits_config::requests_per_second, 0, 0, 10'000'000, "calls/s",
               "Most calls per second to the provider; 0: no limit.")
      .integer("tokens_per_minute", &limits_config::tokens_per_minute, 0, 0, 1'000'000'000, "tokens/min",
               "Most tokens per minute (estimated before a call, corrected from the reported usage); 0: no limit.")
      .integer("max_in_flight", &limits_config::max_in_flight, 16, 1, 4096, "calls",
               "Most remote calls at once (and connections kept open).");
  return block;
}

const option_block<retry_config>& retry_block() {
  static const auto block =
    option_block<retry_config>("models.*.retry")
      .integer("max_attempts", &retry_config::max_attempts, 5, 1, 100, "calls",
               "Calls per batch, first one included, on retriable errors.")
      .integer("initial_backoff_ms", &retry_config::initial_backoff_ms, 50, 1, 3'600'000, "ms",
               "First retry waits up to this long (full jitter).")
      .integer("max_backoff_ms", &retry_config::max_backoff_ms, 5000, 1, 3'600'000, "ms",
               "Cap of the exponential backoff.");
  return block;
}

const option_block<breaker_config>& breaker_block() {
  static const auto block =
    option_block<breaker_config>("models.*.breaker")
      .integer("failure_threshold", &breaker_config::failure_threshold, 5, 1, 1'000'000, "calls",
               "Consecutive failed calls that open the circuit.")
      .integer("open_ms", &breaker_config::open_ms, 1000, 1, 3'600'000, "ms",
               "How long an open circuit refuses calls before one probe.");
  return block;
}

const option_block<model_config>& model_block() {
  static const auto block =
    option_block<model_config>("models.*")
      .choice("task", &model_config::task,
              named<std::string>{{"classification", "classification"}, {"regression", "regression"},
                                 {"embedding", "embedding"}, {"text_generation", "text_generation"}},
              std::nullopt, "What the model does.")
      .text("provider", &model_config::provider, std::nullopt,
            "Gateway provider; `inflow gateways` lists them. Its own keys are listed below, under its name.")
      .text("endpoint", &model_config::endpoint, "",
            "Model URL (remote providers), e.g. http://127.0.0.1:8000/v2/models/fraud/infer.")
      .integer("timeout_ms", &model_config::timeout_ms, 2000, 1, 3'600'000, "ms",
               "Deadline of one remote call, connect to last byte.")
      .integer("max_response_bytes", &model_config::max_response_bytes, 16 << 20, 1024, int64_t(1) << 32, "bytes",
               "Larger responses fail the call (not retried).")
      .text("ca_file", &model_config::ca_file, "", "HTTPS: trust the CAs in this PEM file instead of the system's.")
      .text("version", &model_config::version, "",
            "Version reported in alerts; empty: the model file's (embedded), else the provider's name for the model "
            "(`model:`, `deployment:`), else the endpoint's host and path.")
      .list("input", &model_config::input, "[]",
            "Feature expressions (`field`, `field == value`, `a / b`); empty takes them from the model's metadata.")
      .number("price_per_million_input_tokens", &model_config::price_per_million_input_tokens, 0, 0, 1e6, "USD",
              "For the cost metric: USD per million input tokens.")
      .number("price_per_million_output_tokens", &model_config::price_per_million_output_tokens, 0, 0, 1e6, "USD",
              "For the cost metric: USD per million output tokens.")
      .text("fallback", &model_config::fallback, "",
            "Another model (same task and input) that scores what this one cannot: retries exhausted, circuit open.")
      .choice("on_failure", &model_config::on_failure,
              named<failure_policy>{{"dead_letter", failure_policy::dead_letter}, {"block", failure_policy::block},
                                    {"fallback", failure_policy::fallback}},
              "dead_letter",
              "Records a remote model cannot score: dead_letter once retries run out, block (hold them, pausing "
              "the partitions, until the provider answers again) or fallback (the `fallback` model; the default when "
              "one is set).")
      .integer("deadline_ms", &model_config::deadline_ms, 0, 0, 7 * 86'400'000LL, "ms",
               "Longest a record may wait for its model's answer (queues, cooldowns, retries); then it is "
               "dead-lettered. 0: no limit.")
      .integer("max_cooldown_ms", &model_config::max_cooldown_ms, 60'000, 0, 86'400'000, "ms",
               "Retry-After and rate-limit resets longer than this are cut to it.")
      .choice("cooldown_scope", &model_config::cooldown_per_origin, named<bool>{{"model", false}, {"origin", true}},
              "model",
              "model: a provider's Retry-After pauses this model only; origin: every model on the same "
              "scheme://host:port.")
      .section("versions",
               {{"models.*", "versions", "map", "",
                 "Named versions of the model, e.g. `{v1: {path: a.json}, v2: {provider: kserve, endpoint: ...}}`: "
                 "each takes the model's other keys and overrides what it sets. Every version has the same task and "
                 "input. Alerts and results name the version that answered."}},
               true, [](const raw_section&, model_config&, errors_t&) {})
      .section("traffic",
               {{"models.*", "traffic", "map", "",
                 "Share of the records per version, e.g. `{v1: 90, v2: 10}`, split by the record's key so a key "
                 "stays on one version. Needed with two or more versions besides the shadow."}},
               true, [](const raw_section&, model_config&, errors_t&) {})
      .custom("shadow", "string", "",
              "A version that scores a copy of every record: its answers never alert or count as the outcome; "
              "they are compared with the live version's (metrics, `inflow status`) and written to the pipeline's "
              "`shadow_topic`. Classification and regression only.",
              [](const std::string&, model_config&) { return std::string(); })
      .choice("on_missing", &model_config::missing_as_nan, named<bool>{{"dead_letter", false}, {"nan", true}},
              "dead_letter",
              "A record without a feature's field (absent or null): dead_letter, or nan (the feature is NaN, which "
              "XGBoost handles as missing; remote providers' JSON carries it as null). Identity fields are always "
              "required.")
      .text("drift_profile", &model_config::drift_profile, "",
            "The training profile drift is measured against (a pipeline's `drift:`); empty: the one `inflow train` "
            "wrote beside the model file (`model.profile.json` for `model.json`).")
      .nested("cache", &model_config::cache, cache_block())
      .nested("batch", &model_config::batch, batch_block())
      .nested("limits", &model_config::limits, limits_block())
      .nested("retry", &model_config::retry, retry_block())
      .nested("breaker", &model_config::breaker, breaker_block());
  return block;
}

const option_block<decoder_limits>& decoder_limits_block() {
  static const auto block =
    option_block<decoder_limits>("pipelines.*.source")
      .integer("max_record_bytes", &decoder_limits::max_record_bytes, decoder_limits{}.max_record_bytes, 16, 64 << 20,
               "bytes",
               "Larger records go to the dead-letter topic.")
      .integer("max_depth", &decoder_limits::max_depth, decoder_limits{}.max_depth, 1, 1024, "levels",
               "Deeper nesting goes to the dead-letter topic.");
  return block;
}

const option_block<source_config>& source_block() {
  static const auto block =
    option_block<source_config>("pipelines.*.source")
      .topic("topic", &source_config::topic, std::nullopt, "Input topic.")
      .choice("format", &source_config::format,
              named<wire_format>{{"json", wire_format::json}, {"msgpack", wire_format::msgpack},
                                 {"avro", wire_format::avro}},
              "json",
              "Record value format. avro: Confluent's wire format (schema id, then Avro binary), read as the "
              "`subject`'s latest schema from the pipeline's `schema_registry`.")
      .text("subject", &source_config::subject, "",
            "format avro: the subject whose latest schema the pipeline reads records as (writers' schemas are "
            "resolved against it); empty: `<topic>-value`.")
      .include(&source_config::limits, decoder_limits_block())
      .text("id_field", &source_config::id_field, "id", "Field that identifies a record; copied to alerts and results.")
      .text("key_field", &source_config::key_field, "card_id", "Field used as the key of alerts and results.");
  return block;
}

const option_block<alert_rule>& alert_block() {
  static const auto block =
    option_block<alert_rule>("pipelines.*.alert")
      .custom("when", "string", std::nullopt, "Alert rule on the model's score, e.g. `score >= 0.9`.",
              [](const std::string& s, alert_rule& out) {
                auto rule = parse_alert_rule(s);
                if (!rule)
                  return fmt::format("expected `score <op> <number>` with op one of >=, >, <=, < and a finite "
                                     "number; got '{}'",
                                     s);
                out.op = rule->op;
                out.threshold = rule->threshold;
                return std::string();
              })
      .topic("topic", &alert_rule::topic, std::nullopt, "Topic the alerts are written to (JSON, key = the key field).")
      .text("id_as", &alert_rule::id_as, "id", "The name of the record's id (source.id_field) in an alert, e.g. tx_id.")
      .text("key_as", &alert_rule::key_as, "key", "The name of the record's key (source.key_field) in an alert, e.g. card_id.");
  return block;
}

/// `output:` of a pipeline.
struct output_config {
  std::string topic;
};

const option_block<output_config>& output_block() {
  static const auto block = option_block<output_config>("pipelines.*.output")
                              .topic("topic", &output_config::topic, std::nullopt,
                                     "Topic every result is written to (JSON: score, embedding or text), key = the "
                                     "key field.");
  return block;
}

const option_block<drift_config>& drift_block() {
  static const auto block =
    option_block<drift_config>("pipelines.*.drift")
      .topic("topic", &drift_config::topic, "",
             "Drift events (JSON: detected, over) go here; empty: the metrics and the log only.")
      .integer("window", &drift_config::window, 10'000, 100, 100'000'000, "records",
               "Live records compared with the profile at a time: a sliding window, compared each tenth of it.")
      .number("psi_threshold", &drift_config::psi_threshold, 0.2, 0, 100, "",
              "A feature drifts when its population stability index exceeds this (0.1 slight, 0.2 significant).")
      .number("ks_threshold", &drift_config::ks_threshold, 0.1, 0, 1, "",
              "The score drifts when its Kolmogorov-Smirnov distance from the profile's exceeds this.");
  return block;
}

const option_block<pipeline_config>& pipeline_block() {
  static const auto block =
    option_block<pipeline_config>("pipelines.*")
      .text("model", &pipeline_config::model, std::nullopt, "Name of the model under `models:` that scores the records.")
      .topic("dead_letter_topic", &pipeline_config::dead_letter_topic, std::nullopt,
             "Where records that cannot be scored go, unchanged (cut to fit the topic's size limit), with "
             "`__connect.errors.*` headers.")
      .text("schema_registry", &pipeline_config::schema_registry, "",
            "For Avro (`source.format: avro`, `output_format: avro`): the schema registry's Confluent-compatible "
            "API, e.g. http://registry:8081 (Apicurio: http://host:8080/apis/ccompat/v7).")
      .choice("output_format", &pipeline_config::output_format,
              named<wire_format>{{"json", wire_format::json}, {"avro", wire_format::avro}}, "json",
              "Alerts and results: JSON, or Avro in Confluent's wire format, their schemas registered at start "
              "under `<topic>-value` in `schema_registry` (docs/EVENTS.md).")
      .topic("shadow_topic", &pipeline_config::shadow_topic, "",
             "Where the answers of the model's `shadow` version go (JSON, beside the live version's answer); "
             "empty: they are compared in metrics only.")
      .integer("max_in_flight", &pipeline_config::max_in_flight, 5000, 1, 10'000'000, "records",
               "Records per partition between consumption and a final outcome; when reached, the partition pauses "
               "(and resumes at three quarters).")
      .integer("commit_interval_ms", &pipeline_config::commit_interval_ms, 500, 10, 3'600'000, "ms",
               "How often finished offsets are committed.")
      .integer("stall_timeout_ms", &pipeline_config::stall_timeout_ms, 60'000, 100, 86'400'000, "ms",
               "A partition holding records that makes no progress for this long turns `/readyz` 503, naming it.")
      .choice("on_unwritable", &pipeline_config::skip_unwritable, named<bool>{{"stop", false}, {"skip", true}}, "stop",
              "A record whose outcome Kafka refuses for good and whose dead letter it refuses too (larger than every "
              "limit, topic closed to us): `stop` halts the pipeline (nothing later is committed, `/readyz` answers "
              "503 with the reason) until an operator fixes the cause and restarts; `skip` counts it in "
              "`inflow_records_unwritable_total`, logs its offset and commits past it.")
      .choice("delivery", &pipeline_config::delivery,
              named<delivery>{{"at_least_once", delivery::at_least_once}, {"ordered", delivery::ordered},
                              {"exactly_once", delivery::exactly_once}},
              "at_least_once",
              "`at_least_once`: outcomes are written as they come; a crash replays at most what the README's bound "
              "says. `ordered`: a partition's outcomes are written in offset order, so every key's outcomes are in "
              "order whichever way its model call went. `exactly_once`: ordered, and written in Kafka transactions "
              "together with the input offsets, so a `read_committed` reader sees each outcome once across crashes "
              "and rebalances.")
      .section("drift", drift_block().options(), true, [](const raw_section& in, pipeline_config& out, errors_t& errors) {
        drift_block().read(in, out.drift, errors);
        out.drift.enabled = true;
      })
      .nested("source", &pipeline_config::source, source_block())
      .nested("alert", &pipeline_config::alert, alert_block(), true)
      .section("output", output_block().options(), true, [](const raw_section& in, pipeline_config& out, errors_t& errors) {
        output_config output;
        output_block().read(in, output, errors);
        out.output_topic = output.topic;
      });
  return block;
}

} // namespace

std::vector<option> options() {
  std::vector<option> out;
  for (auto more : {node_block().options(), cluster_block().options(), model_block().options(),
                    pipeline_block().options()})
    out.insert(out.end(), more.begin(), more.end());
  return out;
}

model_config model_defaults() { return model_block().defaults(); }
pipeline_config pipeline_defaults() {
  pipeline_config out;
  std::vector<config_error> required_missing; // model, topics: the caller sets them
  pipeline_block().read(raw_section{}, out, required_missing);
  return out;
}

std::string reference_markdown(const std::vector<std::pair<std::string, std::vector<option>>>& providers) {
  std::string out = "`kafka.<property>`: any librdkafka property, passed through verbatim; `inflow validate` has "
                    "librdkafka check its name and value.\n\n" +
                    reference_table(options());
  out += "\n## Each provider's own keys\n\nUnder `models.<name>`, beside the keys above; a key its provider does not "
         "declare is an error.\n";
  for (const auto& [name, declared] : providers)
    out += fmt::format("\n### `provider: {}`\n\n{}", name,
                       declared.empty() ? std::string("No keys of its own.\n") : reference_table(declared));
  return out;
}

namespace {

int line_of(const YAML::Node& n) {
  if (!n.IsDefined()) // also a node looked up under a scalar, whose Mark() throws
    return 0;
  return n.Mark().is_null() ? 0 : n.Mark().line + 1;
}

/// Applies one `--set a.b.c=value`. Under `kafka`, the rest of the path is the
/// librdkafka property name itself (it contains dots).
void apply_override(YAML::Node root, const std::string& assignment, std::vector<config_error>& errors) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    errors.push_back({assignment, 0, "--set expects key=value"});
    return;
  }
  std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    errors.push_back({path, 0, fmt::format("--set value is not valid YAML: {}", e.msg)});
    return;
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    if (!parts.empty() && parts.front() == "kafka") {
      parts.push_back(path.substr(start));
      break;
    }
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  // yaml-cpp nodes are handles: walking by assignment would rebind, so recurse.
  std::function<void(YAML::Node, size_t)> set = [&](YAML::Node node, size_t i) {
    if (i + 1 == parts.size()) {
      node[parts[i]] = value;
      return;
    }
    if (!node[parts[i]] || !node[parts[i]].IsMap())
      node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    set(node[parts[i]], i + 1);
  };
  set(root, 0);
}

/// Every map key must be a plain string, once per map: reading any other key as a string
/// throws, and yaml-cpp keeps one of two duplicates silently. Aliases can repeat a subtree
/// exponentially, so the walk is bounded too.
void check_keys(const YAML::Node& node, const std::string& path, int depth, size_t& visited,
                std::vector<config_error>& errors) {
  if (++visited > 100'000 || depth > 64) {
    if (visited == 100'001 || depth == 65)
      errors.push_back({path.empty() ? "(document)" : path, line_of(node),
                        "too deeply nested or too large (aliases?) for a config"});
    return;
  }
  if (node.IsMap()) {
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) {
        errors.push_back({path.empty() ? "(document)" : path, line_of(it->first), "a key must be a plain string"});
        continue;
      }
      const auto& key = it->first.Scalar();
      auto child = path.empty() ? key : path + "." + key;
      if (!seen.insert(key).second)
        errors.push_back({child, line_of(it->first), fmt::format("duplicate key '{}'", key)});
      check_keys(it->second, child, depth + 1, visited, errors);
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i)
      check_keys(node[i], fmt::format("{}[{}]", path, i), depth + 1, visited, errors);
  }
}

/// librdkafka's own verdict on a property (its error text), or empty when it takes it.
std::string check_kafka_property(const std::string& name, const std::string& value) {
  std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)> conf(rd_kafka_conf_new(),
                                                                         &rd_kafka_conf_destroy);
  char error[512] = "";
  if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), error, sizeof(error)) != RD_KAFKA_CONF_OK)
    return error;
  return {};
}


/// `${VAR}` and `${VAR:default}`; an unset variable without default is an error.
std::optional<std::string> interpolate(const std::string& in, const std::string& path, int line, errors_t& errors) {
  std::string out;
  size_t pos = 0;
  while (true) {
    auto start = in.find("${", pos);
    if (start == std::string::npos)
      break;
    auto end = in.find('}', start);
    if (end == std::string::npos) {
      errors.push_back({path, line, "unterminated ${ in value"});
      return std::nullopt;
    }
    out.append(in, pos, start - pos);
    std::string expr = in.substr(start + 2, end - start - 2);
    auto colon = expr.find(':');
    std::string name = expr.substr(0, colon);
    if (const char* env = std::getenv(name.c_str())) {
      out += env;
    } else if (colon != std::string::npos) {
      out += expr.substr(colon + 1);
    } else {
      errors.push_back({path, line,
                        fmt::format("environment variable {} is not set and has no default (write ${{{}:default}})",
                                    name, name)});
      return std::nullopt;
    }
    pos = end + 1;
  }
  out.append(in, pos);
  return out;
}

/// The document as the option blocks read it: scalars interpolated, each value with its line.
/// A value whose interpolation fails is left out (its error is recorded).
raw_value to_raw(const YAML::Node& node, const std::string& path, errors_t& errors) {
  raw_value out;
  out.line = line_of(node);
  if (node.IsScalar()) {
    if (auto text = interpolate(node.Scalar(), path, out.line, errors)) {
      out.type = raw_value::kind::scalar;
      out.text = std::move(*text);
    }
  } else if (node.IsSequence()) {
    out.type = raw_value::kind::list;
    for (size_t i = 0; i < node.size(); ++i) {
      auto item_path = fmt::format("{}[{}]", path, i);
      if (!node[i].IsScalar())
        errors.push_back({item_path, line_of(node[i]), "expected a string"});
      else if (auto text = interpolate(node[i].Scalar(), item_path, line_of(node[i]), errors))
        out.items.push_back(std::move(*text));
    }
  } else if (node.IsMap()) {
    auto section = std::make_shared<raw_section>();
    section->path = path;
    section->line = out.line;
    for (auto it = node.begin(); it != node.end(); ++it) {
      auto key = it->first.Scalar();
      auto value = to_raw(it->second, path.empty() ? key : path + "." + key, errors);
      if (value.line == 0)
        value.line = line_of(it->first);
      section->values.emplace(key, std::move(value));
    }
    out.type = raw_value::kind::map;
    out.map = std::move(section);
  }
  return out;
}

/// What no single option can check: roles, addresses and files that go together.
void check_node(const raw_section& in, const node_config& out, errors_t& errors) {
  for (size_t i = 0; i < out.roles.size(); ++i)
    if (out.roles[i] != "ingest" && out.roles[i] != "gateway" && out.roles[i] != "sink")
      errors.push_back({fmt::format("node.roles[{}]", i), in.line_of("roles"),
                        fmt::format("unknown role '{}' (expected ingest, gateway or sink)", out.roles[i])});
  if (out.listen && !out.advertise && (out.listen->host.empty() || out.listen->host == "0.0.0.0"))
    errors.push_back({"node.listen", in.line_of("listen"),
                      "listening on every interface: set node.advertise to the address other nodes reach this one at"});
  if (!out.admin.host.empty() && !is_loopback(out.admin.host) && out.admin_token.empty())
    errors.push_back({"node.admin", in.line_of("admin"),
                      fmt::format("the admin API on {} is reachable from other machines: set node.admin_token (or "
                                  "admin_token_file), which every request but /livez must then carry",
                                  out.admin.to_string())});
  if (out.admin_tls_certificate.empty() != out.admin_tls_key.empty())
    errors.push_back({"node.admin_tls_key", in.line_of(out.admin_tls_key.empty() ? "admin_tls_certificate" : "admin_tls_key"),
                      "HTTPS needs both node.admin_tls_certificate and node.admin_tls_key"});
}

void check_cluster(const raw_section& in, const node_config& node, const cluster_config& out, errors_t& errors) {
  if (out.connection_timeout_ms <= out.heartbeat_ms)
    errors.push_back({"cluster.connection_timeout_ms", in.line_of("connection_timeout_ms"),
                      "must be longer than cluster.heartbeat_ms, or every peer is declared gone"});
  if (out.tls.enabled() && (out.tls.certificate.empty() || out.tls.key.empty() || out.tls.ca_file.empty()))
    errors.push_back({"cluster.tls", in.line_of("tls"), "mutual TLS needs all of certificate, key and ca_file"});
  if (!out.seeds.empty() && !node.listen)
    errors.push_back({"node.listen", in.line_of("seeds"),
                      "a node that joins a cluster needs node.listen, where its peers reach it"});
  if (node.listen && !is_loopback(node.listen->host) && !out.tls.enabled())
    errors.push_back({"cluster.tls", in.line_of("tls"),
                      fmt::format("node.listen is {}, not loopback: cluster traffic there must use mutual TLS; set "
                                  "cluster.tls.certificate, key and ca_file (see docs/CLUSTER.md)",
                                  node.listen->to_string())});
}

void read_model(const std::string& name, const raw_section& in, model_config& model, errors_t& errors) {
  model.name = name;
  model.provider_options.path = in.path;
  model.provider_options.line = in.line;
  model_block().read(in, model, errors, &model.provider_options);
  for (const char* key : {"traffic", "shadow"})
    if (in.has(key))
      errors.push_back({in.join(key), in.line_of(key), fmt::format("`{}` needs `versions:` to choose from", key)});
  if (!in.has("on_failure") && !model.fallback.empty())
    model.on_failure = failure_policy::fallback;
  if (model.on_failure == failure_policy::fallback && model.fallback.empty())
    errors.push_back({in.join("on_failure"), in.line_of("on_failure"),
                      "on_failure: fallback needs `fallback:` (another model's name)"});
}

/// A model with `versions:`: one entry of `models` per version (`name@version`), each the model's
/// keys overridden by the version's own, and the plan that splits records between them.
void read_versions(const std::string& name, const raw_section& in, node_file& out, errors_t& errors) {
  const auto versions = in.section("versions");
  version_plan plan;
  auto entry_of = [&](const std::string& version) { return name + "@" + version; };
  for (const auto& [version, value] : versions.values) {
    if (value.type == raw_value::kind::null) // `v2: ~` drops a version, as for any key
      continue;
    if (value.type != raw_value::kind::map) {
      errors.push_back({versions.join(version), value.line, "expected a map (the version's own keys, or {})"});
      continue;
    }
    raw_section merged = *value.map;
    for (const auto& [key, inherited] : in.values)
      if (key != "versions" && key != "traffic" && key != "shadow")
        merged.values.emplace(key, inherited); // the version's own value wins
    if (!merged.has("version"))
      merged.values["version"] = raw_value{raw_value::kind::scalar, version, {}, {}, value.line};
    read_model(entry_of(version), merged, out.models[entry_of(version)], errors);
  }
  if (std::none_of(versions.values.begin(), versions.values.end(), [&](auto& v) { return versions.has(v.first); }))
    errors.push_back({versions.path, in.line_of("versions"), "a model's `versions:` names at least one version"});
  if (auto shadow = in.find("shadow"); shadow && shadow->type != raw_value::kind::null) {
    if (!versions.has(shadow->text))
      errors.push_back({in.join("shadow"), shadow->line, fmt::format("no version '{}' under versions:", shadow->text)});
    else
      plan.shadow = entry_of(shadow->text);
  }
  const auto traffic = in.section("traffic");
  double total = 0;
  for (const auto& [version, share] : traffic.values) {
    double weight = -1;
    if (share.type == raw_value::kind::scalar) {
      auto [end, ec] = std::from_chars(share.text.data(), share.text.data() + share.text.size(), weight);
      if (ec != std::errc{} || end != share.text.data() + share.text.size() || !std::isfinite(weight))
        weight = -1;
    }
    if (!versions.has(version))
      errors.push_back({traffic.join(version), share.line, fmt::format("no version '{}' under versions:", version)});
    else if (weight < 0)
      errors.push_back({traffic.join(version), share.line, "expected a share: a number, 0 or more"});
    else if (entry_of(version) == plan.shadow && weight > 0)
      errors.push_back({traffic.join(version), share.line,
                        "the shadow version takes no share of the traffic: its answers are never an outcome"});
    else if (weight > 0) {
      plan.traffic.push_back({entry_of(version), version, weight});
      total += weight;
    }
  }
  if (!in.has("traffic")) { // one version besides the shadow takes everything
    for (const auto& [version, value] : versions.values)
      if (versions.has(version) && entry_of(version) != plan.shadow)
        plan.traffic.push_back({entry_of(version), version, 1});
    if (plan.traffic.size() > 1)
      errors.push_back({in.join("traffic"), in.line_of("versions"),
                        "say how records are split between the versions, e.g. `traffic: {v1: 90, v2: 10}`"});
  } else if (total <= 0) {
    errors.push_back({in.join("traffic"), in.line_of("traffic"), "some version needs a share above 0"});
  }
  const model_config* first = nullptr;
  for (const auto& [version, value] : versions.values) {
    auto model = out.models.find(entry_of(version));
    if (model == out.models.end())
      continue;
    if (!first)
      first = &model->second;
    else if (model->second.task != first->task)
      errors.push_back({versions.join(version), value.line,
                        fmt::format("every version does the same task: {} here, {} in {}", model->second.task,
                                    first->task, first->name)});
  }
  if (!plan.shadow.empty()) {
    const auto& shadow = out.models[plan.shadow];
    if (shadow.task != "classification" && shadow.task != "regression")
      errors.push_back({in.join("shadow"), in.line_of("shadow"), "a shadow compares scores: classification and "
                                                                  "regression models only"});
    if (shadow.on_failure == failure_policy::block)
      errors.push_back({in.join("shadow"), in.line_of("shadow"),
                        "the shadow version has on_failure: block, which would hold its copies for ever; a shadow's "
                        "failures are counted and dropped"});
  }
  out.versioned[name] = std::move(plan);
}

void check_pipeline(const raw_section& in, node_file& file, pipeline_config& out, errors_t& errors) {
  const auto& models = file.models;
  auto model = models.find(out.model);
  if (auto plan = file.versioned.find(out.model); plan != file.versioned.end()) {
    out.routes = plan->second.traffic;
    out.shadow_model = plan->second.shadow;
    if (!out.routes.empty())
      model = models.find(out.routes.front().model);
  } else if (model != models.end()) {
    out.routes = {{out.model, "", 1}};
  }
  if (!out.shadow_topic.empty() && out.shadow_model.empty())
    errors.push_back({in.join("shadow_topic"), in.line_of("shadow_topic"),
                      fmt::format("model '{}' has no `shadow:` version to write answers from", out.model)});
  if (!out.model.empty() && model == models.end() && !file.versioned.count(out.model))
    errors.push_back({in.join("model"), in.line_of("model"), fmt::format("no model named '{}' under models:", out.model)});
  if (in.has("alert") && model != models.end() &&
      (model->second.task == "embedding" || model->second.task == "text_generation"))
    errors.push_back({in.join("alert"), in.line_of("alert"),
                      fmt::format("model '{}' does {}: there is no score to alert on; use `output:`", out.model,
                                  model->second.task)});
  if ((out.source.format == wire_format::avro || out.output_format == wire_format::avro) &&
      out.schema_registry.empty())
    errors.push_back({in.join("schema_registry"), in.line,
                      "Avro (source.format or output_format) needs the schema registry the schemas are in"});
  auto avro_name = [](const std::string& n) { // [A-Za-z_][A-Za-z0-9_]*
    return !n.empty() && !std::isdigit(static_cast<unsigned char>(n[0])) &&
           std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  };
  if (out.output_format == wire_format::avro)
    for (const auto* name : {&out.alert.id_as, &out.alert.key_as})
      if (in.has("alert") && !avro_name(*name))
        errors.push_back({in.join("alert"), in.line_of("alert"),
                          fmt::format("'{}' is not an Avro field name (letters, digits, _), as output_format: avro "
                                      "needs",
                                      *name)});
  if (out.source.format == wire_format::avro && out.source.subject.empty())
    out.source.subject = out.source.topic + "-value";
  if (!in.has("alert") && !in.has("output"))
    errors.push_back({in.join("alert"), in.line,
                      "a pipeline needs `alert:` (a rule on the score), `output:` (a results topic) or both"});
}

load_result read_document(const std::string& yaml, const std::vector<std::string>& overrides) {
  load_result result;
  auto& errors = result.errors;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    errors.push_back({"(document)", e.mark.is_null() ? 0 : e.mark.line + 1, e.msg});
    return result;
  }
  if (root.IsNull())
    root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    errors.push_back({"(document)", line_of(root), "expected a map at the top level"});
    return result;
  }
  for (const auto& o : overrides)
    apply_override(root, o, errors);
  size_t visited = 0, before = errors.size();
  check_keys(root, "", 0, visited, errors);
  if (errors.size() > before) // reading on would trip over the same keys
    return result;

  auto file = to_raw(root, "", errors);
  if (!file.map) // an interpolation error at the top
    return result;
  const raw_section& top = *file.map;
  for (const auto& [key, value] : top.values)
    if (key != "node" && key != "cluster" && key != "kafka" && key != "models" && key != "pipelines")
      errors.push_back({key, value.line,
                        fmt::format("unknown key '{}' (expected one of: node, cluster, kafka, models, pipelines)", key)});

  node_file out;
  const YAML::Node& document = root; // const: looking a key up must not add it
  for (const char* section : {"node", "cluster", "kafka", "models", "pipelines"})
    out.written[section] = document[section] ? YAML::Dump(document[section]) : std::string();
  auto node = top.section("node");
  node_block().read(node, out.node, errors);
  check_node(node, out.node, errors);
  auto cluster = top.section("cluster");
  cluster_block().read(cluster, out.cluster, errors);
  check_cluster(cluster, out.node, out.cluster, errors);

  auto kafka = top.section("kafka");
  for (const auto& [key, value] : kafka.values) {
    if (value.type != raw_value::kind::scalar) {
      errors.push_back({kafka.join(key), value.line, "expected a string"});
      continue;
    }
    if (auto refused = check_kafka_property(key, value.text); !refused.empty())
      errors.push_back({kafka.join(key), value.line, refused});
    out.kafka.emplace_back(key, value.text);
  }
  for (const char* required : {"bootstrap.servers", "group.id"})
    if (!kafka.has(required))
      errors.push_back({kafka.join(required), kafka.line, "required key is missing"});

  auto entries = [&](const char* section) {
    std::vector<std::pair<std::string, raw_section>> out;
    const raw_value* given = top.find(section);
    if (given && given->type == raw_value::kind::map) {
      for (const auto& [name, value] : given->map->values)
        if (value.type == raw_value::kind::map)
          out.emplace_back(name, *value.map);
        else if (value.type != raw_value::kind::null) // `name: ~` drops an entry, as for any key
          errors.push_back({fmt::format("{}.{}", section, name), value.line, "expected a map"});
    } else if (given && given->type != raw_value::kind::null) {
      errors.push_back({section, given->line, "expected a map of named entries"});
    }
    return out;
  };
  for (const auto& [name, in] : entries("models")) {
    if (name.find('@') != std::string::npos)
      errors.push_back({in.path, in.line, "a model's name cannot contain '@' (it names a model's version)"});
    if (in.has("versions"))
      read_versions(name, in, out, errors);
    else
      read_model(name, in, out.models[name], errors);
  }
  for (const auto& [name, in] : entries("pipelines")) {
    auto& pipeline = out.pipelines[name];
    pipeline.name = name;
    pipeline_block().read(in, pipeline, errors);
    check_pipeline(in, out, pipeline, errors);
  }
  if (out.pipelines.empty() && out.node.has("ingest"))
    errors.push_back({"pipelines", 0, "an ingest node needs at least one pipeline"});
  if (out.node.has("ingest") && !out.node.has("sink"))
    errors.push_back({"node.roles", node.line,
                      "an ingest node needs the sink role too: a record's offset is committed only once its outcome "
                      "is written, by the node that consumed it"});

  note_overrides(errors, overrides);
  std::stable_sort(errors.begin(), errors.end(), [](auto& a, auto& b) { return a.line < b.line; });
  if (errors.empty())
    result.config = std::move(out);
  return result;
}

} // namespace

load_result load_text(const std::string& yaml, const std::vector<std::string>& overrides) {
  try {
    return read_document(yaml, overrides);
  } catch (const YAML::Exception& e) { // a shape the readers did not foresee: an error, never a crash
    load_result r;
    r.errors.push_back({"(document)", e.mark.is_null() ? 0 : e.mark.line + 1, e.msg});
    return r;
  }
}

load_result load_file(const std::string& path, const std::vector<std::string>& overrides) {
  constexpr off_t max_bytes = 1 << 20;
  auto refuse = [&](std::string why) {
    load_result r;
    r.errors.push_back({"(file)", 0, fmt::format("cannot read {}: {}", path, why)});
    return r;
  };
  // Only a regular file: a FIFO would block the start, /dev/zero would never end.
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return refuse(std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return refuse("not a regular file");
  if (st.st_size > max_bytes)
    return refuse(fmt::format("{} bytes, more than a config may have ({})", st.st_size, max_bytes));
  std::ifstream in(path);
  if (!in)
    return refuse("cannot open it");
  std::string text(static_cast<size_t>(max_bytes) + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > static_cast<size_t>(max_bytes))
    return refuse("it grew past the size a config may have");
  return load_text(text, overrides);
}

} // namespace inflow::config
