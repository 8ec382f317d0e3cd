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

const std::vector<option>& options() {
  static const std::vector<option> table{
    {"node", "name", "string", "node-1", "Name of this node in logs and metrics."},
    {"node", "roles", "list", "[ingest, gateway, sink]", "What this node runs: any of ingest, gateway, sink."},
    {"node", "admin", "host:port", "127.0.0.1:9464",
     "Admin HTTP (/livez, /readyz, /metrics, /api/status). Port 0 picks a free port."},
    {"node", "listen", "host:port", "",
     "Cluster endpoint other nodes connect to; empty: this node works alone. Anything but loopback needs cluster.tls."},
    {"node", "advertise", "host:port", "",
     "Address other nodes are told to reach this one at; empty: node.listen (which must then not be 0.0.0.0)."},
    {"node", "admin_token", "string", "",
     "Bearer token the admin API requires for everything but /livez (`Authorization: Bearer ...`); required "
     "when node.admin is not loopback. Write it as ${SOME_ENV_VAR}."},
    {"node", "admin_token_file", "string", "", "A file holding node.admin_token (a mounted secret)."},
    {"node", "admin_tls_certificate", "string", "",
     "PEM certificate (chain) for the admin API: with admin_tls_key, it serves HTTPS instead of HTTP."},
    {"node", "admin_tls_key", "string", "", "PEM private key of admin_tls_certificate."},
    {"node", "admin_personal_data", "string", "mask",
     "`mask` or `show`: record ids and keys of the recent alerts in /api/status and the dashboard."},
    {"node", "drain_timeout_ms", "integer", "10000",
     "On shutdown or revoke, how long in-flight records may take to finish before they are abandoned "
     "(and replayed by the next owner)."},
    {"cluster", "seeds", "list", "[]", "host:port of nodes to join through; every node learns the others from them."},
    {"cluster", "heartbeat_ms", "integer", "200", "Heartbeat interval between nodes."},
    {"cluster", "connection_timeout_ms", "integer", "2000",
     "A peer silent this long is declared gone: its pending model calls are sent elsewhere at once. "
     "A new connection must complete its handshake within it."},
    {"cluster", "request_timeout_ms", "integer", "30000",
     "A model call on another node not answered by then is logged as late and waited for (never sent twice while "
     "its node may answer); calls wait this long for a node hosting their model to join."},
    {"cluster", "max_message_bytes", "integer", "8388608",
     "Largest message between nodes; larger gateway batches are split, a connection announcing a larger "
     "one is closed before anything is allocated for it."},
    {"cluster.tls", "certificate", "string", "", "PEM certificate of this node, signed by the cluster's CA."},
    {"cluster.tls", "key", "string", "", "PEM private key of that certificate."},
    {"cluster.tls", "ca_file", "string", "", "PEM CA that every peer's certificate must be signed by."},
    {"models.*", "task", "string", nullptr, "classification, regression, embedding or text_generation."},
    {"models.*", "provider", "string", nullptr, "Gateway provider; `inflow gateways` lists them."},
    {"models.*", "path", "string", "", "Model file (embedded providers), relative to the working directory."},
    {"models.*", "endpoint", "string", "", "Model URL (remote providers), e.g. http://127.0.0.1:8000/v2/models/fraud/infer."},
    {"models.*", "timeout_ms", "integer", "2000", "Deadline of one remote call, connect to last byte."},
    {"models.*", "max_response_bytes", "integer", "16777216", "Larger responses fail the call (not retried)."},
    {"models.*", "ca_file", "string", "", "HTTPS: trust the CAs in this PEM file instead of the system's."},
    {"models.*", "api_key", "secret", "", "Credential sent to the provider; write `${ENV_VAR}`. Never printed."},
    {"models.*", "api_key_file", "string", "", "File holding the credential (read at start, and again when the provider refuses it; whitespace trimmed)."},
    {"models.*", "model", "string", "", "The provider's name for the model, e.g. text-embedding-3-small, gemini-1.5-flash, "
                                         "amazon.titan-embed-text-v2:0."},
    {"models.*", "system_prompt", "string", "", "text_generation: instructions sent before each record's text."},
    {"models.*", "max_tokens", "integer", "256", "text_generation: most tokens to generate per record."},
    {"models.*", "api_version", "string", "2024-02-01", "azure-openai: the api-version query parameter."},
    {"models.*", "deployment", "string", "",
     "azure-ml: the deployment to route to (azureml-model-deployment header); azure-openai: the deployment name."},
    {"models.*", "region", "string", "", "bedrock, sagemaker: AWS region; empty takes it from the endpoint's host name."},
    {"models.*", "auth", "string", "api_key",
     "Where the credential comes from: api_key (`api_key`/`api_key_file`), or an OAuth access token fetched and "
     "refreshed before it expires: google_service_account, google_metadata (vertex-ai), azure_client_credentials, "
     "azure_managed_identity (azure-openai, azure-ml); kserve and http take any of them with `token_scope`. "
     "bedrock and sagemaker always use the AWS credential chain."},
    {"models.*", "token_scope", "string", "", "The OAuth scope asked for; empty: the provider's (https://www.googleapis.com/"
     "auth/cloud-platform, https://cognitiveservices.azure.com/.default, https://ml.azure.com/.default)."},
    {"models.*", "credentials_file", "string", "", "auth: google_service_account: the service account's JSON key; empty "
     "uses GOOGLE_APPLICATION_CREDENTIALS."},
    {"models.*", "tenant_id", "string", "", "auth: azure_client_credentials: the Entra ID tenant; empty uses AZURE_TENANT_ID."},
    {"models.*", "client_id", "string", "", "auth: azure_*: the application (client) id, or a user-assigned managed "
     "identity's; empty uses AZURE_CLIENT_ID."},
    {"models.*", "client_secret", "secret", "", "auth: azure_client_credentials; empty uses AZURE_CLIENT_SECRET."},
    {"models.*", "aws_access_key_id", "secret", "", "bedrock, sagemaker: empty uses the AWS credential chain (docs/GATEWAYS.md)."},
    {"models.*", "aws_secret_access_key", "secret", "", "bedrock, sagemaker: set with aws_access_key_id."},
    {"models.*", "aws_session_token", "secret", "", "bedrock, sagemaker: for temporary credentials given with aws_access_key_id."},
    {"models.*", "aws_profile", "string", "", "bedrock, sagemaker: the profile in the shared AWS files; empty uses AWS_PROFILE, "
     "else default."},
    {"models.*", "content_type", "string", "text/csv", "sagemaker: text/csv (rows as CSV lines) or application/json ({\"instances\": rows})."},
    {"models.*", "request_template", "string", "",
     "http: the JSON body; `{{rows}}` becomes the rows (array of arrays), `{{features}}` their names, `{{id}}` the call id "
     "(a JSON string: write it without quotes)."},
    {"models.*", "response_pointer", "string", "", "http: JSON pointer to the array of scores in the response, e.g. /predictions."},
    {"models.*", "auth_header", "string", "Authorization", "http: header that carries the api key."},
    {"models.*", "auth_scheme", "string", "Bearer", "http: prefix of the api key in that header; `\"\"` for none."},
    {"models.*", "version", "string", "", "Version reported in alerts; empty: the model file's (embedded), else the provider's model name "
     "(`model:`, `deployment:`), else the endpoint's host and path."},
    {"models.*", "input", "list", "[]",
     "Feature expressions (`field`, `field == value`, `a / b`); empty takes them from the model's metadata."},
    {"models.*", "threads", "integer", "1", "Threads the model may use for one batch."},
    {"models.*", "price_per_million_input_tokens", "number", "0", "For the cost metric: USD per million input tokens."},
    {"models.*", "price_per_million_output_tokens", "number", "0", "For the cost metric: USD per million output tokens."},
    {"models.*", "fallback", "string", "",
     "Another model (same task and input) that scores what this one cannot: retries exhausted, circuit open."},
    {"models.*", "on_failure", "string", "dead_letter",
     "Records a remote model cannot score: dead_letter once retries run out, block (hold them, pausing "
     "the partitions, until the provider answers again) or fallback (the `fallback` model; the default when "
     "one is set)."},
    {"models.*", "deadline_ms", "integer", "0",
     "Longest a record may wait for its model's answer (queues, cooldowns, retries); then it is dead-lettered. "
     "0: no limit."},
    {"models.*", "max_cooldown_ms", "integer", "60000", "Retry-After and rate-limit resets longer than this are cut to it."},
    {"models.*", "cooldown_scope", "string", "model",
     "model: a provider's Retry-After pauses this model only; origin: every model on the same scheme://host:port."},
    {"models.*.cache", "topic", "string", "",
     "Keep the model's answers in this compacted topic (and in memory): inputs answered before, after a crash, a "
     "rebalance or in a reprocessing run, are not sent to the provider again. Empty: no cache."},
    {"models.*.cache", "max_entries", "integer", "100000", "Most answers kept in memory (least recently used go)."},
    {"models.*.batch", "max_batch", "integer", "256", "Most rows in one model call."},
    {"models.*.batch", "max_linger_ms", "integer", "5", "Longest a row waits for its batch to fill."},
    {"models.*.limits", "requests_per_second", "integer", "0", "Most calls per second to the provider; 0: no limit."},
    {"models.*.limits", "tokens_per_minute", "integer", "0",
     "Most tokens per minute (estimated before a call, corrected from the reported usage); 0: no limit."},
    {"models.*.limits", "max_in_flight", "integer", "16", "Most remote calls at once (and connections kept open)."},
    {"models.*.retry", "max_attempts", "integer", "5", "Calls per batch, first one included, on retriable errors."},
    {"models.*.retry", "initial_backoff_ms", "integer", "50", "First retry waits up to this long (full jitter)."},
    {"models.*.retry", "max_backoff_ms", "integer", "5000", "Cap of the exponential backoff."},
    {"models.*.breaker", "failure_threshold", "integer", "5", "Consecutive failed calls that open the circuit."},
    {"models.*.breaker", "open_ms", "integer", "1000", "How long an open circuit refuses calls before one probe."},
    {"pipelines.*", "model", "string", nullptr, "Name of the model under `models:` that scores the records."},
    {"pipelines.*", "dead_letter_topic", "string", nullptr,
     "Where records that cannot be scored go, unchanged (cut to fit the topic's size limit), with "
     "`__connect.errors.*` headers."},
    {"pipelines.*", "max_in_flight", "integer", "5000",
     "Records per partition between consumption and a final outcome; when reached, the partition pauses (and resumes at three quarters)."},
    {"pipelines.*", "commit_interval_ms", "integer", "500", "How often finished offsets are committed."},
    {"pipelines.*", "stall_timeout_ms", "integer", "60000",
     "A partition holding records that makes no progress for this long turns `/readyz` 503, naming it."},
    {"pipelines.*", "on_unwritable", "string", "stop",
     "A record whose outcome Kafka refuses for good and whose dead letter it refuses too (larger than every "
     "limit, topic closed to us): `stop` halts the pipeline (nothing later is committed, `/readyz` answers 503 "
     "with the reason) until an operator fixes the cause and restarts; `skip` counts it in "
     "`inflow_records_unwritable_total`, logs its offset and commits past it."},
    {"pipelines.*", "delivery", "string", "at_least_once",
     "`at_least_once`: outcomes are written as they come; a crash replays at most what the README's bound says. "
     "`ordered`: a partition's outcomes are written in offset order, so every key's outcomes are in order "
     "whichever way its model call went. `exactly_once`: ordered, and written in Kafka transactions together "
     "with the input offsets, so a `read_committed` reader sees each outcome once across crashes and rebalances."},
    {"pipelines.*.source", "topic", "string", nullptr, "Input topic."},
    {"pipelines.*.source", "format", "string", "json", "Record value format: json or msgpack."},
    {"pipelines.*.source", "max_record_bytes", "integer", "65536", "Larger records go to the dead-letter topic."},
    {"pipelines.*.source", "max_depth", "integer", "32", "Deeper nesting goes to the dead-letter topic."},
    {"pipelines.*.source", "id_field", "string", "id", "Field that identifies a record; copied to alerts and results."},
    {"pipelines.*.source", "key_field", "string", "card_id", "Field used as the key of alerts and results."},
    {"pipelines.*.alert", "when", "string", nullptr, "Alert rule on the model's score, e.g. `score >= 0.9`."},
    {"pipelines.*.alert", "topic", "string", nullptr, "Topic the alerts are written to (JSON, key = the key field)."},
    {"pipelines.*.output", "topic", "string", nullptr,
     "Topic every result is written to (JSON: score, embedding or text), key = the key field."},
  };
  return table;
}

