#include "cluster/membership.hpp"

#include <algorithm>
#include <cmath>

namespace inflow::cluster {

membership::membership(std::string self, std::vector<wire::gateway_ad> gateways)
  : self_(std::move(self)), own_(std::move(gateways)) {}

bool membership::upsert(const wire::hello& peer) {
  auto [it, added] = peers_.insert_or_assign(peer.node, peer);
  return added;
}

bool membership::remove(const std::string& name) {
  return peers_.erase(name) > 0;
}

bool membership::knows_address(const std::string& listen) const {
  return std::any_of(peers_.begin(), peers_.end(), [&](const auto& p) { return p.second.listen == listen; });
}

namespace {

bool hosts_model(const std::vector<wire::gateway_ad>& gateways, const std::string& model) {
  return std::any_of(gateways.begin(), gateways.end(), [&](const auto& g) { return g.model == model; });
}

} // namespace

std::vector<std::string> membership::hosts(const std::string& model) const {
  std::vector<std::string> out;
  if (hosts_model(own_, model))
    out.push_back(self_);
  for (const auto& [name, peer] : peers_)
    if (hosts_model(peer.gateways, model))
      out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::string> membership::pick(const std::string& model,
                                            const std::function<uint64_t(const std::string&)>& load) const {
  std::optional<std::string> best;
  uint64_t best_load = 0;
  for (const auto& [name, peer] : peers_) {
    if (!hosts_model(peer.gateways, model))
      continue;
    auto l = load(name);
    if (!best || l < best_load) {
      best = name;
      best_load = l;
    }
  }
  return best;
}

} // namespace inflow::cluster
