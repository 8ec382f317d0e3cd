#include "cluster/cluster.hpp"

#include "admin/metrics.hpp"
#include "cluster/frame_guard.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace inflow::cluster {

namespace {

/// What CAF adds around a wire message in a frame (sender, stages, type names): the
/// frame guard lets this much more than cluster.max_message_bytes through.
constexpr size_t caf_envelope_bytes = 64 * 1024;

} // namespace

cluster_endpoint start_cluster(caf::actor_system& system, cluster_setup setup) {
  auto cfg = std::make_shared<const config::node_file>(std::move(setup.cfg));
  const auto& at = *cfg->node.listen;
  auto* refused = &setup.metrics->get_counter("inflow_cluster_connections_refused_total",
                                              "Connections to the cluster port closed by the frame guard: malformed "
                                              "or oversized frames, no handshake in time, too many connections.");
  auto counts = std::make_shared<call_counts>();
  cluster_endpoint out;
  out.serving = spawn_serving(system, {cfg->node.name, setup.gateways, setup.models, counts, setup.metrics});
  out.routing = spawn_routing(system, {cfg, setup.models, counts, setup.metrics});
  out.membership = spawn_membership(system, {cfg, std::move(setup.gateways), std::move(setup.models),
                                             std::move(setup.report), out.routing, out.serving, counts,
                                             setup.metrics});
  caf::anon_send(out.routing, endpoint_atom::value, endpoint_actor(out.membership));
  caf::anon_send(out.serving, endpoint_atom::value, endpoint_actor(out.membership));
  // CAF listens on loopback only; the guard owns node.listen (and its TLS) in front of it.
  auto published = system.middleman().publish(out.membership, 0, "127.0.0.1", true);
  if (!published) {
    stop_cluster(system, out);
    throw std::runtime_error(fmt::format("cannot publish the cluster actor: {}", system.render(published.error())));
  }
  out.caf_port = *published;
  guard_limits limits;
  limits.max_frame_bytes = static_cast<size_t>(cfg->cluster.max_message_bytes) + caf_envelope_bytes;
  limits.handshake_timeout = std::chrono::milliseconds(cfg->cluster.connection_timeout_ms);
  try {
    out.guard = std::make_shared<frame_guard>(at, out.caf_port, limits, cfg->cluster.tls, refused);
  } catch (const std::exception& e) {
    stop_cluster(system, out);
    throw std::runtime_error(
      fmt::format("cannot listen for the cluster on {}: {}; pick a free node.listen", at.to_string(), e.what()));
  }
  // Peers are told this address: node.advertise, or node.listen with the port really bound.
  auto advertised = cfg->node.advertise.value_or(config::host_port{at.host, out.guard->port()});
  caf::anon_send(out.membership, listen_atom::value, advertised.to_string());
  spdlog::info("cluster: listening on {}:{}{}", at.host, out.guard->port(),
               cfg->cluster.tls.enabled() ? " (mutual TLS)" : " (plain TCP, loopback only)");
  caf::anon_send(out.membership, join_atom::value);
  return out;
}

std::string cluster_status_json(caf::actor_system& system, const cluster_endpoint& cluster) {
  caf::scoped_actor self{system};
  std::string out = R"({"joined":false,"nodes":[]})";
  self->request(cluster.membership, std::chrono::seconds(2), status_atom::value)
    .receive([&](std::string& json) { out = std::move(json); }, [&](caf::error&) {});
  return out;
}

void stop_cluster(caf::actor_system& system, cluster_endpoint& cluster) {
  cluster.guard.reset(); // no new links, and the peers' links close
  if (cluster.caf_port) {
    caf::scoped_actor self{system};
    self->request(system.middleman().actor_handle(), std::chrono::seconds(2), caf::unpublish_atom::value,
                  cluster.membership.address(), cluster.caf_port)
      .receive([] {}, [](caf::error&) {});
  }
  caf::anon_send_exit(cluster.membership, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(cluster.routing, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(cluster.serving, caf::exit_reason::user_shutdown);
}

} // namespace inflow::cluster