std::string reference_markdown() {
  std::string out = "| key | type | default | description |\n|---|---|---|---|\n";
  out += "| `kafka.<property>` | string | | Any librdkafka property, passed through verbatim; `inflow validate` has librdkafka check its name and value. |\n";
  for (const auto& o : options())
    out += fmt::format("| `{}.{}` | {} | {} | {} |\n", o.section, o.key, o.type,
                       o.default_value ? fmt::format("`{}`", o.default_value) : "required", o.description);
  return out;
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

std::optional<delivery> parse_delivery(std::string_view name) {
  if (name == "at_least_once")
    return delivery::at_least_once;
  if (name == "ordered")
    return delivery::ordered;
  if (name == "exactly_once")
    return delivery::exactly_once;
  return std::nullopt;
}

bool is_loopback(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127; // 127.0.0.0/8
  in6_addr v6{};
  return host == "localhost" || (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
}

namespace {

int line_of(const YAML::Node& n) {
  if (!n.IsDefined()) // also a node looked up under a scalar, whose Mark() throws
    return 0;
  return n.Mark().is_null() ? 0 : n.Mark().line + 1;
}

/// Reads one YAML map against the options declared for its section,
/// collecting every error instead of stopping at the first.
class section_reader {
public:
  section_reader(const YAML::Node& node, std::string path, std::string section,
                 std::vector<config_error>& errors)
    : node_(node), path_(std::move(path)), section_(std::move(section)), errors_(errors) {
    if (node_ && !node_.IsMap()) {
      error(node_, path_, "expected a map");
      node_ = YAML::Node();
    }
    if (!node_)
      return;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      auto key = it->first.as<std::string>();
      if (!declared(key) && !is_subsection(key))
        error(it->first, join(key), fmt::format("unknown key '{}'{}", key, suggestion()));
    }
  }

  std::string join(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  YAML::Node child(const std::string& key) const {
    return node_ ? node_[key] : YAML::Node(YAML::NodeType::Undefined);
  }
  const YAML::Node& node() const { return node_; }
  std::vector<config_error>& errors() const { return errors_; }

  void error(const YAML::Node& at, const std::string& path, std::string message) {
    errors_.push_back({path, at ? line_of(at) : line_of(node_), std::move(message)});
  }

  /// The value as written (interpolated), or the declared default; nullopt if
  /// required and absent (an error is recorded).
  std::optional<std::pair<std::string, YAML::Node>> scalar(const std::string& key) {
    const option& opt = declaration(key);
    YAML::Node value = child(key);
    if (!value || value.IsNull()) {
      if (!opt.default_value) {
        error(node_, join(key), "required key is missing");
        return std::nullopt;
      }
      return std::pair{std::string(opt.default_value), YAML::Load(opt.default_value)};
    }
    if (!value.IsScalar()) {
      error(value, join(key), fmt::format("expected a {}", opt.type));
      return std::nullopt;
    }
    auto text = interpolate(value.Scalar(), value, join(key));
    if (!text)
      return std::nullopt;
    return std::pair{*text, value};
  }

  std::string get_string(const std::string& key) {
    auto v = scalar(key);
    return v ? v->first : std::string();
  }

  /// A topic name as Kafka takes it: 1 to 249 letters, digits, '.', '_' or '-'.
  std::string get_topic(const std::string& key) {
    auto v = scalar(key);
    if (!v)
      return {};
    const auto& name = v->first;
    bool legal = !name.empty() && name.size() <= 249 && name != "." && name != ".." &&
                 std::all_of(name.begin(), name.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
                 });
    if (!legal)
      error(v->second, join(key),
            fmt::format("'{}' is not a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-')", name));
    return name;
  }

  int64_t get_int(const std::string& key, int64_t min, int64_t max) {
    auto v = scalar(key);
    if (!v)
      return min;
    int64_t out = 0;
    const auto& s = v->first;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc{} || end != s.data() + s.size()) {
      error(v->second, join(key), fmt::format("expected an integer, got '{}'", s));
      return min;
    }
    if (out < min || out > max) {
      error(v->second, join(key), fmt::format("must be between {} and {}, got {}", min, max, out));
      return min;
    }
    return out;
  }

  double get_number(const std::string& key, double min, double max) {
    auto v = scalar(key);
    if (!v)
      return min;
    double out = 0;
    const auto& s = v->first;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc{} || end != s.data() + s.size() || out < min || out > max) {
      error(v->second, join(key), fmt::format("expected a number between {} and {}, got '{}'", min, max, s));
      return min;
    }
    return out;
  }

  std::vector<std::string> get_list(const std::string& key) {
    const option& opt = declaration(key);
    YAML::Node given = child(key);
    // A yaml-cpp handle to a missing key cannot be assigned to: build a new one.
    YAML::Node value = (!given || given.IsNull()) ? YAML::Load(opt.default_value ? opt.default_value : "[]") : given;
    std::vector<std::string> out;
    if (!value.IsSequence()) {
      error(value, join(key), "expected a list");
      return out;
    }
    for (size_t i = 0; i < value.size(); ++i) {
      auto item_path = fmt::format("{}[{}]", join(key), i);
      if (!value[i].IsScalar()) {
        error(value[i], item_path, "expected a string");
        continue;
      }
      if (auto text = interpolate(value[i].Scalar(), value[i], item_path))
        out.push_back(*text);
    }
    return out;
  }

  /// `${VAR}` and `${VAR:default}`; an unset variable without default is an error.
  std::optional<std::string> interpolate(const std::string& in, const YAML::Node& at, const std::string& path) {
    std::string out;
    size_t pos = 0;
    while (true) {
      auto start = in.find("${", pos);
      if (start == std::string::npos)
        break;
      auto end = in.find('}', start);
      if (end == std::string::npos) {
        error(at, path, "unterminated ${ in value");
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
        error(at, path, fmt::format("environment variable {} is not set and has no default (write ${{{}:default}})",
                                    name, name));
        return std::nullopt;
      }
      pos = end + 1;
    }
    out.append(in, pos);
    return out;
  }

private:
  bool declared(const std::string& key) const {
    return std::any_of(options().begin(), options().end(),
                       [&](const option& o) { return section_ == o.section && key == o.key; });
  }
  bool is_subsection(const std::string& key) const {
    auto sub = section_ + "." + key;
    return std::any_of(options().begin(), options().end(), [&](const option& o) { return sub == o.section; });
  }
  const option& declaration(const std::string& key) const {
    for (const auto& o : options())
      if (section_ == o.section && key == o.key)
        return o;
    throw std::logic_error("option not declared: " + section_ + "." + key);
  }
  std::string suggestion() const {
    std::string keys;
    for (const auto& o : options())
      if (section_ == o.section)
        keys += (keys.empty() ? "" : ", ") + std::string(o.key);
    return keys.empty() ? "" : fmt::format(" (expected one of: {})", keys);
  }

  YAML::Node node_;
  std::string path_;
  std::string section_;
  std::vector<config_error>& errors_;
};


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

