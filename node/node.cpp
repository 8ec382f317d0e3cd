#include "node/node.hpp"

#include "node/actor_watch.hpp"
#include "gateways/common/gateway_actor.hpp"
#include "gateways/common/gateway_probe.hpp"
#include "actors/partition_actor.hpp"
#include "admin_dashboard.hpp"
#include "actors/probes.hpp"
#include "actors/source.hpp"
#include "cluster/cluster.hpp"
#include "cluster/tls.hpp"
#include "avro/record_reader.hpp"
#include "avro/record_writer.hpp"
#include "drift/monitor.hpp"
#include "gateways/common/caching_gateway.hpp"
#include "http/server.hpp"
#include "gateways/common/registry.hpp"
#include "kafka/producer.hpp"

#include <nlohmann/json.hpp>
#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

namespace inflow {

using namespace cluster; // the cluster actors, wire reports, TLS: what a node runs when it has node.listen

namespace {

/// The mapping from records to model inputs: feature rows, or one text template.
events::feature_map make_features(const config::pipeline_config& p, const gateways::model_info& model,
                                  const config::model_config& cfg) {
  events::identity_fields ids{p.source.id_field, p.source.key_field};
  if (!gateways::takes_text(model.task)) {
    events::feature_map features(model.input, ids);
    features.allow_missing(cfg.missing_as_nan);
    return features;
  }
  if (model.input.size() != 1)
    throw std::invalid_argument("a " + model.task + " model takes one text template as `input:`, e.g. "
                                "['{subject}: {body}']");
  return events::feature_map::text(model.input.front(), ids);
}

caf::actor_system_config& actor_config(caf::actor_system_config& cfg, const config::node_file& node) {
  // CAF's own config file is never read: unknown keys there are ignored silently.
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // CAF's default is max(cores, 4) workers; on 2 cores, 2 drained a backlog ~10 % faster with the
  // same latency. At least 2, so that a long model call never holds up every partition.
  cfg.set("scheduler.max-threads", static_cast<size_t>(std::max(2u, std::thread::hardware_concurrency())));
  if (!node.node.listen)
    return cfg;
  const auto& cluster = node.cluster;
  cfg.load<caf::io::middleman>();
  // Without heartbeats a stopped peer is never noticed; foreign CAF applications are refused.
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(cluster.heartbeat_ms)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::milliseconds(cluster.connection_timeout_ms)});
  cfg.set("middleman.app-identifiers", std::vector<std::string>{"inflow-cluster-1"});
  if (cluster.tls.enabled()) {
    cluster::log_refused_tls_peers();
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = cluster.tls.certificate;
    cfg.openssl_key = cluster.tls.key;
    cfg.openssl_cafile = cluster.tls.ca_file;
  }
  return cfg;
}

/// The models that score a pipeline's records: its versions with a share, then its shadow.
std::vector<std::string> scoring_models(const config::pipeline_config& p) {
  std::vector<std::string> out;
  for (const auto& r : p.routes)
    out.push_back(r.model);
  if (!p.shadow_model.empty())
    out.push_back(p.shadow_model);
  return out;
}

/// The models a node must load: all of them for a gateway, else those its pipelines use (for their inputs).
config::node_file with_needed_models(config::node_file cfg) {
  if (cfg.node.has("gateway"))
    return cfg;
  std::map<std::string, config::model_config> needed;
  for (const auto& [name, p] : cfg.pipelines)
    for (const auto& entry : scoring_models(p))
      if (cfg.models.count(entry)) {
        const auto& m = cfg.models.at(entry);
        needed.emplace(entry, m);
        if (!m.fallback.empty() && cfg.models.count(m.fallback))
          needed.emplace(m.fallback, cfg.models.at(m.fallback));
      }
  cfg.models = std::move(needed);
  return cfg;
}

} // namespace

struct node::impl {
  config::node_file cfg;
  metrics::registry registry;
  actors::recent_alerts alerts;
  actors::recent_alerts dead_letters;
  std::map<std::string, gateways::prepared_model> models;
  std::map<std::string, std::unique_ptr<gateways::gateway_probe>> gateway_probes; ///< of the models hosted here
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> system;
  std::map<std::string, gateways::gateway_actor> gateways;
  std::unique_ptr<kafka::producer> producer;
  struct pipeline {
    std::unique_ptr<actors::pipeline_probe> probe;
    std::unique_ptr<actors::pipeline_health> health;
    std::shared_ptr<const actors::pipeline_context> context;
    std::unique_ptr<kafka::producer> transactions; ///< exactly_once: this pipeline's own producer
    std::unique_ptr<actors::source> source;
  };
  std::map<std::string, pipeline> pipelines;
  std::unique_ptr<http::server> admin;
  cluster::cluster_endpoint cluster; ///< its actor unset when the node works alone
  std::vector<gateways::scorer_actor> routers;
  /// pipelines, and what a reload swaps (cfg, models, gateways), as the admin API and the
  /// membership actor (report()) read them from their threads
  mutable std::mutex pipelines_mutex;
  std::atomic<bool> stopped{false}; ///< read by the admin API and the main loop
  actor_watch watched; ///< gateways, cluster actors and model routers: one that ends of itself fails the node
  bool abandoned = false; ///< stop() left a consumer thread running

