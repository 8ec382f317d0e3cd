#pragma once
// A model's cluster-wide rate limit, leased to the nodes hosting it in proportion to
// their demand, without CAF. The allocator (the first host by name) splits the limit
// by the demand every host reports; each host follows its part with one rule that keeps
// the cluster under the limit in every one-second window while parts move: a part
// shrinks at once, and grows only into room the other hosts' published parts have left
// free for a whole window (so a call made under a peer's old, larger part has left the
// window first).

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>

namespace inflow::cluster {

/// Whole requests per second for the nodes of `demand`, adding up to floor(limit). When the
/// limit covers every demand, each node gets its demand and the rest is split evenly over all
/// of them. Otherwise nodes without demand get nothing (their part is lent to the others) and
/// those with demand get parts in proportion to it, at least 1 each while the limit allows
/// (with fewer than one each: to the highest `priority` first, then by name).
std::map<std::string, double> allocate_requests(double limit, const std::map<std::string, double>& demand,
                                                const std::map<std::string, int>& priority = {});

/// Whether a new split is worth the move from `current`: every move costs a window (a part
/// shrinks at once and grows a window later), so small ones wait. True when the hosts differ,
/// a host's part moves by more than a tenth of the limit (at least 1), or a host with
/// `demand` has no part.
bool worth_moving(const std::map<std::string, double>& current, const std::map<std::string, double>& fresh,
                  const std::map<std::string, double>& demand, double limit);

/// Priorities that take turns when a limit has less than one request a second for each node
/// with work: a node that had a part keeps it (`patience`) until one left without has waited
/// longer. `waited` counts the allocations each node has had work and no part; it is updated.
std::map<std::string, int> turns(const std::map<std::string, double>& demand,
                                 const std::map<std::string, double>& last_parts, std::map<std::string, int>& waited,
                                 int patience = 5);

class request_lease {
public:
  using clock = std::chrono::steady_clock;
  /// The window a rate limit holds in, and what a grown part waits for.
  static constexpr auto window = std::chrono::milliseconds(1100);

  explicit request_lease(double limit) : limit_(limit) {}
  /// This node's part once its allocator asks for `target` and the peers publish
  /// `peer_parts`; a peer missing from them still counts what it published in the last window.
  /// With no peer in the window, the part is the target at once.
  double update(double target, const std::map<std::string, double>& peer_parts, clock::time_point now);
  double current() const { return current_; }

private:
  double limit_;
  double current_ = 0;
  double raise_to_ = 0;
  clock::time_point raise_since_{};
  struct peer {
    std::deque<std::pair<clock::time_point, double>> parts; ///< what it published, over the last window
    std::optional<clock::time_point> gone_since;             ///< first update it was missing from
  };
  std::map<std::string, peer> seen_;
};

} // namespace inflow::cluster
