#pragma once
// The router role: calls for models hosted on other nodes. It batches them per model (the
// gateways' batcher), sends each batch to the hosting node with the fewest of this node's calls
// outstanding, hands the results back to the partitions they came from, sends a call elsewhere
// at once when its node leaves, and fails it when no node hosts the model in time.

#include "cluster/endpoint.hpp"
#include "cluster/membership.hpp"
#include "config/config.hpp"
#include "gateways/common/gateway_actor.hpp"


#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace inflow::metrics {
class registry;
}

namespace inflow::cluster {

/// (route_atom, model, request): delegated by a model's router, so that the caller is the sender.
using route_atom = caf::atom_constant<caf::atom("route")>;
/// (view_atom, view): the cluster as the membership actor sees it now.
using view_atom = caf::atom_constant<caf::atom("view")>;

/// What routing needs of the cluster: who hosts what, how to reach each peer, and which models
/// a peer could make no call for (its part of the model's rate limit is nothing).
struct cluster_view {
  membership members;
  std::map<std::string, endpoint_actor> links;          ///< each peer's endpoint, by name
  std::map<std::string, std::set<std::string>> unfunded; ///< peer -> models it has no part of a limit for
};

/// Calls in flight, kept by the routing (out) and serving (in) actors, read for status and reports.
struct call_counts {
  std::atomic<uint64_t> out{0};
  std::atomic<uint64_t> in{0};
};

using routing_actor = caf::typed_actor<caf::reacts_to<route_atom, std::string, gateways::score_request>,
                                       caf::reacts_to<gateways::score_reply, std::string>, ///< from the named node
                                       caf::reacts_to<view_atom, cluster_view>,
                                       caf::reacts_to<endpoint_atom, endpoint_actor>>;

struct routing_setup {
  std::shared_ptr<const config::node_file> cfg;
  std::map<std::string, gateways::model_info> models; ///< every model this node knows
  std::shared_ptr<call_counts> counts;
  metrics::registry* metrics = nullptr;
};

routing_actor spawn_routing(caf::actor_system& system, routing_setup setup);

/// The scorer for a model hosted on other nodes: hands its calls to the routing actor.
gateways::scorer_actor spawn_model_router(caf::actor_system& system, const routing_actor& routing,
                                          const std::string& model);

} // namespace inflow::cluster

// Never leaves the process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::cluster::cluster_view)
