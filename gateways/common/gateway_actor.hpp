#pragma once
// The gateway role as CAF checks it at compile time: the typed interfaces of whoever scores
// (gateways, and the router to a model on another node) and of whoever asks. Light: CAF's
// forward declarations only; code that spawns or runs actors includes <caf/all.hpp> itself.

#include "gateways/common/gateway_api.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>

#include <exception>
#include <string>

namespace inflow::gateways {

/// A gateway's own linger timer: (flush_atom, generation).
using flush_atom = caf::atom_constant<caf::atom("flush")>;
/// (fallback_atom, scorer): where to send what its own model cannot score.
using fallback_atom = caf::atom_constant<caf::atom("fallback")>;
/// (budget_atom, requests/s, tokens/min, paused): this node's part of the model's limits when
/// several nodes host it (cluster/budget.hpp splits them).
using budget_atom = caf::atom_constant<caf::atom("budget")>;

/// Takes score requests and answers each sender with score_reply messages, in parts that together
/// cover every id: every gateway, and the router to a model on another node.
using scorer_actor = caf::typed_actor<caf::reacts_to<score_request>>;

/// Whoever sends a scorer requests: a partition, the cache in front of a model, the cluster serving
/// another node.
using caller_actor = caf::typed_actor<caf::reacts_to<score_reply>>;

/// A model this node hosts (the embedded and remote gateways, the cache in front of either).
using gateway_actor = caf::typed_actor<caf::reacts_to<score_request>, caf::reacts_to<fallback_atom, scorer_actor>,
                                       caf::reacts_to<budget_atom, double, double, bool>>;

/// The text of an exception CAF caught in an actor's handler.
inline std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

/// For set_exception_handler: logs the exception and ends the actor with its text in the exit
/// reason, where those watching it read why (CAF's default prints it to stdout and keeps
/// `runtime_error` alone).
caf::error end_on_exception(caf::scheduled_actor* self, std::exception_ptr& e);

} // namespace inflow::gateways

// These never leave the process (cross-node messages are msgpack, cluster/wire.hpp).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::gateways::score_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::gateways::score_reply)
