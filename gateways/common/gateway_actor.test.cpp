#include "gateways/common/gateway_actor.hpp"

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include <future>
#include <stdexcept>
#include <string>

using namespace inflow::gateways;

namespace {

/// A scorer with a bug: every request throws `what`.
scorer_actor::behavior_type broken_scorer(scorer_actor::pointer self, std::string what) {
  self->set_exception_handler(end_on_exception);
  return {[what](score_request&) { throw std::out_of_range(what); }};
}

} // namespace

TEST_CASE("an actor ended by an exception says which in its exit reason", "[gateway]") {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  // (Spawned with an argument: CAF 0.17 binds a null reference for a function spawned without, which UBSan reports.)
  auto broken = system.spawn(broken_scorer, std::string("row 3 of 2"));
  std::promise<std::string> ended;
  broken->attach_functor([&ended](const caf::error& reason) { ended.set_value(caf::to_string(reason)); });
  caf::anon_send(broken, score_request{});
  auto reason = ended.get_future().get();
  CHECK(reason.find("runtime_error") != std::string::npos);
  CHECK(reason.find("row 3 of 2") != std::string::npos);
}