void read_node(section_reader r, node_config& out) {
  out.name = r.get_string("name");
  out.roles = r.get_list("roles");
  for (size_t i = 0; i < out.roles.size(); ++i)
    if (out.roles[i] != "ingest" && out.roles[i] != "gateway" && out.roles[i] != "sink")
      r.error(r.child("roles"), fmt::format("node.roles[{}]", i),
              fmt::format("unknown role '{}' (expected ingest, gateway or sink)", out.roles[i]));
  if (auto admin = r.scalar("admin")) {
    if (auto hp = parse_host_port(admin->first); hp && is_ip_address(hp->host))
      out.admin = *hp;
    else
      r.error(admin->second, "node.admin",
              fmt::format("expected an IP address and port to listen on (e.g. 127.0.0.1:9464), got '{}'",
                          admin->first));
  }
  if (auto listen = r.scalar("listen"); listen && !listen->first.empty()) {
    if (auto hp = parse_host_port(listen->first); hp && (hp->host.empty() || is_ip_address(hp->host)))
      out.listen = *hp;
    else
      r.error(listen->second, "node.listen",
              fmt::format("expected an IP address and port to listen on (e.g. 127.0.0.1:7000), got '{}'",
                          listen->first));
  }
  if (auto advertise = r.scalar("advertise"); advertise && !advertise->first.empty()) {
    if (auto hp = parse_host_port(advertise->first))
      out.advertise = *hp;
    else
      r.error(advertise->second, "node.advertise", fmt::format("expected host:port, got '{}'", advertise->first));
  }
  if (out.listen && !out.advertise && (out.listen->host.empty() || out.listen->host == "0.0.0.0"))
    r.error(r.child("listen"), "node.listen",
            "listening on every interface: set node.advertise to the address other nodes reach this one at");
  out.drain_timeout_ms = r.get_int("drain_timeout_ms", 0, 3'600'000);
  out.admin_token = r.get_string("admin_token");
  if (auto file = r.scalar("admin_token_file"); file && !file->first.empty() && out.admin_token.empty()) {
    std::ifstream in(file->first);
    std::getline(in, out.admin_token);
    if (!in && out.admin_token.empty())
      r.error(file->second, "node.admin_token_file", fmt::format("cannot read {}", file->first));
  }
  if (!out.admin.host.empty() && !is_loopback(out.admin.host) && out.admin_token.empty())
    r.error(r.child("admin"), "node.admin",
            fmt::format("the admin API on {} is reachable from other machines: set node.admin_token (or "
                        "admin_token_file), which every request but /livez must then carry",
                        out.admin.to_string()));
  out.admin_tls_certificate = r.get_string("admin_tls_certificate");
  out.admin_tls_key = r.get_string("admin_tls_key");
  if (out.admin_tls_certificate.empty() != out.admin_tls_key.empty())
    r.error(r.child(out.admin_tls_key.empty() ? "admin_tls_certificate" : "admin_tls_key"), "node.admin_tls_key",
            "HTTPS needs both node.admin_tls_certificate and node.admin_tls_key");
  for (const auto* file : {&out.admin_tls_certificate, &out.admin_tls_key})
    if (!file->empty() && !std::ifstream(*file))
      r.error(r.child(file == &out.admin_tls_key ? "admin_tls_key" : "admin_tls_certificate"),
              file == &out.admin_tls_key ? "node.admin_tls_key" : "node.admin_tls_certificate",
              fmt::format("cannot read {}", *file));
  if (auto personal = r.scalar("admin_personal_data")) {
    if (personal->first == "mask" || personal->first == "show")
      out.admin_personal_data = personal->first == "show";
    else
      r.error(personal->second, "node.admin_personal_data",
              fmt::format("expected mask or show, got '{}'", personal->first));
  }
}