  std::map<std::string, size_t> topic_limits; ///< output topic -> max.message.bytes
  /// Drift events are best effort: a failed write is logged, never retried.
  struct log_failure : kafka::delivery_listener {
    void on_delivery(uint64_t, rd_kafka_resp_err_t error) override {
      if (error)
        spdlog::warn("a drift event was not written: {}", rd_kafka_err2str(error));
    }
  };
  std::shared_ptr<kafka::delivery_listener> drift_delivery = std::make_shared<log_failure>();

  http::response serve(const http::request& r);
  /// Pipeline -> why it is not ready (stopped, stalled, not in its group yet); empty when all are.
  std::map<std::string, std::string> unready_reasons() const;
  std::mutex reload_mutex; ///< one reload at a time, none once stop() began (`stopped`)
  std::map<std::string, std::string> model_files; ///< model_files(cfg) as running
  std::string config_path;  ///< where reload() reads the config again
  std::vector<std::string> config_overrides;

  void start_gateways();
  void stop_gateways();
  void start_pipelines();
  bool stop_pipelines(std::chrono::steady_clock::time_point deadline);
  /// Throws when an output topic of `next`'s pipelines does not exist (writing there would stall).
  void check_outputs(const config::node_file& next);
  nlohmann::json versions_json(const actors::pipeline_context& ctx, const actors::pipeline_probe& probe) const;
  nlohmann::json shadow_json(const actors::pipeline_context& ctx, const actors::pipeline_probe& probe) const;
  /// A model's calls as its gateway here saw them: count, latency, cost; empty when hosted elsewhere.
  nlohmann::json calls_json(const std::string& model) const;
  size_t dead_letter_limit(const std::string& topic) const;
  std::string group_id() const {
    for (const auto& [key, value] : cfg.kafka)
      if (key == "group.id")
        return value;
    return {};
  }
};

