#include "gateways/common/gateway_actor.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

namespace inflow::gateways {

caf::error end_on_exception(caf::scheduled_actor* self, std::exception_ptr& e) {
  auto what = what_of(e);
  spdlog::critical("actor {} ({}) ended by an exception: {}", self->name(), self->id(), what);
  return caf::make_error(caf::sec::runtime_error, std::move(what));
}

} // namespace inflow::gateways
