#pragma once
// What nodes send each other: wire messages (cluster/wire.hpp) as bytes, to each node's
// published endpoint (its membership actor). Calls and answers leave in the endpoint's name, so
// a peer answers and tells nodes apart by it.

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <vector>

namespace inflow::cluster {

using endpoint_actor = caf::typed_actor<caf::reacts_to<std::vector<char>>>;

/// (endpoint_atom, endpoint): this node's endpoint, for the actors that send in its name.
using endpoint_atom = caf::atom_constant<caf::atom("endpoint")>;

} // namespace inflow::cluster
