#include "cluster/serving_actor.hpp"

#include "admin/metrics.hpp"
#include "cluster/routing_actor.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>

namespace inflow::cluster {

namespace {

using gateways::failure;
using gateways::score_reply;
namespace relay_id = gateways::relay_id;

/// A call from another node, in the hands of a local gateway.
struct served_call {
  endpoint_actor caller;
  std::string caller_name;
  std::vector<uint64_t> caller_ids; ///< by the index in our relay ids
  size_t left = 0;
};

struct serving_state {
  std::string node;
  endpoint_actor endpoint; ///< answers leave in its name
  std::map<std::string, gateways::gateway_actor> gateways;
  std::map<std::string, gateways::model_info> models;
  std::shared_ptr<call_counts> counts;
  std::map<uint64_t, served_call> served;
  uint64_t next_served = 1;
  metrics::counter* calls_served = nullptr;
  static inline const char* name = "inflow.cluster.serving";
};

using serving_pointer = serving_actor::stateful_pointer<serving_state>;

void serve(serving_pointer self, wire::score_call& call, const endpoint_actor& from, const std::string& from_name) {
  auto& st = self->state;
  auto& request = call.request;
  auto refuse = [&](failure kind, const std::string& why) {
    caf::send_as(st.endpoint, from, wire::encode(gateways::failed_reply(std::move(request.ids), kind, why, call.model)));
  };
  auto gw = st.gateways.find(call.model);
  if (gw == st.gateways.end())
    return refuse(failure::unreachable, fmt::format("node {} does not host model {}", st.node, call.model));
  const auto& info = st.models.at(call.model);
  const auto n = request.ids.size();
  const bool text = gateways::takes_text(info.task);
  if (n == 0 || n >= relay_id::max_inputs ||
      (text ? request.texts.size() != n || !request.rows.empty()
            : request.rows.size() / info.input.size() != n || request.rows.size() % info.input.size() != 0 ||
                !request.texts.empty()))
    return refuse(failure::rejected, "malformed call: inputs do not match ids and the model's input width");
  auto seq = st.next_served++;
  auto caller_ids = std::exchange(request.ids, {});
  for (size_t i = 0; i < n; ++i)
    request.ids.push_back(relay_id::make(seq, i));
  st.served.emplace(seq, served_call{from, from_name, std::move(caller_ids), n});
  st.counts->in = st.served.size();
  st.calls_served->inc();
  self->send(gw->second, std::move(request));
}

/// A local gateway answered (part of) a served call: send it to the caller under its own ids.
void on_gateway_reply(serving_pointer self, score_reply& reply) {
  auto& st = self->state;
  if (reply.ids.empty())
    return;
  auto it = st.served.find(relay_id::call_of(reply.ids.front()));
  if (it == st.served.end())
    return;
  auto& served = it->second;
  for (auto& id : reply.ids) // one part of one request: our own relay ids, all of this call
    id = served.caller_ids[relay_id::index_of(id)];
  served.left -= std::min(served.left, reply.ids.size());
  caf::send_as(st.endpoint, served.caller, wire::encode(reply));
  if (served.left == 0)
    st.served.erase(it);
  st.counts->in = st.served.size();
}

serving_actor::behavior_type serving(serving_pointer self, serving_setup setup) {
  self->set_exception_handler(gateways::end_on_exception); // the node watches it (node/actor_watch.hpp)
  auto& st = self->state;
  st.node = std::move(setup.node);
  st.gateways = std::move(setup.gateways);
  st.models = std::move(setup.models);
  st.counts = std::move(setup.counts);
  st.calls_served =
    &setup.metrics->get_counter("inflow_cluster_calls_served_total", "Model calls from other nodes served here.");
  return {
    [=](wire::score_call& call, const endpoint_actor& from, const std::string& from_name) {
      serve(self, call, from, from_name);
    },
    [=](score_reply& reply) { on_gateway_reply(self, reply); },
    [=](left_atom, const std::string& node) {
      auto& served = self->state.served;
      for (auto s = served.begin(); s != served.end();)
        s = s->second.caller_name == node ? served.erase(s) : std::next(s);
      self->state.counts->in = served.size();
    },
    [=](endpoint_atom, endpoint_actor& endpoint) { self->state.endpoint = std::move(endpoint); },
  };
}

} // namespace

serving_actor spawn_serving(caf::actor_system& system, serving_setup setup) {
  return system.spawn(serving, std::move(setup));
}

} // namespace inflow::cluster
