#include "gateways/common/gateway_actor.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

namespace inflow::gateways {

caf::error end_on_exception(caf::scheduled_actor* self, std::exception_ptr& e) {
  std::string what = "an exception of unknown type";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
  }
  spdlog::critical("actor {} ({}) ended by an exception: {}", self->name(), self->id(), what);
  return caf::make_error(caf::sec::runtime_error, std::move(what));
}

} // namespace inflow::gateways
