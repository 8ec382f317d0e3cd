// `inflow status`: the cluster as one node's admin API sees it.

#include "app/commands.hpp"
#include "app/common.hpp"
#include "http/client.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <future>

namespace inflow::app {

namespace {

/// The entries of a JSON array, each formatted by `format`, comma-separated; "-" when empty.
template <class Format>
std::string listing(const nlohmann::json& entries, Format&& format) {
  std::string out;
  for (const auto& e : entries)
    out += (out.empty() ? "" : ", ") + format(e);
  return out.empty() ? "-" : out;
}

/// A node on its own has no cluster section: describe it from its own status.
nlohmann::json as_cluster(const nlohmann::json& status) {
  if (status.contains("cluster"))
    return status["cluster"];
  nlohmann::json self{{"name", status["node"]["name"]}, {"roles", status["node"]["roles"]}, {"listen", "-"},
                      {"self", true}, {"calls_out", 0}, {"calls_in", 0},
                      {"gateways", nlohmann::json::array()}, {"partitions", nlohmann::json::array()}};
  // Named, not iterated as temporaries: items() refers to its json, which must outlive the loop.
  const auto gateways = status.value("gateways", nlohmann::json::object());
  const auto pipelines = status.value("pipelines", nlohmann::json::object());
  for (const auto& [model, g] : gateways.items())
    self["gateways"].push_back({{"model", model}, {"provider", g["provider"]}, {"version", g["version"]}});
  for (const auto& [pipeline, p] : pipelines.items())
    for (const auto& [partition, v] : p["partitions"].items())
      self["partitions"].push_back({{"pipeline", pipeline}, {"partition", std::stoi(partition)},
                                    {"in_flight", v["in_flight"]}});
  return {{"joined", true}, {"nodes", nlohmann::json::array({self})}};
}

/// A pipeline's model: each version's share and answers, and how its shadow compares.
void print_pipeline(const std::string& name, const nlohmann::json& p) {
  std::printf("pipeline %s: model %s\n", name.c_str(), p.value("model", "").c_str());
  for (const auto& v : p.value("versions", nlohmann::json::array())) {
    const auto scored = v["scored"].get<uint64_t>(), alerted = v["alerted"].get<uint64_t>();
    std::string calls = "called on another node";
    if (!v["calls"].is_null())
      calls = fmt::format("p50 {:.2f} ms, p99 {:.2f} ms, {} errors, ${:.4f}", v["calls"]["latency_p50_ms"].get<double>(),
                          v["calls"]["latency_p99_ms"].get<double>(), v["calls"]["errors"].get<uint64_t>(),
                          v["calls"]["cost_usd"].get<double>());
    std::printf("  version %-12s %5.1f %%  scored %llu, alerted %llu (%.2f %%); calls: %s\n",
                v["version"].get<std::string>().c_str(), v["share"].get<double>() * 100,
                static_cast<unsigned long long>(scored), static_cast<unsigned long long>(alerted),
                scored ? 100.0 * alerted / scored : 0.0, calls.c_str());
    if (v.contains("drift")) {
      const auto& d = v["drift"];
      std::string worst = "-";
      double top = -1;
      for (const auto& [feature, psi] : d["psi"].items())
        if (psi.get<double>() > top)
          top = psi.get<double>(), worst = fmt::format("{} {:.3f}", feature, top);
      std::printf("          drift: %s (highest PSI: %s; score KS %.3f)\n",
                  d["drifting"].get<bool>() ? "DRIFTING" : "none", worst.c_str(), d["score_ks"].get<double>());
    }
  }
  if (!p.contains("shadow"))
    return;
  const auto& s = p["shadow"];
  std::printf("  shadow  %-12s skipped %llu, failed %llu, unmatched %llu, written %llu\n",
              s["version"].get<std::string>().c_str(), static_cast<unsigned long long>(s["skipped"].get<uint64_t>()),
              static_cast<unsigned long long>(s["failed"].get<uint64_t>()),
              static_cast<unsigned long long>(s["unmatched"].get<uint64_t>()),
              static_cast<unsigned long long>(s["written"].get<uint64_t>()));
  for (const auto& a : s["against"])
    std::printf("    vs %-12s %llu compared, alert decision agrees %.2f %%, |score difference| mean %.4f, p99 %.4f\n",
                a["version"].get<std::string>().c_str(), static_cast<unsigned long long>(a["compared"].get<uint64_t>()),
                a["agreement"].get<double>() * 100, a["score_difference_mean"].get<double>(),
                a["score_difference_p99"].get<double>());
}

} // namespace

int run_status(const status_options& o) {
  std::string url = o.admin.find("://") == std::string::npos ? "http://" + o.admin : o.admin;
  http::url origin;
  try {
    origin = http::parse_url(url);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "status: --admin %s: %s\n", o.admin.c_str(), e.what());
    return usage;
  }
  http::client client(origin, {1, 5000});
  std::promise<http::result> answer;
  client.submit({"GET", "/api/status", {}, {}}, [&](http::result r) { answer.set_value(std::move(r)); });
  auto r = answer.get_future().get();
  if (r.error != http::result::failure::none || r.status != 200) {
    std::fprintf(stderr, "status: no answer from the admin API at %s (%s); is a node running there? (node.admin)\n",
                 url.c_str(), r.error != http::result::failure::none ? r.message.c_str()
                                                                      : fmt::format("HTTP {}", r.status).c_str());
    return unavailable;
  }
  auto status = nlohmann::json::parse(r.body, nullptr, false);
  if (status.is_discarded() || !status.contains("node")) {
    std::fprintf(stderr, "status: %s did not answer with an Inflow status\n", url.c_str());
    return unavailable;
  }
  if (o.json) {
    std::printf("%s\n", status.dump(2).c_str());
    return ok;
  }
  auto cluster = as_cluster(status);
  std::printf("%zu node(s), as %s sees them%s\n\n", cluster["nodes"].size(),
              status["node"]["name"].get<std::string>().c_str(), cluster["joined"].get<bool>() ? "" : " (still joining)");
  for (const auto& n : cluster["nodes"]) {
    std::printf("%s%s  %s\n", n["name"].get<std::string>().c_str(), n["self"].get<bool>() ? " (this node)" : "",
                n["listen"].get<std::string>().c_str());
    std::printf("  roles:       %s\n", fmt::format("{}", fmt::join(n["roles"].get<std::vector<std::string>>(), ", ")).c_str());
    auto gateways = listing(n["gateways"], [](const nlohmann::json& g) {
      return fmt::format("{} ({} {})", g["model"].get<std::string>(), g["provider"].get<std::string>(),
                         g["version"].get<std::string>());
    });
    auto partitions = listing(n["partitions"], [](const nlohmann::json& p) {
      return fmt::format("{}/{} ({} in flight)", p["pipeline"].get<std::string>(), p["partition"].get<int>(),
                         p["in_flight"].get<int64_t>());
    });
    std::printf("  gateways:    %s\n", gateways.c_str());
    std::printf("  partitions:  %s\n", partitions.c_str());
    std::printf("  model calls: %llu waiting on other nodes, %llu from other nodes in progress\n\n",
                static_cast<unsigned long long>(n["calls_out"].get<uint64_t>()),
                static_cast<unsigned long long>(n["calls_in"].get<uint64_t>()));
  }
  const auto pipelines = status.value("pipelines", nlohmann::json::object());
  for (const auto& [name, p] : pipelines.items())
    print_pipeline(name, p);
  return ok;
}

} // namespace inflow::app
