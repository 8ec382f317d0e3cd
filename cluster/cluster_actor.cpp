#include "cluster/cluster_actor.hpp"

#include "gateways/common/gateway_actor.hpp"
#include "gateways/common/gateway_probe.hpp"
#include "admin/metrics.hpp"
#include "cluster/budget.hpp"
#include "cluster/frame_guard.hpp"
#include "cluster/membership.hpp"
#include "gateways/common/batcher.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace inflow::cluster {

namespace {

using route_atom = caf::atom_constant<caf::atom("route")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

using join_atom = caf::atom_constant<caf::atom("join")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using dialed_atom = caf::atom_constant<caf::atom("dialed")>;
using listen_atom = caf::atom_constant<caf::atom("listen")>;
using gateways::flush_atom;

using batch_t = gateways::batcher<caf::strong_actor_ptr>::batch;
using gateways::failure;
using gateways::score_reply;
namespace relay_id = gateways::relay_id;

/// What CAF adds around a wire message in a frame (sender, stages, type names): the
/// frame guard lets this much more than cluster.max_message_bytes through.
constexpr size_t caf_envelope_bytes = 64 * 1024;

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

/// A call from another node, in the hands of a local gateway.
struct served_call {
  caf::actor caller;
  std::string caller_name;
  std::vector<uint64_t> caller_ids; ///< by the index in our relay ids
  size_t left = 0;
};

struct peer_link {
  caf::actor actor;
  wire::report report;
  uint64_t calls = 0;     ///< our calls it has not answered
  bool knows_us = false;  ///< its hello lists this node
};

/// A hosted model's part of its cluster-wide requests_per_second (cluster/budget.hpp).
struct model_lease {
  request_lease lease;
  std::unique_ptr<gateways::gateway_probe> probe; ///< the local gateway's calls and queue: this node's demand
  uint64_t calls_seen = 0;
  request_lease::clock::time_point measured = request_lease::clock::now();
  double demand = 0;
  std::map<std::string, double> targets; ///< every host's part, while this node is the model's allocator
  std::map<std::string, int> waited;     ///< allocations each host has had work and no part (budget.hpp: turns)
};

struct cluster_state {
  config::node_file cfg;
  std::string listen;
  std::map<std::string, gateways::gateway_actor> gateways;
  std::map<std::string, gateways::model_info> models;
  std::function<wire::report()> report;
  std::optional<membership> members;
  std::map<std::string, peer_link> links;
  std::map<caf::actor_addr, std::string> names;
  caf::io::middleman_actor mm;
  std::set<std::string> dialing;                 ///< addresses we wait to hear hello from
  std::map<caf::actor_addr, std::string> dialed; ///< connected, hello not yet arrived
  std::set<std::string> unreachable;             ///< addresses whose failure was logged
  uint64_t ticks = 0;
  bool joined = false;
  // Calls out.
  std::map<std::string, gateways::batcher<caf::strong_actor_ptr>> pending;
  std::map<uint64_t, outgoing_call> calls;
  uint64_t next_call = 1;
  std::set<std::string> warned_unhosted;
  std::set<std::string> slow_peers; ///< peers warned of for a late answer, until they answer again
  // Calls in.
  std::map<uint64_t, served_call> served;
  uint64_t next_served = 1;
  // The budget last given to each local gateway: requests/s, tokens/min, paused.
  std::map<std::string, std::tuple<double, double, bool>> budgets;
  std::map<std::string, model_lease> leases; ///< local models with a requests_per_second limit
  metrics::gauge* peers_gauge = nullptr;
  metrics::counter* calls_sent = nullptr;
  metrics::counter* calls_rerouted = nullptr;
  metrics::counter* calls_served = nullptr;
  metrics::counter* refused = nullptr;
  static inline const char* name = "inflow.cluster";
};

using cluster_actor = caf::stateful_actor<cluster_state>;

size_t max_bytes(const cluster_state& st) {
  return static_cast<size_t>(st.cfg.cluster.max_message_bytes);
}

wire::hello own_hello(const cluster_state& st) {
  wire::hello h{st.cfg.node.name, st.cfg.node.roles, st.listen, st.members->own_gateways(), {}};
  for (const auto& [name, peer] : st.members->peers())
    h.peers.push_back(peer.listen);
  return h;
}

void send_wire(cluster_actor* self, const caf::actor& to, const wire::message& m) {
  self->send(to, wire::encode(m));
}

/// The budget report of model `model` from `peer`, if it sent one.
const wire::model_budget* budget_of(const peer_link& peer, const std::string& model) {
  for (const auto& b : peer.report.budgets)
    if (b.model == model)
      return &b;
  return nullptr;
}

/// Moves this node's part of every leased model's requests_per_second after demand
/// (cluster/budget.hpp): measures its own, and, as the model's allocator (its first host by
/// name), splits the limit by every host's.
void lease_budgets(cluster_actor* self) {
  auto& st = self->state;
  const auto now = request_lease::clock::now();
  for (auto& [model, l] : st.leases) {
    const auto& cfg = st.cfg.models.at(model);
    // Calls a second, and the calls its waiting rows make.
    const auto calls = l.probe->batches.value();
    const double seconds = std::max(1e-3, std::chrono::duration<double>(now - l.measured).count());
    l.demand = static_cast<double>(calls - l.calls_seen) / seconds +
               std::ceil(static_cast<double>(l.probe->queued_rows.value()) / static_cast<double>(cfg.batch.max_batch));
    l.calls_seen = calls;
    l.measured = now;
    auto hosts = st.members->hosts(model);
    std::map<std::string, double> demand{{st.cfg.node.name, l.demand}}, parts;
    for (const auto& host : hosts)
      if (auto link = st.links.find(host); link != st.links.end()) {
        demand[host] = 0; // until it reports
        if (auto b = budget_of(link->second, model)) {
          demand[host] = b->demand;
          parts[host] = b->part;
        }
      }
    const double limit = cfg.limits.requests_per_second;
    if (!st.joined || hosts.size() <= 1) {
      l.targets.clear();
      l.lease.update(st.joined ? limit : 0, parts, now);
      continue;
    }
    const auto& allocator = hosts.front();
    double target = l.lease.current(); // no word from the allocator yet: as it is
    if (allocator == st.cfg.node.name) {
      auto fresh = allocate_requests(limit, demand, turns(demand, l.targets, l.waited));
      if (worth_moving(l.targets, fresh, demand, limit))
        l.targets = std::move(fresh);
      target = l.targets.count(allocator) ? l.targets[allocator] : 0;
    } else {
      l.targets.clear();
      if (auto link = st.links.find(allocator); link != st.links.end())
        if (auto b = budget_of(link->second, model); b && !b->targets.empty())
          target = b->targets.count(st.cfg.node.name) ? b->targets.at(st.cfg.node.name) : 0;
    }
    l.lease.update(target, parts, now);
  }
}

/// Gives every local gateway with limits its part of them: requests/s as leased, tokens/min
/// split evenly by the nodes hosting the model; none before this node has met the cluster.
void share_budgets(cluster_actor* self) {
  auto& st = self->state;
  for (const auto& [model, gateway] : st.gateways) {
    const auto& limits = st.cfg.models.at(model).limits;
    if (limits.requests_per_second <= 0 && limits.tokens_per_minute <= 0)
      continue;
    auto hosts = st.members->hosts(model);
    double rps = st.leases.count(model) ? st.leases.at(model).lease.current() : 0;
    double tpm = limits.tokens_per_minute / static_cast<double>(hosts.size());
    bool paused = !st.joined || (limits.requests_per_second > 0 && rps <= 0);
    auto budget = std::make_tuple(rps, tpm, paused);
    if (st.budgets.count(model) && st.budgets[model] == budget)
      continue;
    st.budgets[model] = budget;
    self->send(gateway, gateways::budget_atom::value, rps, tpm, paused);
    if (st.joined)
      spdlog::info("cluster: model {}: this node's part of the limits is {} requests/s, {} tokens/min ({} node(s) "
                   "host it){}", model, rps, tpm, hosts.size(), paused ? "; no calls until it has a part" : "");
  }
}

/// Joined: every address dialed has answered, and every peer has counted this
/// node (a peer shrinks its part of a budget before its hello lists us).
void check_joined(cluster_actor* self) {
  auto& st = self->state;
  if (st.joined || !st.dialing.empty())
    return;
  for (const auto& [name, link] : st.links)
    if (!link.knows_us)
      return;
  st.joined = true;
  spdlog::info("cluster: joined with {} other node(s)", st.links.size());
  share_budgets(self);
}

void dial(cluster_actor* self, const std::string& address) {
  auto& st = self->state;
  if (address == st.listen || st.dialing.count(address) || st.members->knows_address(address))
    return;
  // Addresses come from peers too: parse without trusting them.
  auto colon = address.rfind(':');
  uint16_t port = 0;
  if (colon == std::string::npos ||
      std::from_chars(address.data() + colon + 1, address.data() + address.size(), port).ec != std::errc{} ||
      port == 0) {
    spdlog::warn("cluster: ignoring the address '{}': not host:port", address);
    return;
  }
  auto host = address.substr(0, colon);
  st.dialing.insert(address);
  // remote_actor() has no connect timeout: ask the middleman, with one.
  auto timeout = std::chrono::milliseconds(st.cfg.cluster.connection_timeout_ms);
  self->request(st.mm, timeout, caf::connect_atom::value, host, port)
    .then(
      [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
        auto& st = self->state;
        if (!ptr) {
          spdlog::warn("cluster: {} is not an Inflow node (nothing published there)", address);
          st.dialing.erase(address);
          check_joined(self);
          return;
        }
        auto peer = caf::actor_cast<caf::actor>(ptr);
        st.unreachable.erase(address);
        st.dialed[peer.address()] = address;
        send_wire(self, peer, own_hello(st));
        // The hello back ends the dial; if it never comes, give up after the timeout.
        self->delayed_send(self, timeout, dialed_atom::value, address);
      },
      [=](caf::error& e) {
        auto& st = self->state;
        st.dialing.erase(address);
        if (st.unreachable.insert(address).second) // once per address, not every retry
          spdlog::warn("cluster: cannot reach {}: {}; retrying every second while this node has no peers",
                       address, self->system().render(e));
        check_joined(self);
      });
}

void dial_seeds(cluster_actor* self) {
  for (const auto& seed : self->state.cfg.cluster.seeds)
    dial(self, seed.to_string());
}

// ---- calls out ---------------------------------------------------------------------------

/// Sends the unanswered inputs of a call to `peer`, in messages under the size cap.
void transmit(cluster_actor* self, uint64_t id, outgoing_call& call) {
  auto& st = self->state;
  const auto width = st.models.at(call.model).input.size();
  const bool text = gateways::takes_text(st.models.at(call.model).task);
  auto& link = st.links.at(call.peer);
  wire::score_call msg{call.model, {}};
  auto& request = msg.request;
  const size_t fixed = wire::call_size_bound(0, 0, 0, 0);
  size_t bytes = fixed;
  auto flush = [&] {
    if (request.ids.empty())
      return;
    send_wire(self, link.actor, msg);
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
  ++link.calls;
  ++call.attempts;
  st.calls_sent->inc();
  self->delayed_send(self, std::chrono::milliseconds(st.cfg.cluster.request_timeout_ms), expire_atom::value, id,
                     static_cast<uint64_t>(call.attempts));
  if (!too_large.empty()) {
    auto r = gateways::failed_reply(std::move(too_large), failure::rejected,
                                    "input too large to send to another node (over cluster.max_message_bytes)",
                                    call.model);
    self->send(self, wire::encode(r)); // answered like any other failure
  }
}

/// How busy a peer is for a call of `model`: the calls it has of ours, and last of all a node
/// whose part of the model's rate limit is nothing (it could make no call).
uint64_t call_load(const cluster_state& st, const std::string& peer, const std::string& model) {
  const auto& link = st.links.at(peer);
  auto it = st.cfg.models.find(model);
  const bool limited = it != st.cfg.models.end() && it->second.limits.requests_per_second > 0;
  const auto* budget = budget_of(link, model);
  return link.calls + (limited && budget && budget->part <= 0 ? uint64_t(1) << 32 : 0);
}

/// Sends a call to the hosting node with the fewest calls outstanding, or
/// parks it until a node hosting the model joins.
void route(cluster_actor* self, uint64_t id) {
  auto& st = self->state;
  auto& call = st.calls.at(id);
  auto peer = st.members->pick(call.model, [&](const std::string& name) { return call_load(st, name, call.model); });
  if (!peer) {
    call.peer.clear();
    if (st.warned_unhosted.insert(call.model).second)
      spdlog::warn("cluster: no node hosts model {}; its calls wait (up to cluster.request_timeout_ms = {} ms) for "
                   "one to join", call.model, st.cfg.cluster.request_timeout_ms);
    ++call.attempts;
    self->delayed_send(self, std::chrono::milliseconds(st.cfg.cluster.request_timeout_ms), expire_atom::value, id,
                       static_cast<uint64_t>(call.attempts));
    return;
  }
  call.peer = *peer;
  transmit(self, id, call);
}

/// Takes a call off its node and sends it again elsewhere.
void reroute(cluster_actor* self, uint64_t id) {
  auto& st = self->state;
  auto& call = st.calls.at(id);
  if (auto it = st.links.find(call.peer); it != st.links.end() && it->second.calls > 0)
    --it->second.calls;
  st.calls_rerouted->inc();
  route(self, id);
}

/// Drops a peer that is gone and sends the calls it had elsewhere; returns how many.
size_t forget_peer(cluster_actor* self, const std::string& name) {
  auto& st = self->state;
  if (auto link = st.links.find(name); link != st.links.end()) {
    st.names.erase(link->second.actor.address());
    st.links.erase(link);
  }
  st.members->remove(name);
  st.slow_peers.erase(name);
  st.peers_gauge->set(static_cast<int64_t>(st.links.size()));
  size_t moved = 0;
  for (auto& [id, call] : st.calls)
    if (call.peer == name) {
      reroute(self, id);
      ++moved;
    }
  for (auto s = st.served.begin(); s != st.served.end();)
    s = s->second.caller_name == name ? st.served.erase(s) : std::next(s);
  return moved;
}

void send_batch(cluster_actor* self, const std::string& model) {
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
  route(self, id);
}

/// Hands results (or an error) for some of a call's inputs to the partitions they came from.
void deliver(cluster_actor* self, score_reply& r, const std::string& from) {
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
    self->send(caf::actor_cast<caf::actor>(call.batch.parts[part].caller), std::move(reply));
  if (call.left == 0) {
    if (auto link = st.links.find(call.peer); link != st.links.end() && link->second.calls > 0)
      --link->second.calls;
    st.calls.erase(it);
  }
}

void fail_call(cluster_actor* self, uint64_t id, failure kind, const std::string& error) {
  auto& call = self->state.calls.at(id);
  auto r = gateways::failed_reply({}, kind, error, call.model);
  for (size_t i = 0; i < call.batch.size(); ++i)
    if (!call.answered[i])
      r.ids.push_back(relay_id::make(id, i));
  deliver(self, r, call.peer);
}

// ---- calls in ----------------------------------------------------------------------------

void serve(cluster_actor* self, const caf::actor& from, const std::string& from_name, wire::score_call& call) {
  auto& st = self->state;
  auto& request = call.request;
  auto refuse = [&](failure kind, const std::string& why) {
    send_wire(self, from, gateways::failed_reply(std::move(request.ids), kind, why, call.model));
  };
  auto gw = st.gateways.find(call.model);
  if (gw == st.gateways.end())
    return refuse(failure::unreachable, fmt::format("node {} does not host model {}", st.cfg.node.name, call.model));
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
  st.calls_served->inc();
  self->send(gw->second, std::move(request));
}

/// A local gateway answered (part of) a served call: send it to the caller.
void on_gateway_reply(cluster_actor* self, score_reply& reply) {
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
  send_wire(self, served.caller, reply);
  if (served.left == 0)
    st.served.erase(it);
}

// ---- membership --------------------------------------------------------------------------

void on_hello(cluster_actor* self, const caf::actor& from, const wire::hello& h) {
  auto& st = self->state;
  if (auto d = st.dialed.find(from.address()); d != st.dialed.end()) {
    st.dialing.erase(d->second);
    st.dialed.erase(d);
  }
  st.dialing.erase(h.listen);
  if (h.node == st.cfg.node.name) { // a seed that is this node, or a name given twice
    if (h.listen != st.listen)
      spdlog::error("cluster: another node at {} is also named {}; give every node its own node.name", h.listen,
                    h.node);
    check_joined(self);
    return;
  }
  if (auto link = st.links.find(h.node); link != st.links.end() && link->second.actor != from)
    forget_peer(self, h.node); // it restarted before its old incarnation was noticed gone
  bool added = st.members->upsert(h);
  bool knows_us = std::find(h.peers.begin(), h.peers.end(), st.listen) != h.peers.end();
  if (added) {
    self->monitor(from);
    st.names[from.address()] = h.node;
    st.links[h.node] = {from, {}, 0, knows_us};
    st.peers_gauge->set(static_cast<int64_t>(st.links.size()));
    std::string models;
    for (const auto& g : h.gateways)
      models += fmt::format("{}{} ({} {})", models.empty() ? "" : ", ", g.model, g.provider, g.version);
    spdlog::info("cluster: node {} at {} joined; roles {}; gateways: {}", h.node, h.listen,
                 fmt::join(h.roles, ","), models.empty() ? "none" : models);
    share_budgets(self);
    send_wire(self, from, own_hello(st));
    // Tell everyone else, so that nodes that joined at the same time meet.
    for (const auto& [name, link] : st.links)
      if (name != h.node)
        send_wire(self, link.actor, own_hello(st));
  } else {
    st.links[h.node].knows_us |= knows_us;
    share_budgets(self);
  }
  for (const auto& address : h.peers)
    dial(self, address);
  // Calls waiting for a gateway may have one now.
  for (auto& [id, call] : st.calls)
    if (call.peer.empty() &&
        st.members->pick(call.model, [&](auto& n) { return st.links.at(n).calls; })) {
      st.warned_unhosted.erase(call.model);
      route(self, id);
    }
  check_joined(self);
}

void on_down(cluster_actor* self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto it = st.names.find(dm.source);
  if (it == st.names.end())
    return;
  auto name = it->second;
  st.names.erase(it);
  auto moved = forget_peer(self, name);
  spdlog::warn("cluster: node {} left ({}); {} call(s) it had were sent elsewhere", name,
               self->system().render(dm.reason), moved);
}

void on_wire(cluster_actor* self, std::vector<char>& bytes) {
  auto& st = self->state;
  auto from = caf::actor_cast<caf::actor>(self->current_sender());
  auto name_it = from ? st.names.find(from.address()) : st.names.end();
  std::string from_name = name_it != st.names.end() ? name_it->second : "(not yet introduced)";
  std::string error;
  auto message = wire::decode(bytes.data(), bytes.size(), max_bytes(st), error);
  if (!message) {
    st.refused->inc();
    spdlog::warn("cluster: refused a message from node {}: {}", from_name, error);
    return;
  }
  std::visit(
    [&](auto& m) {
      using T = std::decay_t<decltype(m)>;
      if constexpr (std::is_same_v<T, wire::hello>) {
        if (from)
          on_hello(self, from, m);
      } else if constexpr (std::is_same_v<T, wire::score_call>) {
        if (from)
          serve(self, from, from_name, m);
      } else if constexpr (std::is_same_v<T, score_reply>) {
        deliver(self, m, from_name);
      } else if constexpr (std::is_same_v<T, wire::report>) {
        if (auto link = st.links.find(from_name); link != st.links.end())
          link->second.report = std::move(m);
      }
    },
    *message);
}

nlohmann::json status(cluster_actor* self) {
  auto& st = self->state;
  auto node_json = [](const wire::hello& h, const wire::report& r, bool self_node) {
    nlohmann::json j{{"name", h.node}, {"roles", h.roles}, {"listen", h.listen}, {"self", self_node},
                     {"calls_out", r.calls_out}, {"calls_in", r.calls_in}};
    j["gateways"] = nlohmann::json::array();
    for (const auto& g : h.gateways)
      j["gateways"].push_back({{"model", g.model}, {"provider", g.provider}, {"version", g.version}});
    j["partitions"] = nlohmann::json::array();
    for (const auto& p : r.partitions)
      j["partitions"].push_back({{"pipeline", p.pipeline}, {"partition", p.partition}, {"in_flight", p.in_flight}});
    return j;
  };
  auto own = st.report();
  own.calls_out = st.calls.size();
  own.calls_in = st.served.size();
  nlohmann::json nodes = nlohmann::json::array();
  nodes.push_back(node_json(own_hello(st), own, true));
  for (const auto& [name, peer] : st.members->peers())
    nodes.push_back(node_json(peer, st.links.at(name).report, false));
  return {{"joined", st.joined}, {"nodes", nodes}};
}

caf::behavior cluster(cluster_actor* self, cluster_setup setup, std::string listen) {
  auto& st = self->state;
  st.cfg = std::move(setup.cfg);
  st.listen = std::move(listen);
  st.gateways = std::move(setup.gateways);
  st.models = std::move(setup.models);
  st.report = std::move(setup.report);
  std::vector<wire::gateway_ad> own;
  for (const auto& [model, gw] : st.gateways) {
    const auto& info = st.models.at(model);
    own.push_back({model, st.cfg.models.at(model).provider, info.version, info.task});
  }
  st.members.emplace(st.cfg.node.name, std::move(own));
  auto& m = *setup.metrics;
  st.peers_gauge = &m.get_gauge("inflow_cluster_peers", "Other nodes this node has a link to.");
  st.calls_sent = &m.get_counter("inflow_cluster_calls_sent_total", "Model calls sent to gateways on other nodes.");
  st.calls_rerouted = &m.get_counter("inflow_cluster_calls_rerouted_total",
                                     "Calls sent again elsewhere: their node left the cluster.");
  st.calls_served = &m.get_counter("inflow_cluster_calls_served_total", "Model calls from other nodes served here.");
  st.refused = &m.get_counter("inflow_cluster_messages_refused_total",
                              "Messages from other nodes refused: too large, malformed or another wire version.");
  if (st.cfg.cluster.tls.enabled())
    st.mm = self->system().openssl_manager().actor_handle();
  else
    st.mm = self->system().middleman().actor_handle();
  for (const auto& [model, gateway] : st.gateways)
    if (st.cfg.models.at(model).limits.requests_per_second > 0) {
      auto& l = st.leases.emplace(model, model_lease{request_lease(st.cfg.models.at(model).limits.requests_per_second)})
                  .first->second;
      l.probe = std::make_unique<gateways::gateway_probe>(m, model);
      l.calls_seen = l.probe->batches.value();
    }
  share_budgets(self); // paused until joined
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  self->send(self, tick_atom::value);
  return {
    [=](listen_atom, std::string& listen) { self->state.listen = std::move(listen); },
    [=](join_atom) {
      dial_seeds(self);
      check_joined(self);
    },
    [=](std::vector<char>& bytes) { on_wire(self, bytes); },
    [=](route_atom, const std::string& model, gateways::score_request& request) {
      auto& st = self->state;
      auto& info = st.models.at(model);
      // What does not fill a batch waits a moment for more: the gateway on the other side batches again.
      auto [it, added] = st.pending.try_emplace(model, static_cast<size_t>(st.cfg.models.at(model).batch.max_batch),
                                                gateways::takes_text(info.task) ? 0 : info.input.size(),
                                                std::chrono::milliseconds(1));
      auto sender = self->current_sender();
      try {
        it->second.add(sender, std::move(request));
      } catch (const std::invalid_argument& e) {
        self->send(caf::actor_cast<caf::actor>(sender),
                   gateways::failed_reply(std::move(request.ids), failure::rejected, e.what()));
        return;
      }
      while (it->second.full())
        send_batch(self, model);
      if (auto generation = it->second.arm_linger())
        self->delayed_send(self, it->second.linger(), flush_atom::value, model, *generation);
    },
    [=](flush_atom, const std::string& model, uint64_t generation) {
      auto& st = self->state;
      if (!st.pending.at(model).linger_due(generation))
        return;
      while (!st.pending.at(model).empty())
        send_batch(self, model);
    },
    [=](score_reply& reply) { on_gateway_reply(self, reply); },
    [=](expire_atom, uint64_t id, uint64_t attempt) {
      auto& st = self->state;
      auto it = st.calls.find(id);
      if (it == st.calls.end() || static_cast<uint64_t>(it->second.attempts) != attempt)
        return;
      auto& call = it->second;
      // on_failure: block: the hosting node keeps the call until its provider answers, and a node
      // that dies is noticed by its link (on_down); waiting is the policy, so is waiting for a host.
      if (auto model = st.cfg.models.find(call.model);
          model != st.cfg.models.end() && model->second.on_failure == config::failure_policy::block)
        return;
      if (call.peer.empty())
        return fail_call(self, id, failure::unreachable, fmt::format("no node hosting model {} joined within {} ms", call.model,
                                               st.cfg.cluster.request_timeout_ms));
      // The node that has the call may still answer it: sending it elsewhere could pay the
      // provider twice. It answers, or leaves (heartbeats notice a frozen node; on_down then sends
      // the call elsewhere), or the model's deadline_ms ends the wait.
      const auto deadline = std::chrono::milliseconds(st.cfg.models.at(call.model).deadline_ms);
      const auto waited = std::chrono::steady_clock::now() - call.created;
      if (deadline.count() > 0 && waited >= deadline)
        return fail_call(self, id, failure::deadline, fmt::format("model {}: node {} did not answer within deadline_ms ({} ms)",
                                               call.model, call.peer, deadline.count()));
      if (st.slow_peers.insert(call.peer).second)
        spdlog::warn("cluster: node {} has not answered a call for model {} in {} ms; waiting for its answer, or for it "
                   "to leave the cluster (sending the call elsewhere could pay for it twice)",
                     call.peer, call.model, std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
      auto next = std::chrono::milliseconds(st.cfg.cluster.request_timeout_ms);
      if (deadline.count() > 0)
        next = std::min(next, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - waited) +
                                std::chrono::milliseconds(1));
      self->delayed_send(self, next, expire_atom::value, id, attempt);
    },
    [=](dialed_atom, const std::string& address) {
      auto& st = self->state;
      if (st.dialing.erase(address)) {
        spdlog::warn("cluster: {} accepted the connection but never introduced itself", address);
        check_joined(self);
      }
    },
    [=](tick_atom) {
      auto& st = self->state;
      lease_budgets(self);
      share_budgets(self);
      auto r = st.report();
      r.calls_out = st.calls.size();
      r.calls_in = st.served.size();
      for (const auto& [model, l] : st.leases)
        r.budgets.push_back({model, l.demand, l.lease.current(), l.targets});
      auto bytes = wire::encode(r);
      for (const auto& [name, link] : st.links)
        self->send(link.actor, bytes);
      // Hellos again now and then: a node that missed a peer (a failed dial while many joined at
      // once) learns its address again and dials it (on_hello), so the mesh heals by itself.
      if (++st.ticks % 5 == 0)
        for (const auto& [name, link] : st.links)
          send_wire(self, link.actor, own_hello(st));
      if (st.links.empty())
        dial_seeds(self);
      self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
    },
    [=](status_atom) { return status(self).dump(); },
  };
}

} // namespace

cluster_endpoint start_cluster(caf::actor_system& system, cluster_setup setup) {
  const auto cfg = setup.cfg;
  const auto& at = *cfg.node.listen;
  auto* refused = &setup.metrics->get_counter("inflow_cluster_connections_refused_total",
                                              "Connections to the cluster port closed by the frame guard: malformed "
                                              "or oversized frames, no handshake in time, too many connections.");
  cluster_endpoint out;
  out.actor = system.spawn(cluster, std::move(setup), at.to_string());
  // CAF listens on loopback only; the guard owns node.listen (and its TLS) in front of it.
  auto published = system.middleman().publish(out.actor, 0, "127.0.0.1", true);
  if (!published) {
    caf::anon_send_exit(out.actor, caf::exit_reason::user_shutdown);
    throw std::runtime_error(fmt::format("cannot publish the cluster actor: {}", system.render(published.error())));
  }
  out.caf_port = *published;
  guard_limits limits;
  limits.max_frame_bytes = static_cast<size_t>(cfg.cluster.max_message_bytes) + caf_envelope_bytes;
  limits.handshake_timeout = std::chrono::milliseconds(cfg.cluster.connection_timeout_ms);
  try {
    out.guard = std::make_shared<frame_guard>(at, out.caf_port, limits, cfg.cluster.tls, refused);
  } catch (const std::exception& e) {
    stop_cluster(system, out);
    throw std::runtime_error(
      fmt::format("cannot listen for the cluster on {}: {}; pick a free node.listen", at.to_string(), e.what()));
  }
  // Peers are told this address: node.advertise, or node.listen with the port really bound.
  auto advertised = cfg.node.advertise.value_or(config::host_port{at.host, out.guard->port()});
  caf::anon_send(out.actor, listen_atom::value, advertised.to_string());
  spdlog::info("cluster: listening on {}:{}{}", at.host, out.guard->port(),
               cfg.cluster.tls.enabled() ? " (mutual TLS)" : " (plain TCP, loopback only)");
  caf::anon_send(out.actor, join_atom::value);
  return out;
}

gateways::scorer_actor spawn_model_router(caf::actor_system& system, const caf::actor& cluster,
                                          const std::string& model) {
  // Arguments, not captures: CAF 0.17 dereferences a null argument tuple when there are none (UBSan).
  auto router = [](gateways::scorer_actor::pointer self, caf::actor cluster,
                   std::string model) -> gateways::scorer_actor::behavior_type {
    return {
      [=](gateways::score_request& request) { self->delegate(cluster, route_atom::value, model, std::move(request)); },
    };
  };
  return system.spawn(router, cluster, model);
}

std::string cluster_status_json(caf::actor_system& system, const caf::actor& cluster) {
  caf::scoped_actor self{system};
  std::string out = R"({"joined":false,"nodes":[]})";
  self->request(cluster, std::chrono::seconds(2), status_atom::value)
    .receive([&](std::string& json) { out = std::move(json); }, [&](caf::error&) {});
  return out;
}

void stop_cluster(caf::actor_system& system, cluster_endpoint& cluster) {
  cluster.guard.reset(); // no new links, and the peers' links close
  caf::scoped_actor self{system};
  self->request(system.middleman().actor_handle(), std::chrono::seconds(2), caf::unpublish_atom::value,
                cluster.actor.address(), cluster.caf_port)
    .receive([] {}, [](caf::error&) {});
  caf::anon_send_exit(cluster.actor, caf::exit_reason::user_shutdown);
}

} // namespace inflow::cluster
