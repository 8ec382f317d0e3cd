#pragma once
// Gateway providers register a factory under their name (REGISTER_GATEWAY);
// the node builds each configured model through the factory of its provider.
// Adding a provider is a new folder under gateways/ and nothing else.

#include "config/config.hpp"
#include "gateways/common/gateway_actor.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <stdexcept>
#include <vector>

namespace inflow::metrics {
class registry;
}

namespace inflow::gateways {

/// A model that has been loaded and checked, ready to be spawned as an actor.
struct prepared_model {
  model_info info;
  std::function<gateway_actor(caf::actor_system&)> spawn;
};

struct factory {
  std::vector<std::string> tasks;
  std::vector<config::option> options; ///< its own keys under `models.<name>`, for the reference
  /// Reads its keys from `provider_options`, loads and checks the model; throws invalid_options
  /// (an error per key, with its line) or std::runtime_error with a reason a user can act on.
  std::function<prepared_model(const config::model_config&, metrics::registry&)> prepare;
};

/// The provider's keys under a model are wrong: each error names the key and its line.
struct invalid_options : std::runtime_error {
  explicit invalid_options(std::vector<config::config_error> e)
    : std::runtime_error(e.empty() ? "" : e.front().message), errors(std::move(e)) {}
  std::vector<config::config_error> errors;
};

/// The options a provider declares (`block`), read from the model's keys before `prepare`
/// gets them; a key the block does not declare is an error.
template <class Options>
factory make_factory(std::vector<std::string> tasks, const config::option_block<Options>& block,
                     std::function<prepared_model(const config::model_config&, const Options&, metrics::registry&)> prepare) {
  return {std::move(tasks), block.options(), [block, prepare](const config::model_config& cfg, metrics::registry& m) {
            Options options{};
            std::vector<config::config_error> errors;
            block.read(cfg.provider_options, options, errors);
            for (auto& e : errors)
              if (e.message.rfind("unknown key", 0) == 0)
                e.message += "; every model also takes the keys docs/CONFIGURATION.md lists for models.*, and "
                             "`key: ~` drops a key (as --set models.<name>.<key>=~ does)";
            if (!errors.empty())
              throw invalid_options(std::move(errors));
            return prepare(cfg, options, m);
          }};
}

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

/// Every provider's own options, under a heading per provider, for the reference.
std::vector<std::pair<std::string, std::vector<config::option>>> provider_options();

/// Prepares every configured model; returns one error per model that fails (or per key).
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
