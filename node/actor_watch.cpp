#include "node/actor_watch.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>

namespace inflow {

void actor_watch::attach(const caf::strong_actor_ptr& actor, std::string what) {
  actor->get()->attach_functor([ended = ended_, what = std::move(what)](const caf::error& reason) {
    if (!reason || reason == caf::exit_reason::user_shutdown) // ended normally, or stopped
      return;
    std::lock_guard<std::mutex> guard(ended->mutex);
    if (ended->why.empty())
      ended->why = fmt::format("{} ended: {} (a bug in Inflow; please report it with this log)", what,
                               caf::to_string(reason));
  });
}

std::string actor_watch::first_end() const {
  std::lock_guard<std::mutex> guard(ended_->mutex);
  return ended_->why;
}

} // namespace inflow
