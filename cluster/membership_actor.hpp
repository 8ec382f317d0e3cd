#pragma once
// The node's published cluster endpoint: it dials the seeds, exchanges `hello` (roles, gateways,
// peers), learns every other node from them and monitors each (heartbeats on); it decodes what
// peers send and hands calls to the serving actor and results to the routing actor; it splits
// the rate limits of the models hosted here (cluster/budget.hpp) and reports this node's work.

#include "cluster/routing_actor.hpp"
#include "cluster/serving_actor.hpp"
#include "cluster/wire.hpp"
#include "config/config.hpp"
#include "gateways/common/gateway_actor.hpp"


#include <functional>
#include <map>
#include <memory>
#include <string>

namespace inflow::metrics {
class registry;
}

namespace inflow::cluster {

/// (listen_atom, address): the address peers reach this node at.
using listen_atom = caf::atom_constant<caf::atom("listen")>;
/// (join_atom): dial the seeds.
using join_atom = caf::atom_constant<caf::atom("join")>;
/// (status_atom) -> the cluster as JSON.
using status_atom = caf::atom_constant<caf::atom("status")>;

/// The endpoint peers send to, and what this node tells it.
using membership_actor = endpoint_actor::extend<caf::reacts_to<listen_atom, std::string>, caf::reacts_to<join_atom>,
                                                caf::replies_to<status_atom>::with<std::string>>;

struct membership_setup {
  std::shared_ptr<const config::node_file> cfg;
  std::map<std::string, gateways::gateway_actor> gateways; ///< hosted here, by model
  std::map<std::string, gateways::model_info> models;      ///< every model this node knows
  std::function<wire::report()> report;                    ///< this node's partitions; called on the actor
  routing_actor routing;
  serving_actor serving;
  std::shared_ptr<call_counts> counts;
  metrics::registry* metrics = nullptr;
};

membership_actor spawn_membership(caf::actor_system& system, membership_setup setup);

} // namespace inflow::cluster
