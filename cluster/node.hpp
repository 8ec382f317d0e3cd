#pragma once
// One Inflow node: its actor system, model gateways, pipelines, the sink
// producer and the admin HTTP API. Today a node runs every role alone;
// cluster membership over CAF's middleman builds on this.

#include "actors/recent_alerts.hpp"
#include "admin/metrics.hpp"
#include "config/config.hpp"

#include <memory>
#include <stdexcept>
#include <vector>

namespace inflow::cluster {

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
  /// Stops taking records, drains and commits, and stops everything. Idempotent.
  void stop();

  bool ready() const;
  uint16_t admin_port() const;
  metrics::registry& metrics();
  actors::recent_alerts& alerts();
  std::string status_json() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace inflow::cluster