void node::impl::check_outputs(const config::node_file& next) {
  std::vector<std::string> outputs;
  for (const auto& [name, p] : next.pipelines)
    for (const auto* topic : {&p.alert.topic, &p.output_topic, &p.dead_letter_topic, &p.shadow_topic, &p.drift.topic})
      if (!topic->empty())
        outputs.push_back(*topic);
  // Writing to a topic that does not exist would stall the partitions for good. A topic created a
  // moment ago may not have reached every broker's metadata yet: ask again for a few seconds.
  auto missing = kafka::missing_topics(producer->raw(), outputs, 10'000);
  for (int i = 0; i < 5 && !missing.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    missing = kafka::missing_topics(producer->raw(), outputs, 10'000);
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& t : missing)
      names += (names.empty() ? "" : ", ") + t;
    throw std::runtime_error("output topic(s) missing: " + names + "; create them before starting the node");
  }
  topic_limits = kafka::topic_max_message_bytes(producer->raw(), outputs, 10'000);
}

nlohmann::json node::impl::calls_json(const std::string& model) const {
  auto probe = gateway_probes.find(model);
  if (probe == gateway_probes.end())
    return nullptr;
  const auto& g = *probe->second;
  auto latency = g.predict_latency.read();
  return {{"rows", g.rows.value()},
          {"batches", g.batches.value()},
          {"errors", g.errors.value()},
          {"latency_p50_ms", latency.count ? latency.quantile(0.5) * 1000 : 0.0},
          {"latency_p99_ms", latency.count ? latency.quantile(0.99) * 1000 : 0.0},
          {"cost_usd", static_cast<double>(g.cost_micro_usd.value()) / 1e6}};
}

/// Per version: its share, what it answered and alerted, and its calls (A/B at a glance).
nlohmann::json node::impl::versions_json(const actors::pipeline_context& ctx,
                                         const actors::pipeline_probe& probe) const {
  auto out = nlohmann::json::array();
  double total = 0;
  for (const auto& route : ctx.config.routes)
    total += route.weight;
  for (size_t i = 0; i < ctx.versions.size(); ++i) {
    const auto& v = probe.versions[i];
    out.push_back({{"version", ctx.versions[i].version},
                   {"model", ctx.config.routes[i].model},
                   {"share", ctx.config.routes[i].weight / total},
                   {"scored", v.scored.value()},
                   {"alerted", v.alerted.value()},
                   {"calls", calls_json(ctx.config.routes[i].model)}});
    if (!ctx.drift.empty()) {
      auto reading = ctx.drift[i]->latest();
      const auto& features = ctx.drift[i]->reference().features;
      nlohmann::json psi = nlohmann::json::object();
      for (size_t f = 0; f < reading.psi.size(); ++f)
        psi[features[f]] = reading.psi[f];
      out.back()["drift"] = {{"drifting", reading.drifting}, {"windows_compared", reading.compared},
                             {"score_ks", reading.ks}, {"psi", psi}};
    }
  }
  return out;
}

/// The shadow against each live version: how often the alert decision agreed, and by how much scores differ.
nlohmann::json node::impl::shadow_json(const actors::pipeline_context& ctx, const actors::pipeline_probe& probe) const {
  const auto& s = *probe.shadow;
  nlohmann::json out{{"version", ctx.shadow->version},
                     {"model", ctx.config.shadow_model},
                     {"topic", ctx.config.shadow_topic},
                     {"skipped", s.skipped.value()},
                     {"failed", s.failed.value()},
                     {"unmatched", s.unmatched.value()},
                     {"written", s.written.value()},
                     {"calls", calls_json(ctx.config.shadow_model)}};
  out["against"] = nlohmann::json::array();
  for (size_t i = 0; i < ctx.versions.size(); ++i) {
    const auto& v = probe.versions[i];
    auto difference = v.shadow_difference.read();
    const auto compared = v.shadow_compared.value();
    out["against"].push_back(
      {{"version", ctx.versions[i].version},
       {"compared", compared},
       {"agreement", compared ? static_cast<double>(v.shadow_agreed.value()) / compared : 0.0},
       {"score_difference_mean", difference.count ? difference.sum / difference.count : 0.0},
       {"score_difference_p99", difference.count ? difference.quantile(0.99) : 0.0}});
  }
  return out;
}

size_t node::impl::dead_letter_limit(const std::string& topic) const {
  size_t limit = producer->max_message_bytes();
  if (auto it = topic_limits.find(topic); it != topic_limits.end())
    limit = std::min(limit, it->second);
  else
    spdlog::warn("could not read max.message.bytes of {}; dead letters are cut to the producer's {} bytes only",
                 topic, limit);
  return limit;
}

namespace {

/// `output_format: avro`: alerts and results as Avro, their schemas registered under `<topic>-value`.
class avro_outcomes : public actors::output_encoder {
public:
  avro_outcomes(const config::pipeline_config& p, const std::string& task) {
    avro::registry registry(p.schema_registry);
    if (!p.alert.topic.empty())
      alerts_.emplace(registry, p.alert.topic + "-value", avro::alert_schema(p.alert.id_as, p.alert.key_as));
    if (!p.output_topic.empty())
      results_.emplace(registry, p.output_topic + "-value", avro::result_schema(task));
  }
  std::string alert(const std::string& json) const override { return alerts_->encode(json); }
  std::string result(const std::string& json) const override { return results_->encode(json); }

private:
  std::optional<avro::json_writer> alerts_, results_;
};

/// Per model with a file (`path`), what tells that file trained again in place: its size and
/// modification time. A version's name stays when its file changes; these do not.
std::map<std::string, std::string> model_files(const config::node_file& cfg) {
  std::map<std::string, std::string> out;
  for (const auto& [name, m] : cfg.models)
    if (auto path = m.provider_options.find("path"); path && path->type == config::raw_value::kind::scalar) {
      std::error_code ignored; // a missing file was refused when the model was prepared
      out[name] = fmt::format("{}@{}", std::filesystem::file_size(path->text, ignored),
                              std::filesystem::last_write_time(path->text, ignored).time_since_epoch().count());
    }
  return out;
}

/// The schemas an Avro source reads with (the subject's latest, fetched now); throws.
std::shared_ptr<avro::schemas> schemas_of(const config::pipeline_config& p) {
  return std::make_shared<avro::schemas>(std::make_shared<avro::registry>(p.schema_registry), p.source.subject);
}

/// The training profile a model version's drift is measured against; throws std::runtime_error.
drift::profile drift_profile_of(const config::model_config& m, const gateways::model_info& info) {
  std::string path = m.drift_profile;
  if (path.empty())
    if (auto file = m.provider_options.find("path"); file && file->type == config::raw_value::kind::scalar)
      path = drift::profile_path_for(file->text);
  if (path.empty())
    throw std::runtime_error("no drift profile: set drift_profile (a model.profile.json as `inflow train` writes)");
  auto profile = drift::read_profile(path);
  if (profile.features != info.input)
    throw std::runtime_error(fmt::format("the drift profile {} describes the inputs [{}], the model takes [{}]", path,
                                         fmt::join(profile.features, ", "), fmt::join(info.input, ", ")));
  if (!m.version.empty() || profile.version == info.version)
    return profile;
  throw std::runtime_error(fmt::format("the drift profile {} is of version {}, the model is {}: train again, or "
                                       "point drift_profile at its own profile",
                                       path, profile.version, info.version));
}

/// Loads every model of `cfg` and checks what only loaded models tell (inputs, versions, roles).
std::vector<config::config_error> prepare(const config::node_file& cfg, metrics::registry& registry,
                                          std::map<std::string, gateways::prepared_model>& models) {
  const auto& node = cfg.node;
  auto errors = gateways::prepare_models(cfg, registry, models);
  for (auto& [name, model] : models)
    model = gateways::with_cache(std::move(model), cfg.models.at(name), cfg.kafka, registry);
  if (node.has("ingest") && !node.has("gateway") && !node.listen)
    errors.push_back({"node.roles", 0,
                      "an ingest node without the gateway role calls models on other nodes: set node.listen and "
                      "cluster.seeds"});
  if (node.listen && cfg.cluster.tls.enabled())
    for (auto& e : cluster::check_tls_files(cfg.cluster.tls))
      errors.push_back(std::move(e));
  for (const auto& [name, p] : cfg.pipelines) {
    if (p.source.format == config::wire_format::avro)
      try {
        schemas_of(p);
      } catch (const std::exception& e) {
        errors.push_back({"pipelines." + name + ".source.subject", 0, e.what()});
      }
    const gateways::model_info* first = nullptr;
    for (const auto& entry : scoring_models(p)) {
      auto it = models.find(entry);
      if (it == models.end())
        continue;
      const auto& info = it->second.info;
      if (!first) {
        first = &info;
        try {
          make_features(p, info, cfg.models.at(entry));
        } catch (const std::invalid_argument& e) {
          errors.push_back({"models." + p.model + ".input", 0, e.what()});
        }
      }
      if (p.drift.enabled && gateways::takes_text(info.task)) {
        errors.push_back({"pipelines." + name + ".drift", 0, "drift compares feature and score distributions: not for "
                                                            "text models"});
      } else if (p.drift.enabled && entry != p.shadow_model) {
        try {
          drift_profile_of(cfg.models.at(entry), info);
        } catch (const std::runtime_error& e) {
          errors.push_back({"models." + entry + ".drift_profile", 0, e.what()});
        }
      }
      if (first != &info && info.input != first->input) { // one feature row goes to whichever version
        errors.push_back({"models." + p.model + ".versions", 0,
                          fmt::format("every version takes the same input: {} takes [{}], {} takes [{}]", entry,
                                      fmt::join(info.input, ", "), first->name, fmt::join(first->input, ", "))});
      }
    }
  }
  return errors;
}

/// What this node runs of a config: pipelines on ingest nodes only, and the models it needs.
config::node_file as_run_here(config::node_file cfg) {
  if (!cfg.node.has("ingest"))
    cfg.pipelines.clear();
  return with_needed_models(std::move(cfg));
}

} // namespace

node::node(config::node_file cfg) : impl_(new impl) {
  impl_->cfg = as_run_here(std::move(cfg));
  impl_->model_files = model_files(impl_->cfg);
  auto errors = prepare(impl_->cfg, impl_->registry, impl_->models);
  if (!errors.empty())
    throw config_failure(std::move(errors));
}

node::~node() {
  stop();
  if (impl_->abandoned)
    (void)impl_.release(); // still in use by the thread stop() left behind; the process is ending
}

namespace {

/// 200 with what a reload did, or 422 with why it was refused and every error.
http::response reload_response(const node::reload_result& r) {
  nlohmann::json body{{"reloaded", !r.refused}, {"summary", r.summary}, {"errors", nlohmann::json::array()}};
  for (const auto& e : r.errors)
    body["errors"].push_back({{"path", e.path}, {"line", e.line}, {"message", e.message}});
  return {r.refused ? 422 : 200, "application/json", body.dump() + "\n"};
}

} // namespace

void node::start() {
  auto& d = *impl_;
  if (!d.cfg.node.has("ingest") && !d.cfg.node.has("gateway"))
    spdlog::warn("this node has neither the ingest nor the gateway role: it has nothing to do (outcomes are "
                 "written by the ingest node that consumed each record; see docs/CLUSTER.md)");
  d.system = std::make_unique<caf::actor_system>(actor_config(d.caf_cfg, d.cfg));
  d.start_gateways();
  if (d.cfg.node.listen) {
    cluster::cluster_setup setup{d.cfg, d.gateways, {}, [this] { return report(); }, &d.registry};
    for (const auto& [name, model] : d.models)
      setup.models.emplace(name, model.info);
    d.cluster = cluster::start_cluster(*d.system, std::move(setup));
    d.watched.watch(d.cluster.membership, "the cluster's membership actor");
    d.watched.watch(d.cluster.routing, "the cluster's routing actor");
    d.watched.watch(d.cluster.serving, "the cluster's serving actor");
  }
  if (!d.cfg.pipelines.empty()) {
    d.producer = std::make_unique<kafka::producer>(d.cfg.kafka, kafka::properties{{"client.id", "inflow-sink"}});
    d.check_outputs(d.cfg);
  }
  d.start_pipelines();
  http::server_limits admin_limits;
  admin_limits.tls_certificate = d.cfg.node.admin_tls_certificate;
  admin_limits.tls_key = d.cfg.node.admin_tls_key;
  d.admin = std::make_unique<http::server>(d.cfg.node.admin.host, d.cfg.node.admin.port,
                                           [this, token = d.cfg.node.admin_token](const http::request& r) {
                                             if (r.target == "/" || r.target == "/index.html") // no data in it
                                               return http::response{200, "text/html; charset=utf-8",
                                                                     admin::dashboard_html};
                                             if (!token.empty() && r.target != "/livez" &&
                                                 !http::bearer_matches(r, token))
                                               return http::response{401, "text/plain; charset=utf-8",
                                                                     "missing or wrong bearer token "
                                                                     "(Authorization: Bearer ...)\n"};
                                             if (r.target == "/api/status")
                                               return http::response{200, "application/json", status_json()};
                                             if (r.target == "/api/reload" && r.method == "POST")
                                               return reload_response(reload());
                                             return impl_->serve(r);
                                           },
                                           admin_limits);
  spdlog::info("admin API on {}://{}:{}/ (dashboard; metrics at /metrics)",
               admin_limits.tls_certificate.empty() ? "http" : "https", d.cfg.node.admin.host, d.admin->port());
}

/// The models hosted here, each an actor, with their fallbacks linked.
void node::impl::start_gateways() {
  auto& d = *this;
  if (d.cfg.node.has("gateway")) {
    for (auto& [name, model] : d.models) {
      d.watched.watch(d.gateways[name] = model.spawn(*d.system), "the gateway of model " + name);
      d.gateway_probes.emplace(name, std::make_unique<gateways::gateway_probe>(d.registry, name));
    }
    for (const auto& [name, model] : d.cfg.models)
      if (!model.fallback.empty())
        caf::anon_send(d.gateways.at(name), gateways::fallback_atom::value,
                       gateways::scorer_actor(d.gateways.at(model.fallback)));
  }
}

/// Every pipeline: its consumer thread, and its partition actors as partitions are assigned.
void node::impl::start_pipelines() {
  auto& d = *this;
  std::lock_guard<std::mutex> guard(d.pipelines_mutex);
  for (const auto& [name, pcfg] : d.cfg.pipelines) {
    auto& p = d.pipelines[name];
    std::vector<gateways::model_info> versions;
    std::vector<std::string> version_names;
    for (const auto& route : pcfg.routes) {
      versions.push_back(d.models.at(route.model).info);
      version_names.push_back(versions.back().version);
    }
    std::optional<gateways::model_info> shadow;
    if (!pcfg.shadow_model.empty())
      shadow = d.models.at(pcfg.shadow_model).info;
    p.probe = std::make_unique<actors::pipeline_probe>(d.registry, name, version_names,
                                                       shadow ? shadow->version : std::string());
    p.health = std::make_unique<actors::pipeline_health>();
    const auto& model = versions.front();
    if (pcfg.delivery == config::delivery::exactly_once) {
      // A transaction holds one pipeline's outcomes and offsets. The id is stable across
      // restarts, so a restarted node aborts what its crashed self left open.
      p.transactions = std::make_unique<kafka::producer>(
        d.cfg.kafka, kafka::properties{{"client.id", "inflow-" + name},
                                       {"transactional.id", d.group_id() + "." + d.cfg.node.name + "." + name}});
      p.transactions->begin_transactions(30'000);
    }
    auto* producer = p.transactions ? p.transactions.get() : d.producer.get();
    std::vector<std::shared_ptr<drift::monitor>> drift;
    if (pcfg.drift.enabled)
      for (size_t i = 0; i < pcfg.routes.size(); ++i)
        drift.push_back(std::make_shared<drift::monitor>(
          drift_profile_of(d.cfg.models.at(pcfg.routes[i].model), versions[i]), pcfg.drift.window,
          drift::thresholds{pcfg.drift.psi_threshold, pcfg.drift.ks_threshold},
          drift::monitor::names{name, pcfg.model, versions[i].version}, d.registry,
          [this, topic = pcfg.drift.topic, name](const std::string& event) {
            if (!topic.empty())
              this->producer->produce(topic, name, event, {}, drift_delivery, 0);
          }));
    std::function<std::unique_ptr<events::format_reader>()> make_reader;
    if (pcfg.source.format == config::wire_format::avro)
      make_reader = [schemas = schemas_of(pcfg)] { return std::make_unique<avro::record_reader>(schemas); };
    std::shared_ptr<const actors::output_encoder> encoder;
    if (pcfg.output_format == config::wire_format::avro)
      encoder = std::make_shared<avro_outcomes>(pcfg, model.task);
    p.context = std::make_shared<const actors::pipeline_context>(
      actors::pipeline_context{pcfg, make_features(pcfg, model, d.cfg.models.at(pcfg.routes.front().model)), versions,
                               *p.probe, d.alerts, d.dead_letters, *p.health, d.dead_letter_limit(pcfg.dead_letter_topic),
                               shadow, std::move(drift), std::move(make_reader), std::move(encoder)});
    actors::source_options options{name,
                                   pcfg.source.topic,
                                   d.cfg.kafka,
                                   pcfg.max_in_flight,
                                   pcfg.commit_interval_ms,
                                   d.cfg.node.drain_timeout_ms,
                                   pcfg.stall_timeout_ms,
                                   p.transactions.get()};
    // A model hosted here is called directly; any other through the cluster.
    std::vector<gateways::scorer_actor> gateways;
    for (const auto& entry : scoring_models(pcfg)) {
      if (auto local = d.gateways.find(entry); local != d.gateways.end()) {
        gateways.push_back(local->second);
      } else {
        gateways.push_back(cluster::spawn_model_router(*d.system, d.cluster.routing, entry));
        d.routers.push_back(gateways.back());
        d.watched.watch(gateways.back(), "the cluster router of model " + entry);
      }
    }
    auto context = p.context;
    auto* system = d.system.get();
    auto* plain = d.producer.get();
    p.source = std::make_unique<actors::source>(
      options,
      [system, context, producer, plain, gateways](std::shared_ptr<actors::partition_shared> shared) {
        return actors::spawn_partition_actor(*system, context, *producer, *plain, gateways, std::move(shared));
      },
      *p.probe, *p.health);
    p.source->start();
    std::string shares;
    for (size_t i = 0; i < pcfg.routes.size(); ++i)
      shares += fmt::format("{}{} {}", i ? ", " : "", versions[i].version, pcfg.routes[i].weight);
    spdlog::info("pipeline {}: {} -> model {} ({}; {}{}{}) -> alerts {} / results {} / dead letters {}", name,
                 pcfg.source.topic, pcfg.model, model.task, shares, shadow ? "; shadow " : "",
                 shadow ? shadow->version : "", pcfg.alert.topic.empty() ? "-" : pcfg.alert.topic,
                 pcfg.output_topic.empty() ? "-" : pcfg.output_topic, pcfg.dead_letter_topic);
  }
}

/// Drains every pipeline and stops it, within `deadline`: its records finished, written (the
/// producer flushed) and committed; true when all were. The pipelines leave `pipelines` at once.
bool node::impl::stop_pipelines(std::chrono::steady_clock::time_point deadline) {
  std::map<std::string, pipeline> stopping;
  {
    std::lock_guard<std::mutex> guard(pipelines_mutex);
    stopping.swap(pipelines);
  }
  // In phases: stop intake everywhere and drain every pipeline at once; when a source returns,
  // its partition actors have terminated.
  for (auto& [name, p] : stopping)
    p.source->request_stop(deadline);
  bool clean = true;
  for (auto& [name, p] : stopping) {
    clean = p.source->stop() && clean;
    abandoned = abandoned || p.source->abandoned();
  }
  if (abandoned) { // a consumer thread still uses the pipelines: nothing may be freed (see abandoned())
    (void)new auto(std::move(stopping));
    return false;
  }
  // Then what the drained records wrote, with what time is left.
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (producer && !producer->flush(static_cast<int>(std::max<int64_t>(0, ms.count())))) {
    spdlog::warn("some alerts or dead letters were not acknowledged in time; their records were not committed "
                 "and will be read again");
    clean = false;
  }
  stopping.clear(); // no actor uses their probes, producers or health any more
  for (auto& r : routers)
    caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
  routers.clear();
  return clean;
}

void node::impl::stop_gateways() {
  for (auto& [name, g] : gateways)
    caf::anon_send_exit(g, caf::exit_reason::user_shutdown);
  gateways.clear();
}

bool node::stop() {
  auto& d = *impl_;
  {
    // A reload in progress finishes first, and none starts after. Not held further: the admin
    // API's shutdown below waits for a reload request, which must not wait for this.
    std::lock_guard<std::mutex> no_reload(d.reload_mutex);
    if (d.stopped || !d.system)
      return true;
    d.stopped = true;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(d.cfg.node.drain_timeout_ms);
  const bool clean = d.stop_pipelines(deadline);
  if (d.abandoned)
    return false;
  // The admin API uses the gateways and the actor system: it goes before them (its destructor
  // waits for the requests it is answering).
  d.admin.reset();
  d.producer.reset();
  // Remote calls were needed by the drain above: only now leave the cluster.
  if (d.cluster)
    cluster::stop_cluster(*d.system, d.cluster);
  d.stop_gateways();
  d.system.reset(); // waits for every actor
  return clean;
}

void node::reload_from(std::string path, std::vector<std::string> overrides) {
  impl_->config_path = std::move(path);
  impl_->config_overrides = std::move(overrides);
}

node::reload_result node::reload() {
  auto& d = *impl_;
  auto refuse = [&](std::vector<config::config_error> errors, std::string why) {
    config::note_overrides(errors, d.config_overrides);
    for (const auto& e : errors)
      spdlog::error("reload: {}", config::format_error(d.config_path, e));
    spdlog::error("reload refused: {}; the running config stays", why);
    return reload_result{true, std::move(why), std::move(errors)};
  };
  std::lock_guard<std::mutex> one_at_a_time(d.reload_mutex); // a second request waits for the first
  if (d.stopped || !d.system)
    return refuse({}, "the node is stopping");
  if (d.config_path.empty())
    return refuse({}, "this node was not started from a config file");
  auto loaded = config::load_file(d.config_path, d.config_overrides);
  if (!loaded.config)
    return refuse(std::move(loaded.errors), "the config has errors");
  auto next = as_run_here(std::move(*loaded.config));
  std::vector<config::config_error> restart_only;
  for (const char* section : {"node", "cluster", "kafka"})
    if (next.written[section] != d.cfg.written[section])
      restart_only.push_back({section, 0, "changed: a reload applies models and pipelines; restart the node to "
                                          "change node, cluster or kafka"});
  if (!restart_only.empty())
    return refuse(std::move(restart_only), "it changes what only a restart can");
  std::map<std::string, gateways::prepared_model> models;
  if (auto errors = prepare(next, d.registry, models); !errors.empty())
    return refuse(std::move(errors), "the config or a model file has errors");

  // What changed: a model's keys, or its file (the same path, trained again).
  std::vector<std::string> changed_models;
  auto files = model_files(next);
  for (const auto& [name, model] : models)
    if (auto running = d.models.find(name); running == d.models.end())
      changed_models.push_back(name + " (new)");
    else if (running->second.info.version != model.info.version)
      changed_models.push_back(fmt::format("{} ({} -> {})", name, running->second.info.version, model.info.version));
    else if (files[name] != d.model_files[name])
      changed_models.push_back(name + " (its file)");
  const bool models_changed = !changed_models.empty() || models.size() != d.models.size() ||
                              next.written["models"] != d.cfg.written["models"];
  if (!models_changed && next.written["pipelines"] == d.cfg.written["pipelines"]) {
    spdlog::info("reload: nothing changed");
    return {false, "nothing changed", {}};
  }
  if (models_changed && d.cluster && d.cfg.node.has("gateway"))
    return refuse({{"models", 0, "this node serves its models to other nodes (node.listen): they change with a "
                                 "restart of the node"}},
                  "it changes models other nodes call");
  try {
    if (!next.pipelines.empty() && !d.producer)
      d.producer = std::make_unique<kafka::producer>(next.kafka, kafka::properties{{"client.id", "inflow-sink"}});
    d.check_outputs(next);
  } catch (const std::exception& e) {
    return refuse({{"pipelines", 0, e.what()}}, "an output topic is missing");
  }

  // Apply: drain, so that no record is lost or written twice, then start on the new config.
  spdlog::info("reload: draining the pipelines");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(d.cfg.node.drain_timeout_ms);
  if (!d.stop_pipelines(deadline))
    spdlog::warn("reload: some records were not finished within node.drain_timeout_ms; the new pipelines read "
                 "them again");
  if (d.abandoned)
    return refuse({}, "a consumer thread could not be stopped (Kafka unreachable); restart the node");
  {
    std::lock_guard<std::mutex> guard(d.pipelines_mutex); // the admin API reads them
    if (models_changed) {
      d.stop_gateways();
      d.models = std::move(models);
    }
    d.cfg = std::move(next);
    d.model_files = std::move(files);
    if (models_changed)
      d.start_gateways();
  }
  d.start_pipelines();
  std::string summary = models_changed ? fmt::format("models reloaded: {}; pipelines restarted",
                                                     changed_models.empty() ? std::string("their keys changed")
                                                                            : fmt::format("{}", fmt::join(changed_models, ", ")))
                                       : std::string("pipelines restarted");
  spdlog::info("reload: {}", summary);
  return {false, std::move(summary), {}};
}

bool node::abandoned() const {
  return impl_->abandoned;
}

bool node::ready() const {
  std::lock_guard<std::mutex> guard(impl_->pipelines_mutex);
  return impl_->system != nullptr && !impl_->stopped && impl_->unready_reasons().empty();
}

std::string node::fatal_error() const {
  std::string reason;
  if (impl_->producer && impl_->producer->fatal_error(&reason))
    return "the Kafka producer failed for good: " + reason +
           ". Restart the node (a new producer); if this repeats, check the brokers' logs";
  if (auto ended = impl_->watched.first_end(); !ended.empty())
    return ended;
  std::lock_guard<std::mutex> guard(impl_->pipelines_mutex);
  for (const auto& [name, p] : impl_->pipelines)
    if (p.health->failed())
      return "pipeline " + name + ": " + p.health->problem();
  return {};
}

std::map<std::string, std::string> node::impl::unready_reasons() const {
  std::map<std::string, std::string> reasons;
  for (const auto& [name, p] : pipelines) {
    if (auto problem = p.health->problem(); !problem.empty())
      reasons[name] = problem;
    else if (!p.source->joined())
      reasons[name] = "waiting for the consumer group";
    // A model whose every call fails scores nothing: say so, not only in the log.
    for (const auto& route : cfg.pipelines.at(name).routes)
      if (auto probe = gateway_probes.find(route.model); probe != gateway_probes.end())
        if (auto failing = probe->second->failing_calls.value();
            failing >= cfg.models.at(route.model).breaker.failure_threshold)
          reasons[name] += fmt::format("{}model {}: its last {} calls failed (see the log)",
                                       reasons[name].empty() ? "" : "; ", route.model, failing);
  }
  return reasons;
}

uint16_t node::admin_port() const {
  return impl_->admin ? impl_->admin->port() : 0;
}

metrics::registry& node::metrics() {
  return impl_->registry;
}

actors::recent_alerts& node::alerts() {
  return impl_->alerts;
}

namespace {

/// `card-000123` → `*********23`: enough to tell records apart, not to identify anyone.
std::string mask(const std::string& value) {
  const size_t keep = value.size() > 6 ? 2 : 0;
  return std::string(value.size() - keep, '*') + value.substr(value.size() - keep);
}

} // namespace

std::string node::status_json() const {
  const auto& d = *impl_;
  nlohmann::json j;
  // Asked before taking the lock: the membership actor takes it too, for report().
  if (d.cluster)
    j["cluster"] = nlohmann::json::parse(cluster::cluster_status_json(*d.system, d.cluster));
  std::lock_guard<std::mutex> guard(d.pipelines_mutex); // a reload swaps what follows
  j["node"] = {{"name", d.cfg.node.name}, {"roles", d.cfg.node.roles}, {"version", INFLOW_VERSION},
               {"ready", d.system && !d.stopped && d.unready_reasons().empty()},
               {"time_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()}};
  for (const auto& [name, p] : d.pipelines) {
    nlohmann::json parts = nlohmann::json::object();
    for (auto [partition, in_flight] : p.source->partitions())
      parts[std::to_string(partition)] = {{"in_flight", in_flight}};
    j["pipelines"][name] = {{"topic", p.context->config.source.topic},
                            {"delivery", config::to_string(p.context->config.delivery)},
                            {"problem", p.health->problem()},
                            {"model", p.context->config.model},
                            {"model_version", p.context->model().version},
                            {"versions", d.versions_json(*p.context, *p.probe)},
                            {"consumed", p.probe->consumed.value()},
                            {"alerted", p.probe->alerted.value()},
                            {"dead_lettered", p.probe->dead_lettered.value()},
                            {"no_alert", p.probe->no_alert.value()},
                            {"results", p.probe->results.value()},
                            {"in_flight", p.probe->in_flight.value()},
                            {"lag", p.probe->lag.value()},
                            {"alert_fields", {{"id", p.context->config.alert.id_as},
                                              {"key", p.context->config.alert.key_as}}},
                            {"partitions", parts}};
    if (p.context->shadow)
      j["pipelines"][name]["shadow"] = d.shadow_json(*p.context, *p.probe);
  }
  for (const auto& [name, g] : d.gateways)
    j["gateways"][name] = {{"provider", d.cfg.models.at(name).provider}, {"version", d.models.at(name).info.version}};
  uint64_t seen = 0;
  auto recent = d.alerts.since(seen);
  j["recent_alerts"] = nlohmann::json::array();
  for (const auto& a : recent) {
    auto alert = nlohmann::json::parse(a);
    auto pipeline = d.cfg.pipelines.find(alert.value("pipeline", ""));
    if (!d.cfg.node.admin_personal_data && pipeline != d.cfg.pipelines.end()) // ids and keys may identify a person
      for (const auto* field : {&pipeline->second.alert.id_as, &pipeline->second.alert.key_as})
        if (auto it = alert.find(*field); it != alert.end() && it->is_string())
          *it = mask(it->get<std::string>());
    j["recent_alerts"].push_back(std::move(alert));
  }
  seen = 0;
  j["recent_dead_letters"] = nlohmann::json::array();
  for (const auto& letter : d.dead_letters.since(seen))
    j["recent_dead_letters"].push_back(nlohmann::json::parse(letter));
  return j.dump();
}

cluster::wire::report node::report() const {
  cluster::wire::report r;
  std::lock_guard<std::mutex> guard(impl_->pipelines_mutex);
  for (const auto& [name, p] : impl_->pipelines)
    for (auto [partition, in_flight] : p.source->partitions())
      r.partitions.push_back({name, partition, in_flight});
  return r;
}

http::response node::impl::serve(const http::request& r) {
  if (r.method != "GET" && r.method != "HEAD")
    return {405, "text/plain; charset=utf-8", "method not allowed\n"};
  auto path = r.target.substr(0, r.target.find('?'));
  if (path == "/livez")
    return {200, "text/plain; charset=utf-8", "ok\n"};
  if (path == "/readyz") {
    // 503 with every pipeline's reason: stopped, stalled, or not yet in its group.
    std::lock_guard<std::mutex> guard(pipelines_mutex);
    auto reasons = unready_reasons();
    if (reasons.empty())
      return {200, "text/plain; charset=utf-8", "ready\n"};
    return {503, "application/json", nlohmann::json{{"ready", false}, {"pipelines", reasons}}.dump() + "\n"};
  }
  if (path == "/metrics")
    return {200, "text/plain; version=0.0.4; charset=utf-8", registry.render()};
  return {404, "text/plain; charset=utf-8", "not found; try / (the dashboard), /livez, /readyz, /metrics, /api/status, POST /api/reload\n"};
}

} // namespace inflow
