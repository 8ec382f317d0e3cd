#pragma once
// The node configuration: YAML, checked completely before anything starts.
// Every option is declared once, bound to its field (config.cpp, with
// config/options.hpp): reading, defaults, bounds, unknown-key errors and the
// reference in docs/CONFIGURATION.md all come from that declaration. A model's
// provider-specific keys are declared and read by the provider's own folder.

#include "config/options.hpp"
#include "config/record_format.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace inflow::config {

struct host_port {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

/// `host:port` or `[ipv6]:port`, the port 0..65535; nullopt otherwise.
std::optional<host_port> parse_host_port(const std::string& s);
/// An IPv4 or IPv6 address literal (what a listening socket binds to).
bool is_ip_address(const std::string& host);
/// 127.0.0.0/8, ::1 or `localhost`.
bool is_loopback(const std::string& host);

struct node_config {
  std::string name;
  std::vector<std::string> roles;
  host_port admin;
  std::optional<host_port> listen; ///< cluster endpoint; unset: a node on its own
  std::optional<host_port> advertise; ///< where peers reach it, when not `listen` (NAT, 0.0.0.0)
  int64_t drain_timeout_ms{};
  std::string admin_token;          ///< secret: never print; from admin_token or admin_token_file
  bool admin_personal_data{}; ///< show record ids and keys in /api/status
  std::string admin_tls_certificate; ///< PEM; with admin_tls_key, the admin API speaks HTTPS
  std::string admin_tls_key;
  bool has(const std::string& role) const;
};

/// Mutual TLS between nodes: this node's certificate and key, and the CA every peer's must come from.
struct tls_config {
  std::string certificate;
  std::string key;
  std::string ca_file;
  bool enabled() const { return !certificate.empty() || !key.empty() || !ca_file.empty(); }
};

struct cluster_config {
  std::vector<host_port> seeds;
  tls_config tls;
  int64_t heartbeat_ms{};
  int64_t connection_timeout_ms{};
  int64_t request_timeout_ms{};
  int64_t max_message_bytes{};
};

struct batch_config {
  int64_t max_batch{};
  int64_t max_linger_ms{};
};

struct limits_config {
  double requests_per_second{}; ///< 0: unlimited
  double tokens_per_minute{};   ///< 0: unlimited
  int64_t max_in_flight{};
};

struct retry_config {
  int64_t max_attempts{};
  int64_t initial_backoff_ms{};
  int64_t max_backoff_ms{};
};

struct breaker_config {
  int64_t failure_threshold{};
  int64_t open_ms{};
};

/// What a remote model does with records it cannot score (`on_failure`).
enum class failure_policy {
  dead_letter, ///< write them to the dead-letter topic once retries run out
  block,       ///< keep them (and so pause the partitions) until the provider answers again
  fallback,    ///< score them with the `fallback` model
};

/// `models.*.cache`: answers kept for replays (gateways/common/result_cache.hpp).
struct cache_config {
  std::string topic; ///< a compacted topic; empty: no cache
  int64_t max_entries{};
};

/// What every model has, whatever its provider. A provider's own keys (a model file, a
/// deployment, a credential) stay in `provider_options` for its folder to declare and read.
struct model_config {
  std::string name;
  std::string task;
  std::string provider;
  std::string endpoint; ///< remote providers
  std::string ca_file;  ///< https: trusted CAs
  int64_t timeout_ms{};
  int64_t max_response_bytes{};
  limits_config limits;
  retry_config retry;
  breaker_config breaker;
  std::string version; ///< empty: the model file's, or the provider's name for the model
  std::vector<std::string> input; ///< empty: taken from the model's metadata
  batch_config batch;
  std::string fallback; ///< name of another model, or empty
  failure_policy on_failure{}; ///< fallback when `fallback` is set
  int64_t deadline_ms{};        ///< longest a record waits for its answer; 0: no limit
  int64_t max_cooldown_ms{};    ///< Retry-After and rate-limit resets are capped at this
  bool cooldown_per_origin{};   ///< `cooldown_scope: origin`: every model on that host waits
  cache_config cache;
  std::string drift_profile; ///< empty: beside the model file (`path`), as `inflow train` writes it
  bool missing_as_nan{};     ///< `on_missing: nan`: an absent feature is NaN, not a dead letter
  double price_per_million_input_tokens{};
  double price_per_million_output_tokens{};
  raw_section provider_options; ///< the keys not declared here, for the provider to read
};

/// One version of a model and its share of a pipeline's records (`models.<name>.traffic`).
struct model_route {
  std::string model;   ///< its entry under node_file::models: `name@version`, or the model itself
  std::string version; ///< the version's name; empty for a model without versions
  double weight = 1;   ///< relative share of the records (keyed, so a key stays on one version)
};

/// `models.<name>.versions`: how a model's records are split between its versions, and which
/// version scores a copy of them as a shadow (never an outcome).
struct version_plan {
  std::vector<model_route> traffic; ///< the versions with a share, in the order written
  std::string shadow;               ///< its entry under node_file::models, or empty
};

/// `score >= 0.9`: the comparison that turns a score into an alert.
struct alert_rule {
  enum class comparison { greater_equal, greater, less_equal, less };
  comparison op{};
  double threshold{};
  std::string topic; ///< empty: the pipeline has no alert rule
  std::string id_as;  ///< the name of the record's id in an alert
  std::string key_as; ///< the name of the record's key in an alert
  bool matches(double score) const;
};

struct source_config {
  std::string topic;
  wire_format format{};
  std::string subject; ///< avro: the expected schema's subject; empty: `<topic>-value`
  decoder_limits limits;
  std::string id_field;
  std::string key_field;
};

/// `pipelines.*.drift`: watch the model's inputs and scores against its training profile.
struct drift_config {
  bool enabled = false; ///< the section is given
  std::string topic;    ///< drift events; empty: metrics and the log only
  int64_t window{};     ///< records compared at a time
  double psi_threshold{};
  double ks_threshold{};
};

/// What a pipeline promises about its outcomes (docs/CONFIGURATION.md, `delivery`).
enum class delivery { at_least_once, ordered, exactly_once };
const char* to_string(delivery d);

struct pipeline_config {
  std::string name;
  source_config source;
  std::string model; ///< as written: a model, or a model with versions
  std::vector<model_route> routes; ///< the entries of `models` that score its records, by share
  std::string shadow_model;        ///< the entry that scores a copy of them, or empty
  std::string shadow_topic;        ///< where the shadow's answers go; empty: compared in metrics only
  drift_config drift;
  std::string schema_registry; ///< for Avro sources and outputs: the registry's Confluent-compatible API
  wire_format output_format{}; ///< alerts and results: json or avro
  alert_rule alert;
  std::string output_topic; ///< empty: no results topic
  std::string dead_letter_topic;
  int64_t max_in_flight{};
  int64_t commit_interval_ms{};
  int64_t stall_timeout_ms{};
  bool skip_unwritable{}; ///< on_unwritable: skip (true) or stop
  enum delivery delivery{};
  bool in_offset_order() const { return delivery != delivery::at_least_once; }
};

struct node_file {
  node_config node;
  cluster_config cluster;
  std::vector<std::pair<std::string, std::string>> kafka; ///< librdkafka properties, verbatim
  std::map<std::string, model_config> models; ///< a model with versions has one entry per version
  std::map<std::string, version_plan> versioned;
  std::map<std::string, pipeline_config> pipelines;
  /// Each top-level section (node, cluster, kafka, models, pipelines) as written, after --set:
  /// what tells a reload which parts changed.
  std::map<std::string, std::string> written;
};

/// Errors about values given with --set: they have no line in the file, and say where they came from.
void note_overrides(std::vector<config_error>& errors, const std::vector<std::string>& overrides);

/// `source:line: path: message`, the form every config error is printed in.
std::string format_error(const std::string& source, const config_error& e);

struct load_result {
  std::optional<node_file> config; ///< set only when errors is empty
  std::vector<config_error> errors;
};

/// `overrides` are `--set key=value` strings: dotted paths, value in YAML.
load_result load_text(const std::string& yaml, const std::vector<std::string>& overrides = {});
load_result load_file(const std::string& path, const std::vector<std::string>& overrides = {});

/// Every option of the node file but the providers' own (gateways::provider_options()).
std::vector<option> options();
/// A model, a pipeline with every declared default (for tests and tools that build one in code).
model_config model_defaults();
pipeline_config pipeline_defaults();

/// The markdown reference of every option: the node file's, then each provider's own
/// (name, options), as docs/CONFIGURATION.md holds it.
std::string reference_markdown(const std::vector<std::pair<std::string, std::vector<option>>>& providers);

} // namespace inflow::config
