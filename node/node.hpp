#pragma once
// One Inflow node: its actor system, and by role its model gateways
// (gateway), pipelines (ingest) and the producer that writes their outcomes
// (sink); the cluster actors when it has node.listen; the admin HTTP API.

#include "actors/recent_alerts.hpp"
#include "admin/metrics.hpp"
#include "cluster/wire.hpp"
#include "config/config.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace inflow {

/// Start-up failed because of the configuration (exit 78): every error found.
struct config_failure : std::runtime_error {
  explicit config_failure(std::vector<config::config_error> e)
    : std::runtime_error("configuration error"), errors(std::move(e)) {}
  std::vector<config::config_error> errors;
};

class node {
public:
  /// Loads and checks the models; throws config_failure or std::runtime_error.
  explicit node(config::node_file cfg);
  ~node();

  /// Starts gateways, pipelines and the admin API.
  void start();

  /// What a reload did: applied it, found nothing changed, or refused it (the running config stays).
  struct reload_result {
    bool refused = false;
    std::string summary; ///< what changed, or why it was refused
    std::vector<config::config_error> errors;
  };
  /// Where reload() reads the config again: the file and the --set values the node started with.
  void reload_from(std::string path, std::vector<std::string> overrides);
  /// SIGHUP and POST /api/reload: reads the config and model files again and checks them as a start
  /// would; if they pass, drains the pipelines (every record finished and committed), swaps the
  /// changed models and starts the pipelines again on the new config. node, cluster and kafka
  /// changes need a restart. Safe from any thread; one reload at a time.
  reload_result reload();
  /// Stops taking records, drains and commits, and stops everything, within node.drain_timeout_ms.
  /// True if every record consumed was finished and committed. Idempotent.
  bool stop();
  /// stop() could not wait for a consumer thread that librdkafka holds (Kafka unreachable): the
  /// process must end without running destructors (std::_Exit) once it has said so.
  bool abandoned() const;

  bool ready() const;
  /// Why the node cannot go on at all (its producer failed for good), or empty.
  std::string fatal_error() const;
  uint16_t admin_port() const;
  metrics::registry& metrics();
  actors::recent_alerts& alerts();
  std::string status_json() const;
  /// This node's partitions and their in-flight records.
  cluster::wire::report report() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace inflow
