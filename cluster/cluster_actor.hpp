#pragma once
// The cluster actor: one per node that has `node.listen`. It is the node's
// published endpoint and does everything that crosses nodes:
//   - membership: dials the seeds, exchanges `hello` (roles, gateways, peers),
//     learns every other node from them, monitors each peer (heartbeats on);
//   - routing: model calls for a model this node does not host are batched
//     and sent, as one message per batch, to the node hosting it with the
//     fewest calls outstanding; a call to a node that goes away is sent
//     elsewhere at once, one not answered in time too;
//   - serving: calls from other nodes go to this node's gateways, results back;
//   - the rate budget: tells each local gateway its part of the model's limits;
//   - status: every node's partitions and in-flight work, for `inflow status`.

#include "cluster/wire.hpp"
#include "config/config.hpp"
#include "gateways/common/gateway_api.hpp"

#include <caf/fwd.hpp>

#include <functional>
#include <map>
#include <string>

namespace inflow::metrics {
class registry;
}

namespace inflow::cluster {

struct cluster_setup {
  config::node_file cfg;
  std::map<std::string, caf::actor> gateways;           ///< hosted here, by model
  std::map<std::string, gateways::model_info> models;   ///< every model this node knows
  std::function<wire::report()> report;                 ///< this node's partitions; called on the actor
  metrics::registry* metrics = nullptr;
};

/// Spawns the cluster actor, publishes it on node.listen (with mutual TLS when
/// cluster.tls is set) and starts joining. Returns the port it listens on;
/// throws std::runtime_error with what to do when it cannot listen.
uint16_t start_cluster(caf::actor_system& system, cluster_setup setup, caf::actor& out);

/// An actor that hands calls for `model` to the cluster actor (which routes them).
caf::actor spawn_model_router(caf::actor_system& system, const caf::actor& cluster, const std::string& model);

/// The cluster as this node sees it, as JSON (`nodes`: one entry per node).
std::string cluster_status_json(caf::actor_system& system, const caf::actor& cluster);

/// Stops publishing and stops the actor; the system can then shut down.
void stop_cluster(caf::actor_system& system, const caf::actor& cluster, uint16_t port, bool tls);

} // namespace inflow::cluster
