#include "gateways/common/registry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace inflow::gateways {

registry& registry::instance() {
  static registry r;
  return r;
}

void registry::add(const std::string& name, factory f) {
  if (!factories_.emplace(name, std::move(f)).second)
    throw std::logic_error("gateway provider registered twice: " + name);
}

const factory* registry::find(const std::string& name) const {
  auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::pair<std::string, std::vector<config::option>>> provider_options() {
  std::vector<std::pair<std::string, std::vector<config::option>>> out;
  for (const auto& [name, f] : registry::instance().all())
    out.emplace_back(name, f.options);
  return out;
}

std::vector<config::config_error> prepare_models(const config::node_file& cfg, metrics::registry& metrics,
                                                 std::map<std::string, prepared_model>& out) {
  std::vector<config::config_error> errors;
  for (const auto& [name, model] : cfg.models) {
    auto path = "models." + name;
    const factory* f = registry::instance().find(model.provider);
    if (!f) {
      std::string names;
      for (const auto& [n, _] : registry::instance().all())
        names += (names.empty() ? "" : ", ") + n;
      errors.push_back({path + ".provider", 0, fmt::format("unknown provider '{}' (known: {})", model.provider, names)});
      continue;
    }
    if (std::find(f->tasks.begin(), f->tasks.end(), model.task) == f->tasks.end()) {
      errors.push_back({path + ".task", 0, fmt::format("provider '{}' does not serve task '{}'", model.provider, model.task)});
      continue;
    }
    try {
      out.emplace(name, f->prepare(model, metrics));
    } catch (const invalid_options& e) {
      errors.insert(errors.end(), e.errors.begin(), e.errors.end());
    } catch (const std::exception& e) {
      errors.push_back({path, 0, e.what()});
    }
  }
  for (const auto& [name, model] : cfg.models) {
    if (model.fallback.empty())
      continue;
    auto path = "models." + name + ".fallback";
    auto fb = out.find(model.fallback);
    auto primary = out.find(name);
    if (!cfg.models.count(model.fallback) || model.fallback == name)
      errors.push_back({path, 0, fmt::format("'{}' is not another model under models:", model.fallback)});
    else if (fb != out.end() && primary != out.end() &&
             (fb->second.info.task != primary->second.info.task || fb->second.info.input != primary->second.info.input))
      errors.push_back({path, 0, fmt::format("fallback '{}' must have the same task and input as '{}'", model.fallback,
                                             name)});
    else if (!cfg.models.at(model.fallback).fallback.empty())
      errors.push_back({path, 0, fmt::format("fallback '{}' has a fallback of its own; chains are not supported",
                                             model.fallback)});
    else if (fb != out.end() && primary != out.end())
      primary->second.info.carries_trace |= fb->second.info.carries_trace; // a call may end up with it
  }
  return errors;
}

} // namespace inflow::gateways
