#pragma once
// CAF declarations of what a gateway actor takes: a score_request, answered with a
// score_reply; (fallback_atom, actor): where to send what its own model cannot score;
// (budget_atom, requests/s, tokens/min, paused): this node's part of the model's limits
// when several nodes host it (cluster/budget.hpp splits them); (flush_atom, generation):
// its own linger timer. Include only in translation units that run actors.

#include "gateways/common/gateway_api.hpp"

#include <caf/all.hpp>

namespace inflow::gateways {

using flush_atom = caf::atom_constant<caf::atom("flush")>;
using fallback_atom = caf::atom_constant<caf::atom("fallback")>;
using budget_atom = caf::atom_constant<caf::atom("budget")>;

} // namespace inflow::gateways

// These never leave the process (cross-node messages are msgpack, cluster/wire.hpp).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::gateways::score_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::gateways::score_reply)