void read_cluster(section_reader r, const node_config& node, cluster_config& out) {
  auto seeds = r.get_list("seeds");
  for (size_t i = 0; i < seeds.size(); ++i) {
    if (auto hp = parse_host_port(seeds[i]))
      out.seeds.push_back(*hp);
    else
      r.error(r.child("seeds"), fmt::format("cluster.seeds[{}]", i), fmt::format("expected host:port, got '{}'", seeds[i]));
  }
  out.heartbeat_ms = r.get_int("heartbeat_ms", 10, 60'000);
  out.connection_timeout_ms = r.get_int("connection_timeout_ms", 100, 600'000);
  out.request_timeout_ms = r.get_int("request_timeout_ms", 100, 3'600'000);
  out.max_message_bytes = r.get_int("max_message_bytes", 64 * 1024, 1 << 30);
  if (out.connection_timeout_ms <= out.heartbeat_ms)
    r.error(r.child("connection_timeout_ms"), "cluster.connection_timeout_ms",
            "must be longer than cluster.heartbeat_ms, or every peer is declared gone");
  section_reader tls(r.child("tls"), "cluster.tls", "cluster.tls", r.errors());
  out.tls.certificate = tls.get_string("certificate");
  out.tls.key = tls.get_string("key");
  out.tls.ca_file = tls.get_string("ca_file");
  if (out.tls.enabled() && (out.tls.certificate.empty() || out.tls.key.empty() || out.tls.ca_file.empty()))
    r.error(r.child("tls"), "cluster.tls", "mutual TLS needs all of certificate, key and ca_file");
  if (!out.seeds.empty() && !node.listen)
    r.error(r.child("seeds"), "node.listen", "a node that joins a cluster needs node.listen, where its peers reach it");
  if (node.listen && !is_loopback(node.listen->host) && !out.tls.enabled())
    r.error(r.child("tls"), "cluster.tls",
            fmt::format("node.listen is {}, not loopback: cluster traffic there must use mutual TLS; set "
                        "cluster.tls.certificate, key and ca_file (see docs/CLUSTER.md)",
                        node.listen->to_string()));
}

void read_model(section_reader r, const std::string& name, model_config& out) {
  out.name = name;
  out.task = r.get_string("task");
  if (!out.task.empty() && out.task != "classification" && out.task != "regression" && out.task != "embedding" &&
      out.task != "text_generation")
    r.error(r.child("task"), r.join("task"),
            fmt::format("unknown task '{}' (expected classification, regression, embedding or text_generation)",
                        out.task));
  out.provider = r.get_string("provider");
  out.path = r.get_string("path");
  out.version = r.get_string("version");
  out.input = r.get_list("input");
  out.threads = r.get_int("threads", 1, 256);
  out.fallback = r.get_string("fallback");
  if (!out.fallback.empty())
    out.on_failure = failure_policy::fallback;
  if (auto policy = r.child("on_failure") ? r.scalar("on_failure") : std::nullopt) { // absent: as `fallback` says
    if (policy->first == "dead_letter")
      out.on_failure = failure_policy::dead_letter;
    else if (policy->first == "block")
      out.on_failure = failure_policy::block;
    else if (policy->first == "fallback")
      out.on_failure = failure_policy::fallback;
    else
      r.error(policy->second, r.join("on_failure"),
              fmt::format("unknown policy '{}' (expected dead_letter, block or fallback)", policy->first));
    if (out.on_failure == failure_policy::fallback && out.fallback.empty())
      r.error(policy->second, r.join("on_failure"), "on_failure: fallback needs `fallback:` (another model's name)");
  }
  out.deadline_ms = r.get_int("deadline_ms", 0, 7 * 86'400'000LL);
  out.max_cooldown_ms = r.get_int("max_cooldown_ms", 0, 86'400'000);
  if (auto scope = r.scalar("cooldown_scope")) {
    if (scope->first == "model" || scope->first == "origin")
      out.cooldown_per_origin = scope->first == "origin";
    else
      r.error(scope->second, r.join("cooldown_scope"),
              fmt::format("unknown scope '{}' (expected model or origin)", scope->first));
  }
  out.price_per_million_input_tokens = r.get_number("price_per_million_input_tokens", 0, 1e6);
  out.price_per_million_output_tokens = r.get_number("price_per_million_output_tokens", 0, 1e6);
  out.endpoint = r.get_string("endpoint");
  out.timeout_ms = r.get_int("timeout_ms", 1, 3'600'000);
  out.ca_file = r.get_string("ca_file");
  out.api_key = r.get_string("api_key");
  out.api_key_file = r.get_string("api_key_file");
  out.deployment = r.get_string("deployment");
  out.remote_model = r.get_string("model");
  out.system_prompt = r.get_string("system_prompt");
  out.max_tokens = r.get_int("max_tokens", 1, 1'000'000);
  out.api_version = r.get_string("api_version");
  out.request_template = r.get_string("request_template");
  out.region = r.get_string("region");
  out.aws_access_key_id = r.get_string("aws_access_key_id");
  out.aws_secret_access_key = r.get_string("aws_secret_access_key");
  out.aws_session_token = r.get_string("aws_session_token");
  out.aws_profile = r.get_string("aws_profile");
  if (auto auth = r.scalar("auth")) {
    static const std::set<std::string> kinds{"api_key", "google_service_account", "google_metadata",
                                             "azure_client_credentials", "azure_managed_identity"};
    if (kinds.count(auth->first))
      out.auth = auth->first;
    else
      r.error(auth->second, r.join("auth"),
              fmt::format("unknown auth '{}' (expected api_key, google_service_account, google_metadata, "
                          "azure_client_credentials or azure_managed_identity)",
                          auth->first));
  }
  out.token_scope = r.get_string("token_scope");
  out.credentials_file = r.get_string("credentials_file");
  out.tenant_id = r.get_string("tenant_id");
  out.client_id = r.get_string("client_id");
  out.client_secret = r.get_string("client_secret");
  out.content_type = r.get_string("content_type");
  out.response_pointer = r.get_string("response_pointer");
  out.auth_header = r.get_string("auth_header");
  out.auth_scheme = r.get_string("auth_scheme");
  out.max_response_bytes = r.get_int("max_response_bytes", 1024, int64_t(1) << 32);
  section_reader cache(r.child("cache"), r.join("cache"), "models.*.cache", r.errors());
  out.cache.topic = cache.child("topic") ? cache.get_topic("topic") : std::string();
  out.cache.max_entries = cache.get_int("max_entries", 1, 100'000'000);
  section_reader batch(r.child("batch"), r.join("batch"), "models.*.batch", r.errors());
  out.batch.max_batch = batch.get_int("max_batch", 1, 1'000'000);
  out.batch.max_linger_ms = batch.get_int("max_linger_ms", 0, 60'000);
  section_reader limits(r.child("limits"), r.join("limits"), "models.*.limits", r.errors());
  out.limits.requests_per_second = static_cast<double>(limits.get_int("requests_per_second", 0, 10'000'000));
  out.limits.max_in_flight = limits.get_int("max_in_flight", 1, 4096);
  out.limits.tokens_per_minute = static_cast<double>(limits.get_int("tokens_per_minute", 0, 1'000'000'000));
  section_reader retry(r.child("retry"), r.join("retry"), "models.*.retry", r.errors());
  out.retry.max_attempts = retry.get_int("max_attempts", 1, 100);
  out.retry.initial_backoff_ms = retry.get_int("initial_backoff_ms", 1, 3'600'000);
  out.retry.max_backoff_ms = retry.get_int("max_backoff_ms", 1, 3'600'000);
  section_reader breaker(r.child("breaker"), r.join("breaker"), "models.*.breaker", r.errors());
  out.breaker.failure_threshold = breaker.get_int("failure_threshold", 1, 1'000'000);
  out.breaker.open_ms = breaker.get_int("open_ms", 1, 3'600'000);
}

void read_pipeline(section_reader r, const std::string& name, const std::map<std::string, model_config>& models,
                   pipeline_config& out, std::vector<config_error>& errors) {
  out.name = name;
  out.model = r.get_string("model");
  if (!out.model.empty() && !models.count(out.model))
    r.error(r.child("model"), r.join("model"), fmt::format("no model named '{}' under models:", out.model));
  out.dead_letter_topic = r.get_topic("dead_letter_topic");
  out.max_in_flight = r.get_int("max_in_flight", 1, 10'000'000);
  out.commit_interval_ms = r.get_int("commit_interval_ms", 10, 3'600'000);
  out.stall_timeout_ms = r.get_int("stall_timeout_ms", 100, 86'400'000);
  if (auto policy = r.scalar("on_unwritable")) {
    if (policy->first == "stop" || policy->first == "skip")
      out.skip_unwritable = policy->first == "skip";
    else
      r.error(policy->second, r.join("on_unwritable"),
              fmt::format("unknown policy '{}' (expected stop or skip)", policy->first));
  }

  if (auto mode = r.scalar("delivery")) {
    if (auto parsed = parse_delivery(mode->first))
      out.delivery = *parsed;
    else
      r.error(mode->second, r.join("delivery"),
              fmt::format("unknown delivery '{}' (expected at_least_once, ordered or exactly_once)", mode->first));
  }

  section_reader source(r.child("source"), r.join("source"), "pipelines.*.source", errors);
  if (!r.child("source"))
    r.error(r.node(), r.join("source"), "required key is missing");
  out.source.topic = source.get_topic("topic");
  if (auto format = source.scalar("format")) {
    if (auto f = events::parse_wire_format(format->first))
      out.source.format = *f;
    else
      source.error(format->second, source.join("format"),
                   fmt::format("unknown format '{}' (expected json or msgpack)", format->first));
  }
  out.source.limits.max_record_bytes =
    static_cast<size_t>(source.get_int("max_record_bytes", 16, 64 * 1024 * 1024));
  out.source.limits.max_depth = static_cast<size_t>(source.get_int("max_depth", 1, 1024));

  out.source.id_field = source.get_string("id_field");
  out.source.key_field = source.get_string("key_field");

  // An alert rule, a results topic, or both (`alert: ~` removes one given elsewhere).
  auto present = [&](const char* key) { return r.child(key) && !r.child(key).IsNull(); };
  if (present("alert")) {
    section_reader alert(r.child("alert"), r.join("alert"), "pipelines.*.alert", errors);
    if (auto when = alert.scalar("when")) {
      if (auto rule = parse_alert_rule(when->first))
        out.alert = *rule;
      else
        alert.error(when->second, alert.join("when"),
                    fmt::format("expected `score <op> <number>` with op one of >=, >, <=, < and a finite number; got '{}'",
                                when->first));
    }
    out.alert.topic = alert.get_topic("topic");
    auto model = models.find(out.model);
    if (model != models.end() && (model->second.task == "embedding" || model->second.task == "text_generation"))
      r.error(r.child("alert"), r.join("alert"),
              fmt::format("model '{}' does {}: there is no score to alert on; use `output:`", out.model,
                          model->second.task));
  }
  if (present("output")) {
    section_reader output(r.child("output"), r.join("output"), "pipelines.*.output", errors);
    out.output_topic = output.get_topic("topic");
  }
  if (!present("alert") && !present("output"))
    r.error(r.node(), r.join("alert"), "a pipeline needs `alert:` (a rule on the score), `output:` (a results topic) "
                                       "or both");
}

} // namespace

namespace {

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

} // namespace

namespace {

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

  for (auto it = root.begin(); it != root.end(); ++it) {
    auto key = it->first.as<std::string>();
    if (key != "node" && key != "cluster" && key != "kafka" && key != "models" && key != "pipelines")
      errors.push_back({key, line_of(it->first),
                        fmt::format("unknown key '{}' (expected one of: node, cluster, kafka, models, pipelines)", key)});
  }

  node_file out;
  read_node(section_reader(root["node"], "node", "node", errors), out.node);
  read_cluster(section_reader(root["cluster"], "cluster", "cluster", errors), out.node, out.cluster);

  section_reader kafka_reader(YAML::Node(YAML::NodeType::Map), "kafka", "kafka", errors); // for interpolation
  if (auto kafka = root["kafka"]) {
    if (!kafka.IsMap()) {
      errors.push_back({"kafka", line_of(kafka), "expected a map of librdkafka properties"});
    } else {
      for (auto it = kafka.begin(); it != kafka.end(); ++it) {
        auto key = it->first.as<std::string>();
        if (!it->second.IsScalar()) {
          errors.push_back({"kafka." + key, line_of(it->second), "expected a string"});
          continue;
        }
        if (auto v = kafka_reader.interpolate(it->second.Scalar(), it->second, "kafka." + key)) {
          if (auto refused = check_kafka_property(key, *v); !refused.empty())
            errors.push_back({"kafka." + key, line_of(it->second), refused});
          out.kafka.emplace_back(key, *v);
        }
      }
    }
  }
  if (std::none_of(out.kafka.begin(), out.kafka.end(), [](auto& kv) { return kv.first == "bootstrap.servers"; }))
    errors.push_back({"kafka.bootstrap.servers", line_of(root["kafka"]), "required key is missing"});
  if (std::none_of(out.kafka.begin(), out.kafka.end(), [](auto& kv) { return kv.first == "group.id"; }))
    errors.push_back({"kafka.group.id", line_of(root["kafka"]), "required key is missing"});

  auto named_entries = [&](const char* section, auto&& read) {
    YAML::Node entries = root[section];
    if (!entries)
      return;
    if (!entries.IsMap()) {
      errors.push_back({section, line_of(entries), "expected a map of named entries"});
      return;
    }
    for (auto it = entries.begin(); it != entries.end(); ++it) {
      auto name = it->first.as<std::string>();
      read(section_reader(it->second, fmt::format("{}.{}", section, name), fmt::format("{}.*", section), errors),
           name);
    }
  };
  named_entries("models", [&](section_reader r, const std::string& name) { read_model(r, name, out.models[name]); });
  named_entries("pipelines", [&](section_reader r, const std::string& name) {
    read_pipeline(r, name, out.models, out.pipelines[name], errors);
  });
  if (out.pipelines.empty() && out.node.has("ingest"))
    errors.push_back({"pipelines", 0, "an ingest node needs at least one pipeline"});
  if (out.node.has("ingest") && !out.node.has("sink"))
    errors.push_back({"node.roles", line_of(root["node"]),
                      "an ingest node needs the sink role too: a record's offset is committed only once its outcome "
                      "is written, by the node that consumed it"});

  // Values from --set have no line in the file.
  for (auto& e : errors)
    for (const auto& o : overrides)
      if (auto key = o.substr(0, o.find('=')); e.path == key || e.path.rfind(key + ".", 0) == 0 || e.path.rfind(key + "[", 0) == 0) {
        e.line = 0;
        e.message += " (from --set)";
      }
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
