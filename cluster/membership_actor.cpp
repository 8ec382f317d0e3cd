#include "cluster/membership_actor.hpp"

#include "admin/metrics.hpp"
#include "cluster/budget.hpp"
#include "cluster/membership.hpp"
#include "gateways/common/gateway_probe.hpp"

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

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using dialed_atom = caf::atom_constant<caf::atom("dialed")>;

struct peer_link {
  endpoint_actor actor;
  wire::report report;
  bool knows_us = false; ///< its hello lists this node
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

struct membership_state {
  std::shared_ptr<const config::node_file> cfg;
  std::string listen;
  std::map<std::string, gateways::gateway_actor> gateways;
  std::map<std::string, gateways::model_info> models;
  std::function<wire::report()> report;
  routing_actor routing;
  serving_actor serving;
  std::shared_ptr<call_counts> counts;
  std::optional<membership> members;
  std::map<std::string, peer_link> links;
  std::map<caf::actor_addr, std::string> names;
  caf::io::middleman_actor mm;
  std::set<std::string> dialing;                 ///< addresses we wait to hear hello from
  std::map<caf::actor_addr, std::string> dialed; ///< connected, hello not yet arrived
  std::set<std::string> unreachable;             ///< addresses whose failure was logged
  uint64_t ticks = 0;
  bool joined = false;
  // The budget last given to each local gateway: requests/s, tokens/min, paused.
  std::map<std::string, std::tuple<double, double, bool>> budgets;
  std::map<std::string, model_lease> leases; ///< local models with a requests_per_second limit
  metrics::gauge* peers_gauge = nullptr;
  metrics::counter* refused = nullptr;
  static inline const char* name = "inflow.cluster.membership";
};

/// The published interface and its own timers: the report tick, a dial's deadline.
using membership_impl =
  membership_actor::extend<caf::reacts_to<tick_atom>, caf::reacts_to<dialed_atom, std::string>>;
using membership_pointer = membership_impl::stateful_pointer<membership_state>;

size_t max_bytes(const membership_state& st) {
  return static_cast<size_t>(st.cfg->cluster.max_message_bytes);
}

wire::hello own_hello(const membership_state& st) {
  wire::hello h{st.cfg->node.name, st.cfg->node.roles, st.listen, st.members->own_gateways(), {}};
  for (const auto& [name, peer] : st.members->peers())
    h.peers.push_back(peer.listen);
  return h;
}

void send_wire(membership_pointer self, const endpoint_actor& to, const wire::message& m) {
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
void lease_budgets(membership_pointer self) {
  auto& st = self->state;
  const auto now = request_lease::clock::now();
  for (auto& [model, l] : st.leases) {
    const auto& cfg = st.cfg->models.at(model);
    // Calls a second, and the calls its waiting rows make.
    const auto calls = l.probe->batches.value();
    const double seconds = std::max(1e-3, std::chrono::duration<double>(now - l.measured).count());
    l.demand = static_cast<double>(calls - l.calls_seen) / seconds +
               std::ceil(static_cast<double>(l.probe->queued_rows.value()) / static_cast<double>(cfg.batch.max_batch));
    l.calls_seen = calls;
    l.measured = now;
    auto hosts = st.members->hosts(model);
    std::map<std::string, double> demand{{st.cfg->node.name, l.demand}}, parts;
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
    if (allocator == st.cfg->node.name) {
      auto fresh = allocate_requests(limit, demand, turns(demand, l.targets, l.waited));
      if (worth_moving(l.targets, fresh, demand, limit))
        l.targets = std::move(fresh);
      target = l.targets.count(allocator) ? l.targets[allocator] : 0;
    } else {
      l.targets.clear();
      if (auto link = st.links.find(allocator); link != st.links.end())
        if (auto b = budget_of(link->second, model); b && !b->targets.empty())
          target = b->targets.count(st.cfg->node.name) ? b->targets.at(st.cfg->node.name) : 0;
    }
    l.lease.update(target, parts, now);
  }
}

/// Gives every local gateway with limits its part of them: requests/s as leased, tokens/min
/// split evenly by the nodes hosting the model; none before this node has met the cluster.
void share_budgets(membership_pointer self) {
  auto& st = self->state;
  for (const auto& [model, gateway] : st.gateways) {
    const auto& limits = st.cfg->models.at(model).limits;
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
void check_joined(membership_pointer self) {
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

void dial(membership_pointer self, const std::string& address) {
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
  auto timeout = std::chrono::milliseconds(st.cfg->cluster.connection_timeout_ms);
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
        auto peer = caf::actor_cast<endpoint_actor>(ptr);
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

void dial_seeds(membership_pointer self) {
  for (const auto& seed : self->state.cfg->cluster.seeds)
    dial(self, seed.to_string());
}


/// The models a peer reports no part of the rate limit for: a call there would wait for one.
std::set<std::string> unfunded(const membership_state& st, const wire::report& report) {
  std::set<std::string> out;
  for (const auto& b : report.budgets)
    if (auto m = st.cfg->models.find(b.model);
        m != st.cfg->models.end() && m->second.limits.requests_per_second > 0 && b.part <= 0)
      out.insert(b.model);
  return out;
}

/// Tells the routing actor what the cluster is now: who hosts what, where each peer is, and
/// which peers have no part of a model's rate limit.
void publish_view(membership_pointer self) {
  auto& st = self->state;
  cluster_view view{*st.members, {}, {}};
  for (const auto& [name, link] : st.links) {
    view.links.emplace(name, link.actor);
    if (auto none = unfunded(st, link.report); !none.empty())
      view.unfunded.emplace(name, std::move(none));
  }
  self->send(st.routing, view_atom::value, std::move(view));
}

/// Drops a peer that is gone: the routing actor sends its calls elsewhere, the serving actor
/// forgets its calls here.
void forget_peer(membership_pointer self, const std::string& name) {
  auto& st = self->state;
  if (auto link = st.links.find(name); link != st.links.end()) {
    st.names.erase(link->second.actor.address());
    st.links.erase(link);
  }
  st.members->remove(name);
  st.peers_gauge->set(static_cast<int64_t>(st.links.size()));
  publish_view(self);
  self->send(st.serving, left_atom::value, name);
}

void on_hello(membership_pointer self, const endpoint_actor& from, const wire::hello& h) {
  auto& st = self->state;
  if (auto d = st.dialed.find(from.address()); d != st.dialed.end()) {
    st.dialing.erase(d->second);
    st.dialed.erase(d);
  }
  st.dialing.erase(h.listen);
  if (h.node == st.cfg->node.name) { // a seed that is this node, or a name given twice
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
    st.links[h.node] = {from, {}, knows_us};
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
  if (added)
    publish_view(self); // calls waiting for a gateway may have one now
  for (const auto& address : h.peers)
    dial(self, address);
  check_joined(self);
}

void on_down(membership_pointer self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto it = st.names.find(dm.source);
  if (it == st.names.end())
    return;
  auto name = it->second;
  st.names.erase(it);
  forget_peer(self, name);
  spdlog::warn("cluster: node {} left ({}); the calls it had go elsewhere", name, self->system().render(dm.reason));
}

void on_wire(membership_pointer self, std::vector<char>& bytes) {
  auto& st = self->state;
  auto from = caf::actor_cast<endpoint_actor>(self->current_sender());
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
          self->send(st.serving, std::move(m), from, from_name);
      } else if constexpr (std::is_same_v<T, gateways::score_reply>) {
        self->send(st.routing, std::move(m), from_name);
      } else if constexpr (std::is_same_v<T, wire::report>) {
        if (auto link = st.links.find(from_name); link != st.links.end()) {
          const bool changed = unfunded(st, link->second.report) != unfunded(st, m);
          link->second.report = std::move(m);
          if (changed)
            publish_view(self);
        }
      }
    },
    *message);
}

nlohmann::json status(membership_pointer self) {
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
  own.calls_out = st.counts->out;
  own.calls_in = st.counts->in;
  nlohmann::json nodes = nlohmann::json::array();
  nodes.push_back(node_json(own_hello(st), own, true));
  for (const auto& [name, peer] : st.members->peers())
    nodes.push_back(node_json(peer, st.links.at(name).report, false));
  return {{"joined", st.joined}, {"nodes", nodes}};
}

membership_impl::behavior_type membership_behavior(membership_pointer self, membership_setup setup) {
  self->set_exception_handler(gateways::end_on_exception); // the node watches it (node/actor_watch.hpp)
  auto& st = self->state;
  st.cfg = std::move(setup.cfg);
  st.gateways = std::move(setup.gateways);
  st.models = std::move(setup.models);
  st.report = std::move(setup.report);
  st.routing = std::move(setup.routing);
  st.serving = std::move(setup.serving);
  st.counts = std::move(setup.counts);
  std::vector<wire::gateway_ad> own;
  for (const auto& [model, gw] : st.gateways) {
    const auto& info = st.models.at(model);
    own.push_back({model, st.cfg->models.at(model).provider, info.version, info.task});
  }
  st.members.emplace(st.cfg->node.name, std::move(own));
  auto& m = *setup.metrics;
  st.peers_gauge = &m.get_gauge("inflow_cluster_peers", "Other nodes this node has a link to.");
  st.refused = &m.get_counter("inflow_cluster_messages_refused_total",
                              "Messages from other nodes refused: too large, malformed or another wire version.");
  if (st.cfg->cluster.tls.enabled())
    st.mm = self->system().openssl_manager().actor_handle();
  else
    st.mm = self->system().middleman().actor_handle();
  for (const auto& [model, gateway] : st.gateways)
    if (st.cfg->models.at(model).limits.requests_per_second > 0) {
      auto& l = st.leases.emplace(model, model_lease{request_lease(st.cfg->models.at(model).limits.requests_per_second)})
                  .first->second;
      l.probe = std::make_unique<gateways::gateway_probe>(m, model);
      l.calls_seen = l.probe->batches.value();
    }
  share_budgets(self); // paused until joined
  publish_view(self);
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  self->send(self, tick_atom::value);
  return {
    [=](listen_atom, std::string& listen) { self->state.listen = std::move(listen); },
    [=](join_atom) {
      dial_seeds(self);
      check_joined(self);
    },
    [=](std::vector<char>& bytes) { on_wire(self, bytes); },
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
      r.calls_out = st.counts->out;
      r.calls_in = st.counts->in;
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

membership_actor spawn_membership(caf::actor_system& system, membership_setup setup) {
  return system.spawn(membership_behavior, std::move(setup));
}

} // namespace inflow::cluster
