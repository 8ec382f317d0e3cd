#include "app/commands.hpp"
#include "app/common.hpp"
#include "node/node.hpp"
#include "gateways/common/registry.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace inflow::app {

namespace {

void print_errors(const std::string& source, const std::vector<config::config_error>& errors) {
  for (const auto& e : errors)
    fmt::print(stderr, "{}\n", config::format_error(source, e));
  fmt::print(stderr, "{} error(s); see docs/CONFIGURATION.md for every option\n", errors.size());
}

/// `code`, returned; or, when librdkafka still holds a thread the node could not wait for,
/// the process ends here with it, before any destructor can free what that thread uses.
int exit_code_of(const node& node, int code) {
  if (node.abandoned()) {
    spdlog::default_logger()->flush();
    std::_Exit(code);
  }
  return code;
}

/// Tells systemd (Type=notify; a no-op without NOTIFY_SOCKET) how the node is doing: started,
/// alive (for WatchdogSec), ready or why not, stopping.
class service_manager {
public:
  service_manager() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0)
      watchdog_ = true;
  }
  void started() { sd_notify(0, "READY=1\nSTATUS=started; waiting for the consumer group"); }
  /// Once a second from the main loop: the loop itself turning is what the watchdog checks.
  void tick(const node& node) {
    if (watchdog_)
      sd_notify(0, "WATCHDOG=1");
    const bool ready = node.ready();
    if (ready != ready_) {
      ready_ = ready;
      sd_notify(0, ready ? "STATUS=ready" : "STATUS=not ready (see /readyz)");
    }
  }
  void stopping() { sd_notify(0, "STOPPING=1\nSTATUS=draining in-flight records"); }
  /// systemd's Type=notify reload protocol: RELOADING=1, then READY=1 when done.
  void reloading() { sd_notify(0, "RELOADING=1\nSTATUS=reloading the config and models"); }
  void reloaded(const std::string& summary) { sd_notify(0, ("READY=1\nSTATUS=reload: " + summary).c_str()); }

private:
  bool watchdog_ = false;
  bool ready_ = false;
};

} // namespace

int run_node(const node_options& o) {
  block_reload_signal();
  auto loaded = config::load_file(o.config_path, o.overrides);
  if (!loaded.config) {
    print_errors(o.config_path, loaded.errors);
    return config_error;
  }
  try {
    node node(std::move(*loaded.config));
    node.reload_from(o.config_path, o.overrides);
    node.start();
    spdlog::info("node running; SIGTERM or Ctrl-C drains in-flight records, commits and exits; SIGHUP reloads "
                 "the config and model files");
    service_manager systemd;
    systemd.started();
    std::string fatal;
    for (auto seen = signal_seen::none; seen != signal_seen::stop; seen = wait_for_signal(std::chrono::seconds(1))) {
      if (seen == signal_seen::reload) {
        systemd.reloading();
        systemd.reloaded(node.reload().summary); // it logs what it did, or why not
      }
      if (fatal = node.fatal_error(); !fatal.empty())
        break;
      systemd.tick(node);
    }
    systemd.stopping();
    if (!fatal.empty()) {
      // Uncommitted records are read again by the next start: nothing is lost.
      spdlog::critical("{}; stopping without committing what is not finished (a restart reads it again)", fatal);
      node.stop();
      return exit_code_of(node, internal);
    }
    spdlog::info("stopping: draining in-flight records");
    if (!node.stop()) {
      spdlog::warn("stopped with records not finished or not committed within node.drain_timeout_ms (the "
                   "warnings above say which); they will be read again on the next start");
      return exit_code_of(node, tempfail);
    }
    spdlog::info("stopped cleanly");
    return ok;
  } catch (config_failure& e) {
    config::note_overrides(e.errors, o.overrides);
    print_errors(o.config_path, e.errors);
    return config_error;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return unavailable;
  }
}

int run_validate(const node_options& o, bool print_reference) {
  if (print_reference) {
    fmt::print("{}", config::reference_markdown(gateways::provider_options()));
    return ok;
  }
  auto loaded = config::load_file(o.config_path, o.overrides);
  auto errors = loaded.errors;
  if (loaded.config) {
    try {
      node check(std::move(*loaded.config)); // loads every model, starts nothing
    } catch (const config_failure& e) {
      errors = e.errors;
      config::note_overrides(errors, o.overrides);
    }
  }
  if (!errors.empty()) {
    print_errors(o.config_path, errors);
    return config_error;
  }
  fmt::print("OK: {}\n", o.config_path);
  return ok;
}

int run_gateways() {
  for (const auto& [name, f] : gateways::registry::instance().all()) {
    std::string tasks;
    for (const auto& t : f.tasks)
      tasks += (tasks.empty() ? "" : ", ") + t;
    fmt::print("{:<20} {}\n", name, tasks);
  }
  return ok;
}

} // namespace inflow::app
