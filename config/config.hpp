#pragma once
// The node configuration: YAML, checked completely before anything starts.
// Every option is declared once in `options()` (config.cpp): key, type,
// default and description. Reading, unknown-key errors and the reference in
// docs/CONFIGURATION.md all come from that table.

#include "events/decoder.hpp"

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
  int64_t drain_timeout_ms = 0;
  std::string admin_token;          ///< secret: never print; from admin_token or admin_token_file
  bool admin_personal_data = false; ///< show record ids and keys in /api/status
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
  int64_t heartbeat_ms = 0;
  int64_t connection_timeout_ms = 0;
  int64_t request_timeout_ms = 0;
  int64_t max_message_bytes = 0;
};

struct batch_config {
  int64_t max_batch = 0;
  int64_t max_linger_ms = 0;
};

struct limits_config {
  double requests_per_second = 0; ///< 0: unlimited
  double tokens_per_minute = 0;   ///< 0: unlimited
  int64_t max_in_flight = 16;
};

struct retry_config {
  int64_t max_attempts = 5;
  int64_t initial_backoff_ms = 50;
  int64_t max_backoff_ms = 5000;
};

struct breaker_config {
  int64_t failure_threshold = 5;
  int64_t open_ms = 1000;
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
  int64_t max_entries = 100'000;
};

struct model_config {
  std::string name;
  std::string task;
  std::string provider;
  std::string path;     ///< embedded providers
  std::string endpoint; ///< remote providers
  std::string ca_file;  ///< https: trusted CAs
  std::string api_key;  ///< secret: never print
  std::string api_key_file;
  std::string deployment;       ///< azure-ml, azure-openai
  std::string remote_model;     ///< `model:` the provider's name for it
  std::string system_prompt;    ///< text_generation
  int64_t max_tokens = 256;     ///< text_generation
  std::string api_version;      ///< azure-openai
  std::string region;           ///< bedrock, sagemaker
  std::string aws_access_key_id;
  std::string aws_secret_access_key;
  std::string aws_session_token;
  std::string aws_profile;
  std::string auth;             ///< "" or api_key: api_key/api_key_file; else an OAuth token source
  std::string token_scope;
  std::string credentials_file; ///< google_service_account
  std::string tenant_id;        ///< azure_client_credentials
  std::string client_id;        ///< azure_*
  std::string client_secret;    ///< secret: never print
  std::string content_type;     ///< sagemaker
  std::string request_template; ///< http
  std::string response_pointer; ///< http
  std::string auth_header;      ///< http
  std::string auth_scheme;      ///< http
  int64_t timeout_ms = 2000;
  int64_t max_response_bytes = 16 << 20;
  limits_config limits;
  retry_config retry;
  breaker_config breaker;
  std::string version; ///< empty: taken from the model's metadata
  std::vector<std::string> input; ///< empty: taken from the model's metadata
  batch_config batch;
  int64_t threads = 1;
  std::string fallback; ///< name of another model, or empty
  failure_policy on_failure = failure_policy::dead_letter; ///< fallback when `fallback` is set
  int64_t deadline_ms = 0;         ///< longest a record waits for its answer; 0: no limit
  int64_t max_cooldown_ms = 60'000; ///< Retry-After and rate-limit resets are capped at this
  bool cooldown_per_origin = false; ///< `cooldown_scope: origin`: every model on that host waits
  cache_config cache;
  double price_per_million_input_tokens = 0;
  double price_per_million_output_tokens = 0;
  int64_t max_queue = 0;
};

/// `score >= 0.9`: the comparison that turns a score into an alert.
struct alert_rule {
  enum class comparison { greater_equal, greater, less_equal, less };
  comparison op = comparison::greater_equal;
  double threshold = 0;
  std::string topic; ///< empty: the pipeline has no alert rule
  bool matches(double score) const;
};

struct source_config {
  std::string topic;
  events::wire_format format = events::wire_format::json;
  events::decoder_limits limits;
  std::string id_field = "id";
  std::string key_field = "card_id";
};

/// What a pipeline promises about its outcomes (docs/CONFIGURATION.md, `delivery`).
enum class delivery { at_least_once, ordered, exactly_once };
std::optional<delivery> parse_delivery(std::string_view name);
const char* to_string(delivery d);

struct pipeline_config {
  std::string name;
  source_config source;
  std::string model;
  alert_rule alert;
  std::string output_topic; ///< empty: no results topic
  std::string dead_letter_topic;
  int64_t max_in_flight = 0;
  int64_t commit_interval_ms = 0;
  int64_t stall_timeout_ms = 0;
  bool skip_unwritable = false; ///< on_unwritable: skip (true) or stop
  enum delivery delivery = delivery::at_least_once;
  bool in_offset_order() const { return delivery != delivery::at_least_once; }
};

struct node_file {
  node_config node;
  cluster_config cluster;
  std::vector<std::pair<std::string, std::string>> kafka; ///< librdkafka properties, verbatim
  std::map<std::string, model_config> models;
  std::map<std::string, pipeline_config> pipelines;
};

struct config_error {
  std::string path; ///< e.g. models.fraud.batch.max_batch
  int line = 0;     ///< 1-based; 0 when the error has no place in the file
  std::string message;
};

/// `source:line: path: message`, the form every config error is printed in.
std::string format_error(const std::string& source, const config_error& e);

struct load_result {
  std::optional<node_file> config; ///< set only when errors is empty
  std::vector<config_error> errors;
};

/// `overrides` are `--set key=value` strings: dotted paths, value in YAML.
load_result load_text(const std::string& yaml, const std::vector<std::string>& overrides = {});
load_result load_file(const std::string& path, const std::vector<std::string>& overrides = {});

struct option {
  const char* section; ///< `models.*.batch`: `*` is any entry name
  const char* key;
  const char* type;
  const char* default_value; ///< nullptr: required
  const char* description;
};
const std::vector<option>& options();

/// The markdown reference of every option, as docs/CONFIGURATION.md holds it.
std::string reference_markdown();

} // namespace inflow::config
