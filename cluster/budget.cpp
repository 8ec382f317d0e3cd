#include "cluster/budget.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace inflow::cluster {

std::map<std::string, double> allocate_requests(double limit, const std::map<std::string, double>& demand,
                                                const std::map<std::string, int>& priority) {
  std::map<std::string, double> out;
  double total = 0;
  for (const auto& [node, d] : demand)
    if (d > 0) {
      out[node] = 0;
      total += d;
    }
  auto whole = static_cast<int64_t>(std::floor(limit));
  if (out.empty() || whole <= 0)
    return out;
  // Room for everyone's demand: each gets it, and what is left goes to every node evenly, so
  // that one whose work starts has a part already.
  double needed = 0;
  for (const auto& [node, part] : out)
    needed += std::ceil(demand.at(node));
  if (needed <= static_cast<double>(whole)) {
    std::map<std::string, double> all;
    for (const auto& [node, d] : demand)
      all[node] = d > 0 ? std::ceil(d) : 0;
    auto left = whole - static_cast<int64_t>(needed);
    const auto each = left / static_cast<int64_t>(all.size());
    left -= each * static_cast<int64_t>(all.size());
    for (auto& [node, part] : all)
      part += static_cast<double>(each) + (left-- > 0 ? 1 : 0);
    return all;
  }
  // At least one each while there is one to give: by priority, then by name.
  std::vector<std::string> order;
  for (const auto& [node, part] : out)
    order.push_back(node);
  auto rank = [&](const std::string& node) {
    auto it = priority.find(node);
    return it == priority.end() ? 0 : it->second;
  };
  std::stable_sort(order.begin(), order.end(), [&](auto& a, auto& b) { return rank(a) > rank(b); });
  for (const auto& node : order)
    if (whole > 0) {
      out[node] = 1;
      --whole;
    }
  // The rest by demand, largest remainders first.
  const auto rest = static_cast<double>(whole);
  std::vector<std::pair<double, std::string>> remainders;
  for (auto& [node, part] : out) {
    double exact = rest * demand.at(node) / total;
    auto floor = std::floor(exact);
    part += floor;
    whole -= static_cast<int64_t>(floor);
    remainders.emplace_back(exact - floor, node);
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t i = 0; whole > 0 && i < remainders.size(); ++i, --whole)
    out[remainders[i].second] += 1;
  return out;
}

bool worth_moving(const std::map<std::string, double>& current, const std::map<std::string, double>& fresh,
                  const std::map<std::string, double>& demand, double limit) {
  auto part = [](const std::map<std::string, double>& parts, const std::string& node) {
    auto it = parts.find(node);
    return it == parts.end() ? 0.0 : it->second;
  };
  const double step = std::max(1.0, limit / 10);
  for (const auto& [node, d] : demand) {
    if (!current.count(node) != !fresh.count(node) && (part(current, node) > 0 || part(fresh, node) > 0))
      return true;
    if (std::abs(part(current, node) - part(fresh, node)) > step || (d > 0 && part(current, node) <= 0))
      return true;
  }
  for (const auto& [node, p] : current)
    if (!demand.count(node) && p > 0)
      return true; // a host that is gone
  return current.empty();
}

std::map<std::string, int> turns(const std::map<std::string, double>& demand,
                                 const std::map<std::string, double>& last_parts, std::map<std::string, int>& waited,
                                 int patience) {
  std::map<std::string, int> priority;
  for (const auto& [node, d] : demand) {
    auto part = last_parts.find(node);
    const bool holds = part != last_parts.end() && part->second > 0;
    waited[node] = d > 0 && !holds ? waited[node] + 1 : 0;
    priority[node] = holds ? patience : waited[node];
  }
  return priority;
}

double request_lease::update(double target, const std::map<std::string, double>& peer_parts, clock::time_point now) {
  for (const auto& [node, part] : peer_parts) {
    auto& peer = seen_[node];
    peer.parts.emplace_back(now, part);
    peer.gone_since.reset();
  }
  double others = 0; // the most each peer may have used in the last window
  for (auto it = seen_.begin(); it != seen_.end();) {
    auto& peer = it->second;
    if (!peer_parts.count(it->first) && !peer.gone_since)
      peer.gone_since = now; // it may have called until now
    if (peer.gone_since && now - *peer.gone_since >= window) {
      it = seen_.erase(it);
      continue;
    }
    while (peer.parts.size() > 1 && now - peer.parts[1].first >= window)
      peer.parts.pop_front(); // the oldest part ended when the next began, before the window
    double most = 0;
    for (const auto& [when, part] : peer.parts)
      most = std::max(most, part);
    others += most;
    ++it;
  }
  target = std::min(target, limit_);
  if (target <= current_) {
    current_ = target;
    raise_to_ = 0;
    return current_;
  }
  if (target != raise_to_) {
    raise_to_ = target;
    raise_since_ = now;
  }
  // With no other host in the window there is no other part to wait for.
  if (seen_.empty() || now - raise_since_ >= window)
    current_ = std::max(current_, std::min(target, std::floor(limit_ - others)));
  return current_;
}

} // namespace inflow::cluster
