#include "cluster/routing_actor.hpp"

#include "admin/metrics.hpp"
#include "cluster/wire.hpp"
#include "gateways/common/batcher.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace inflow::cluster {

namespace {

using expire_atom = caf::atom_constant<caf::atom("expire")>;
using gateways::failure;
using gateways::flush_atom;
using gateways::score_reply;
namespace relay_id = gateways::relay_id;

using batch_t = gateways::batcher<caf::strong_actor_ptr>::batch;

/// A batch this node sent (or is about to send) to a gateway on another node.
struct outgoing_call {
  std::string model;
  batch_t batch;
  std::vector<size_t> part_end; ///< batch index where each part ends
  std::vector<bool> answered;
  size_t left = 0;
  std::string peer; ///< where it is now; empty while no node hosts the model
  int attempts = 0;
  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
};

struct routing_state {
  std::shared_ptr<const config::node_file> cfg;
  std::map<std::string, gateways::model_info> models;
  std::shared_ptr<call_counts> counts;
  endpoint_actor endpoint; ///< calls leave in its name
  std::optional<cluster_view> view;
  std::map<std::string, uint64_t> calls_at; ///< our unanswered calls, by the peer that has them
  std::map<std::string, gateways::batcher<caf::strong_actor_ptr>> pending;
  std::map<uint64_t, outgoing_call> calls;
  uint64_t next_call = 1;
  std::set<std::string> warned_unhosted;
  std::set<std::string> slow_peers; ///< peers warned of for a late answer, until they answer again
  metrics::counter* calls_sent = nullptr;
  metrics::counter* calls_rerouted = nullptr;
  static inline const char* name = "inflow.cluster.routing";
};

/// The router role and its own timers: a model's linger, a call's expiry (id, attempt).
using routing_impl = routing_actor::extend<caf::reacts_to<flush_atom, std::string, uint64_t>,
                                           caf::reacts_to<expire_atom, uint64_t, uint64_t>>;
using routing_pointer = routing_impl::stateful_pointer<routing_state>;

size_t max_bytes(const routing_state& st) {
  return static_cast<size_t>(st.cfg->cluster.max_message_bytes);
}

void count_calls(routing_state& st) {
  st.counts->out = st.calls.size();
}

/// Sends the unanswered inputs of a call to `peer`, in messages under the size cap.
void transmit(routing_pointer self, uint64_t id, outgoing_call& call) {
  auto& st = self->state;
  const auto width = st.models.at(call.model).input.size();
  const bool text = gateways::takes_text(st.models.at(call.model).task);
  wire::score_call msg{call.model, {}};
  auto& request = msg.request;
  const size_t fixed = wire::call_size_bound(0, 0, 0, 0);
  size_t bytes = fixed;
  const auto& to = st.view->links.at(call.peer);
  auto flush = [&] {
    if (request.ids.empty())
      return;
    request.traceparent = call.batch.traceparent;
    caf::send_as(st.endpoint, to, wire::encode(msg));
    request = {};
    bytes = fixed;
  };
  std::vector<uint64_t> too_large;
  for (size_t i = 0; i < call.batch.size(); ++i) {
    if (call.answered[i])
      continue;
    size_t size = (text ? wire::call_size_bound(1, 0, call.batch.texts[i].size(), 1)
                        : wire::call_size_bound(1, width, 0, 0)) - fixed;
    if (fixed + size > max_bytes(st)) {
      too_large.push_back(relay_id::make(id, i));
      continue;
    }
    if (bytes + size > max_bytes(st))
      flush();
    request.ids.push_back(relay_id::make(id, i));
    if (text)
      request.texts.push_back(call.batch.texts[i]);
    else
      request.rows.insert(request.rows.end(), call.batch.rows.begin() + static_cast<std::ptrdiff_t>(i * width),
                          call.batch.rows.begin() + static_cast<std::ptrdiff_t>((i + 1) * width));
    bytes += size;
  }
  flush();
  ++st.calls_at[call.peer];
  ++call.attempts;
  st.calls_sent->inc();
  self->delayed_send(self, std::chrono::milliseconds(st.cfg->cluster.request_timeout_ms), expire_atom::value, id,
                     static_cast<uint64_t>(call.attempts));
  if (!too_large.empty()) // answered like any other failure, once this call is sent
    self->send(self, gateways::failed_reply(std::move(too_large), failure::rejected,
                                            "input too large to send to another node "
                                            "(over cluster.max_message_bytes)", call.model),
               st.cfg->node.name);
}

/// How busy a peer is for a call of `model`: the calls it has of ours, and last of all a node
/// whose part of the model's rate limit is nothing (it could make no call).
uint64_t call_load(const routing_state& st, const std::string& peer, const std::string& model) {
  auto it = st.calls_at.find(peer);
  const uint64_t calls = it == st.calls_at.end() ? 0 : it->second;
  auto unfunded = st.view->unfunded.find(peer);
  return calls + (unfunded != st.view->unfunded.end() && unfunded->second.count(model) ? uint64_t(1) << 32 : 0);
}

/// Sends a call to the hosting node with the fewest calls outstanding, or
/// parks it until a node hosting the model joins.
void route(routing_pointer self, uint64_t id) {
  auto& st = self->state;
  auto& call = st.calls.at(id);
  std::optional<std::string> peer;
  if (st.view)
    peer = st.view->members.pick(call.model, [&](const std::string& name) { return call_load(st, name, call.model); });
  if (!peer) {
    call.peer.clear();
    if (st.warned_unhosted.insert(call.model).second)
      spdlog::warn("cluster: no node hosts model {}; its calls wait (up to cluster.request_timeout_ms = {} ms) for "
                   "one to join", call.model, st.cfg->cluster.request_timeout_ms);
    ++call.attempts;
    self->delayed_send(self, std::chrono::milliseconds(st.cfg->cluster.request_timeout_ms), expire_atom::value, id,
                       static_cast<uint64_t>(call.attempts));
    return;
  }
  call.peer = *peer;
  transmit(self, id, call);
}

void leave_peer(routing_state& st, const std::string& peer) {
  if (auto it = st.calls_at.find(peer); it != st.calls_at.end() && it->second > 0)
    --it->second;
}

void send_batch(routing_pointer self, const std::string& model) {
  auto& st = self->state;
  auto id = st.next_call++;
  outgoing_call call;
  call.model = model;
  call.batch = st.pending.at(model).take();
  size_t end = 0;
  for (const auto& part : call.batch.parts)
    call.part_end.push_back(end += part.ids.size());
  call.answered.assign(call.batch.size(), false);
  call.left = call.batch.size();
  st.calls.emplace(id, std::move(call));
  count_calls(st);
  route(self, id);
}

/// Hands results (or a failure) for some of a call's inputs to the partitions they came from.
void deliver(routing_pointer self, score_reply& r, const std::string& from) {
  auto& st = self->state;
  st.slow_peers.erase(from);
  if (r.ids.empty())
    return;
  const auto id = relay_id::call_of(r.ids.front());
  auto it = st.calls.find(id);
  if (it == st.calls.end())
    return; // late: answered already, or failed
  auto& call = it->second;
  if (!r.well_formed()) {
    r.failed = failure::failed;
    r.error = fmt::format("node {} sent a malformed result for model {}", from, call.model);
  }
  const auto width = static_cast<std::ptrdiff_t>(r.width);
  std::map<size_t, score_reply> replies; // by part
  for (size_t k = 0; k < r.ids.size(); ++k) {
    auto i = relay_id::index_of(r.ids[k]);
    if (relay_id::call_of(r.ids[k]) != id || i >= call.batch.size() || call.answered[i])
      continue;
    call.answered[i] = true;
    --call.left;
    auto part = static_cast<size_t>(std::upper_bound(call.part_end.begin(), call.part_end.end(), i) -
                                    call.part_end.begin());
    const size_t first = part == 0 ? 0 : call.part_end[part - 1];
    auto& reply = replies[part];
    reply.failed = r.failed;
    reply.error = r.error;
    reply.width = r.width;
    reply.model = r.model.empty() ? call.model : r.model;
    reply.model_version = r.model_version;
    reply.ids.push_back(call.batch.parts[part].ids[i - first]);
    if (!r.ok())
      continue;
    const auto at = static_cast<std::ptrdiff_t>(k);
    if (!r.texts.empty())
      reply.texts.push_back(std::move(r.texts[k]));
    else
      reply.values.insert(reply.values.end(), r.values.begin() + at * width, r.values.begin() + (at + 1) * width);
  }
  for (auto& [part, reply] : replies)
    self->send(caf::actor_cast<gateways::caller_actor>(call.batch.parts[part].caller), std::move(reply));
  if (call.left == 0) {
    leave_peer(st, call.peer);
    st.calls.erase(it);
    count_calls(st);
  }
}

void fail_call(routing_pointer self, uint64_t id, failure kind, const std::string& error) {
  auto& call = self->state.calls.at(id);
  auto r = gateways::failed_reply({}, kind, error, call.model);
  for (size_t i = 0; i < call.batch.size(); ++i)
    if (!call.answered[i])
      r.ids.push_back(relay_id::make(id, i));
  deliver(self, r, call.peer);
}

/// The cluster changed: calls whose node left (or restarted) go elsewhere at once, and calls
/// waiting for a host may have one now.
void on_view(routing_pointer self, cluster_view& view) {
  auto& st = self->state;
  std::set<std::string> gone;
  if (st.view)
    for (const auto& [name, actor] : st.view->links)
      if (auto now = view.links.find(name); now == view.links.end() || now->second != actor)
        gone.insert(name);
  st.view = std::move(view);
  for (const auto& name : gone) {
    st.calls_at.erase(name);
    st.slow_peers.erase(name);
  }
  for (auto& [id, call] : st.calls) {
    if (gone.count(call.peer)) {
      st.calls_rerouted->inc();
      route(self, id);
    } else if (call.peer.empty() && st.view->members.pick(call.model, [](auto&) { return 0; })) {
      st.warned_unhosted.erase(call.model);
      route(self, id);
    }
  }
}

/// A call's timer ran out: fail it if no node hosts its model, or its deadline passed; else warn
/// and wait on.
void on_expire(routing_pointer self, uint64_t id, uint64_t attempt) {
  auto& st = self->state;
  auto it = st.calls.find(id);
  if (it == st.calls.end() || static_cast<uint64_t>(it->second.attempts) != attempt)
    return;
  auto& call = it->second;
  // on_failure: block: the hosting node keeps the call until its provider answers, and a node
  // that dies is noticed by its link (the view); waiting is the policy, so is waiting for a host.
  if (auto model = st.cfg->models.find(call.model);
      model != st.cfg->models.end() && model->second.on_failure == config::failure_policy::block)
    return;
  if (call.peer.empty())
    return fail_call(self, id, failure::unreachable,
                     fmt::format("no node hosting model {} joined within {} ms", call.model,
                                 st.cfg->cluster.request_timeout_ms));
  // The node that has the call may still answer it: sending it elsewhere could pay the
  // provider twice. It answers, or leaves (heartbeats notice a frozen node; the view then sends
  // the call elsewhere), or the model's deadline_ms ends the wait.
  const auto deadline = std::chrono::milliseconds(st.cfg->models.at(call.model).deadline_ms);
  const auto waited = std::chrono::steady_clock::now() - call.created;
  if (deadline.count() > 0 && waited >= deadline)
    return fail_call(self, id, failure::deadline,
                     fmt::format("model {}: node {} did not answer within deadline_ms ({} ms)", call.model,
                                 call.peer, deadline.count()));
  if (st.slow_peers.insert(call.peer).second)
    spdlog::warn("cluster: node {} has not answered a call for model {} in {} ms; waiting for its answer, or for it "
                 "to leave the cluster (sending the call elsewhere could pay for it twice)",
                 call.peer, call.model, std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
  auto next = std::chrono::milliseconds(st.cfg->cluster.request_timeout_ms);
  if (deadline.count() > 0)
    next = std::min(next, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - waited) +
                            std::chrono::milliseconds(1));
  self->delayed_send(self, next, expire_atom::value, id, attempt);
}

routing_impl::behavior_type routing(routing_pointer self, routing_setup setup) {
  self->set_exception_handler(gateways::end_on_exception); // the node watches it (node/actor_watch.hpp)
  auto& st = self->state;
  st.cfg = std::move(setup.cfg);
  st.models = std::move(setup.models);
  st.counts = std::move(setup.counts);
  auto& m = *setup.metrics;
  st.calls_sent = &m.get_counter("inflow_cluster_calls_sent_total", "Model calls sent to gateways on other nodes.");
  st.calls_rerouted = &m.get_counter("inflow_cluster_calls_rerouted_total",
                                     "Calls sent again elsewhere: their node left the cluster.");
  return {
    [=](route_atom, const std::string& model, gateways::score_request& request) {
      auto& st = self->state;
      auto& info = st.models.at(model);
      // What does not fill a batch waits a moment for more: the gateway on the other side batches again.
      auto [it, added] = st.pending.try_emplace(model, static_cast<size_t>(st.cfg->models.at(model).batch.max_batch),
                                                gateways::takes_text(info.task) ? 0 : info.input.size(),
                                                std::chrono::milliseconds(1));
      auto sender = self->current_sender();
      try {
        it->second.add(sender, std::move(request));
      } catch (const std::invalid_argument& e) {
        self->send(caf::actor_cast<gateways::caller_actor>(sender),
                   gateways::failed_reply(std::move(request.ids), failure::rejected, e.what()));
        return;
      }
      while (it->second.full())
        send_batch(self, model);
      if (auto generation = it->second.arm_linger())
        self->delayed_send(self, it->second.linger(), flush_atom::value, model, *generation);
    },
    [=](flush_atom, const std::string& model, uint64_t generation) {
      auto& pending = self->state.pending.at(model);
      if (!pending.linger_due(generation))
        return;
      while (!pending.empty())
        send_batch(self, model);
    },
    [=](score_reply& reply, const std::string& from) { deliver(self, reply, from); },
    [=](view_atom, cluster_view& view) { on_view(self, view); },
    [=](endpoint_atom, endpoint_actor& endpoint) { self->state.endpoint = std::move(endpoint); },
    [=](expire_atom, uint64_t id, uint64_t attempt) { on_expire(self, id, attempt); },
  };
}

} // namespace

routing_actor spawn_routing(caf::actor_system& system, routing_setup setup) {
  return system.spawn(routing, std::move(setup));
}

gateways::scorer_actor spawn_model_router(caf::actor_system& system, const routing_actor& routing,
                                          const std::string& model) {
  // Arguments, not captures: CAF 0.17 dereferences a null argument tuple when there are none (UBSan).
  auto router = [](gateways::scorer_actor::pointer self, routing_actor routing,
                   std::string model) -> gateways::scorer_actor::behavior_type {
    self->set_exception_handler(gateways::end_on_exception);
    return {
      [=](gateways::score_request& request) { self->delegate(routing, route_atom::value, model, std::move(request)); },
    };
  };
  return system.spawn(router, routing, model);
}

} // namespace inflow::cluster
