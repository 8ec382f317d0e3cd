#include "node/actor_watch.hpp"

#include "gateways/common/gateway_actor.hpp"

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

using namespace inflow;

namespace {

/// An actor with a bug: every request throws `what`.
gateways::scorer_actor::behavior_type broken_scorer(gateways::scorer_actor::pointer self, std::string what) {
  self->set_exception_handler(gateways::end_on_exception);
  return {[what](gateways::score_request&) { throw std::out_of_range(what); }};
}

/// The watch learns of an end as the actor ends, which may be just after wait_for() returns.
std::string first_end_within_10s(const actor_watch& watch) {
  for (int i = 0; i < 1000 && watch.first_end().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return watch.first_end();
}

} // namespace

TEST_CASE("the watch keeps why the first watched actor ended of itself, not those stopped", "[node]") {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  caf::scoped_actor self{system};
  actor_watch watch;
  // (Spawned with an argument: CAF 0.17 binds a null reference for a function spawned without, which UBSan reports.)
  auto stopped = system.spawn(broken_scorer, std::string("never thrown"));
  auto broken = system.spawn(broken_scorer, std::string("row 3 of 2"));
  auto later = system.spawn(broken_scorer, std::string("a second bug"));
  watch.watch(stopped, "the gateway of model stopped");
  watch.watch(broken, "the gateway of model fraud");
  watch.watch(later, "the cluster router of model later");

  self->send_exit(stopped, caf::exit_reason::user_shutdown); // as the node stops its actors
  self->wait_for(stopped);
  CHECK(watch.first_end().empty());

  caf::anon_send(broken, gateways::score_request{});
  self->wait_for(broken);
  auto why = first_end_within_10s(watch);
  CHECK(why.find("the gateway of model fraud ended") == 0);
  CHECK(why.find("row 3 of 2") != std::string::npos);
  CHECK(why.find("please report it") != std::string::npos);

  caf::anon_send(later, gateways::score_request{});
  self->wait_for(later);
  CHECK(watch.first_end() == why); // the first end is the cause; what follows may be its consequence
}
