#pragma once
// A node's part of the cluster, on every node that has `node.listen`: three actors, one role each.
//   - membership (cluster/membership_actor.hpp): the published endpoint; links to every other
//     node, decodes what peers send, splits the rate limits of the models hosted here, reports;
//   - routing (cluster/routing_actor.hpp): calls for models hosted on other nodes, batched and
//     sent to the hosting node with the fewest calls outstanding, sent elsewhere when it leaves;
//   - serving (cluster/serving_actor.hpp): calls from other nodes to this node's gateways.

#include "cluster/membership_actor.hpp"
#include "cluster/routing_actor.hpp"
#include "cluster/serving_actor.hpp"

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
  std::map<std::string, gateways::model_info> models;      ///< every model this node knows
  std::function<wire::report()> report;                    ///< this node's partitions; called on an actor
  metrics::registry* metrics = nullptr;
};

class frame_guard;

/// The node's part of the cluster: its actors, the membership one published by CAF on loopback,
/// and the frame guard that owns node.listen in front of it (cluster/frame_guard.hpp).
struct cluster_endpoint {
  membership_actor membership;
  routing_actor routing;
  serving_actor serving;
  uint16_t caf_port = 0;
  std::shared_ptr<frame_guard> guard;
  explicit operator bool() const { return static_cast<bool>(membership); }
};

/// Spawns the actors, publishes the membership actor behind a frame guard on node.listen (with
/// mutual TLS when cluster.tls is set) and starts joining. Throws std::runtime_error with what to
/// do when it cannot listen.
cluster_endpoint start_cluster(caf::actor_system& system, cluster_setup setup);

/// The cluster as this node sees it, as JSON (`nodes`: one entry per node).
std::string cluster_status_json(caf::actor_system& system, const cluster_endpoint& cluster);

/// Closes the cluster port, stops publishing and stops the actors; the system can then shut down.
void stop_cluster(caf::actor_system& system, cluster_endpoint& cluster);

} // namespace inflow::cluster
