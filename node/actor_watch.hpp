#pragma once
// The actors a node's records depend on (gateways, the cluster's actors, model routers) end only
// when the node stops them. One that ends of itself (an exception: a bug) would leave its callers'
// records in flight for good; the watch keeps why, and the node fails with it (node::fatal_error).

#include <caf/fwd.hpp>
#include <caf/actor_cast.hpp>

#include <memory>
#include <mutex>
#include <string>

namespace inflow {

class actor_watch {
public:
  /// Watches `actor`; `what` names it in the reason ("the gateway of model fraud").
  template <class Handle>
  void watch(const Handle& actor, std::string what) {
    attach(caf::actor_cast<caf::strong_actor_ptr>(actor), std::move(what));
  }
  /// Why the first watched actor ended without being stopped; empty while none has.
  std::string first_end() const;

private:
  struct ended {
    std::mutex mutex;
    std::string why;
  };
  void attach(const caf::strong_actor_ptr& actor, std::string what);
  std::shared_ptr<ended> ended_ = std::make_shared<ended>(); ///< shared with the actors' functors
};

} // namespace inflow
