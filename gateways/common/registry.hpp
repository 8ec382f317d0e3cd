#pragma once
// Gateway providers register a factory under their name (REGISTER_GATEWAY);
// the node builds each configured model through the factory of its provider.
// Adding a provider is a new folder under gateways/ and nothing else.

#include "config/config.hpp"
#include "gateways/common/gateway_api.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace caf {
class actor;
class actor_system;
} // namespace caf

namespace inflow::metrics {
class registry;
}

namespace inflow::gateways {

/// A model that has been loaded and checked, ready to be spawned as an actor.
struct prepared_model {
  model_info info;
  std::function<caf::actor(caf::actor_system&)> spawn;
};

struct factory {
  std::vector<std::string> tasks;
  /// Loads and checks the model; throws std::runtime_error with a reason a user can act on.
  std::function<prepared_model(const config::model_config&, metrics::registry&)> prepare;
};

class registry {
public:
  static registry& instance();
  /// Throws std::logic_error when the name is taken.
  void add(const std::string& name, factory f);
  const factory* find(const std::string& name) const;
  const std::map<std::string, factory>& all() const { return factories_; }

private:
  std::map<std::string, factory> factories_;
};

/// Prepares every configured model; returns one error per model that fails.
std::vector<config::config_error> prepare_models(const config::node_file& cfg, metrics::registry& metrics,
                                                 std::map<std::string, prepared_model>& out);

} // namespace inflow::gateways

#define INFLOW_CONCAT_(a, b) a##b
#define INFLOW_CONCAT(a, b) INFLOW_CONCAT_(a, b)
/// REGISTER_GATEWAY("name", factory_expression) at namespace scope in the provider's .cpp.
#define REGISTER_GATEWAY(name, ...)                                                                \
  static const bool INFLOW_CONCAT(inflow_gateway_registered_, __LINE__) = [] {                     \
    ::inflow::gateways::registry::instance().add(name, __VA_ARGS__);                               \
    return true;                                                                                   \
  }()
