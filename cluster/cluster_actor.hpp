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
#include "gateways/common/gateway_actor.hpp"

#include <caf/actor.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace inflow::metrics {
class registry;
}

namespace inflow::cluster {

struct cluster_setup {
  config::node_file cfg;
  std::map<std::string, gateways::gateway_actor> gateways; ///< hosted here, by model
  std::map<std::string, gateways::model_info> models;   ///< every model this node knows
  std::function<wire::report()> report;                 ///< this node's partitions; called on the actor
  metrics::registry* metrics = nullptr;
};

class frame_guard;

/// The node's part of the cluster: the actor, published by CAF on loopback, and the
/// frame guard that owns node.listen in front of it (cluster/frame_guard.hpp).
struct cluster_endpoint {
  caf::actor actor;
  uint16_t caf_port = 0;
  std::shared_ptr<frame_guard> guard;
};

/// Spawns the cluster actor, publishes it behind a frame guard on node.listen (with
/// mutual TLS when cluster.tls is set) and starts joining. Throws std::runtime_error
/// with what to do when it cannot listen.
cluster_endpoint start_cluster(caf::actor_system& system, cluster_setup setup);

/// The scorer for a model hosted on other nodes: hands its calls to the cluster actor (which
/// routes them).
gateways::scorer_actor spawn_model_router(caf::actor_system& system, const caf::actor& cluster, const std::string& model);

/// The cluster as this node sees it, as JSON (`nodes`: one entry per node).
std::string cluster_status_json(caf::actor_system& system, const caf::actor& cluster);

/// Closes the cluster port, stops publishing and stops the actor; the system can then shut down.
void stop_cluster(caf::actor_system& system, cluster_endpoint& cluster);

} // namespace inflow::cluster
