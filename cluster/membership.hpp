#pragma once
// What a node knows of the cluster, without CAF: the peers it has a link to,
// the gateways each one hosts, and where a model call should go. The membership
// actor (cluster/membership_actor.cpp) keeps one, fed by what arrives over the
// network, and hands copies to the routing actor.

#include "cluster/wire.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace inflow::cluster {

class membership {
public:
  /// `gateways`: the models this node hosts itself.
  membership(std::string self, std::vector<wire::gateway_ad> gateways);

  const std::string& self() const { return self_; }
  const std::vector<wire::gateway_ad>& own_gateways() const { return own_; }
  /// Adds or updates a peer; true when it was not known.
  bool upsert(const wire::hello& peer);
  /// True when the peer was known.
  bool remove(const std::string& name);
  const std::map<std::string, wire::hello>& peers() const { return peers_; }
  bool knows_address(const std::string& listen) const;

  /// Every node hosting `model`, this one included when it does, by name.
  std::vector<std::string> hosts(const std::string& model) const;
  /// The peer to send a call for `model` to: the one with the least `load`, the
  /// first by name on a tie; nullopt if none hosts it.
  std::optional<std::string> pick(const std::string& model,
                                  const std::function<uint64_t(const std::string&)>& load) const;

private:
  std::string self_;
  std::vector<wire::gateway_ad> own_;
  std::map<std::string, wire::hello> peers_;
};

} // namespace inflow::cluster
