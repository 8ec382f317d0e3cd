#pragma once
// Calls from other nodes to the models this node hosts: each goes to the local gateway under
// relay ids of this node's own, and the gateway's answers go back to the calling node.

#include "cluster/endpoint.hpp"
#include "cluster/wire.hpp"
#include "gateways/common/gateway_actor.hpp"


#include <map>
#include <memory>
#include <string>

namespace inflow::metrics {
class registry;
}

namespace inflow::cluster {

struct call_counts;

/// (left_atom, node): a peer left; its calls need no answer.
using left_atom = caf::atom_constant<caf::atom("left")>;

using serving_actor =
  caf::typed_actor<caf::reacts_to<wire::score_call, endpoint_actor, std::string>, ///< from a peer: its endpoint, name
                   caf::reacts_to<gateways::score_reply>,                          ///< a local gateway's answer
                   caf::reacts_to<left_atom, std::string>, caf::reacts_to<endpoint_atom, endpoint_actor>>;

struct serving_setup {
  std::string node; ///< this node's name, for refusals
  std::map<std::string, gateways::gateway_actor> gateways; ///< hosted here, by model
  std::map<std::string, gateways::model_info> models;
  std::shared_ptr<call_counts> counts;
  metrics::registry* metrics = nullptr;
};

serving_actor spawn_serving(caf::actor_system& system, serving_setup setup);

} // namespace inflow::cluster

// Never leaves the process as such (peers send it msgpack-encoded).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::cluster::wire::score_call)
