#include "gateways/common/gateway_actor.hpp"

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include <future>
#include <stdexcept>

using namespace inflow::gateways;

TEST_CASE("an actor ended by an exception says which in its exit reason", "[gateway]") {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto broken = system.spawn([](scorer_actor::pointer self) -> scorer_actor::behavior_type {
    self->set_exception_handler(end_on_exception);
    return {[](score_request&) { throw std::out_of_range("row 3 of 2"); }};
  });
  std::promise<std::string> ended;
  broken->attach_functor([&ended](const caf::error& reason) { ended.set_value(caf::to_string(reason)); });
  caf::anon_send(broken, score_request{});
  auto reason = ended.get_future().get();
  CHECK(reason.find("runtime_error") != std::string::npos);
  CHECK(reason.find("row 3 of 2") != std::string::npos);
}
