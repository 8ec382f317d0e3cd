#pragma once
// What every `inflow` subcommand shares: exit codes, logging, signals.

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace inflow::app {

/// sysexits.h
enum exit_code : int { ok = 0, usage = 64, unavailable = 69, internal = 70, tempfail = 75, config_error = 78 };

/// `format`: text or json; `level`: spdlog level name. Logs go to stderr.
void setup_logging(const std::string& format, const std::string& level);

/// Blocks SIGINT and SIGTERM in every thread started afterwards, so that they
/// are only ever taken by wait_for_stop(). Call first in main().
void block_stop_signals();
/// Waits up to `timeout` for SIGINT or SIGTERM; true when one arrived.
bool wait_for_stop(std::chrono::milliseconds timeout);

/// While it lives, a thread of its own counts the stop signals into `count` (the only
/// thread taking them meanwhile): a first one ends the work, a later one gives up waiting.
class stop_counter {
public:
  explicit stop_counter(std::atomic<int>& count);
  ~stop_counter();

private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// `inflow node`: SIGHUP asks for a reload. Blocks it like the stop signals (call before any
/// thread starts), so that wait_for_signal() takes it.
void block_reload_signal();
enum class signal_seen { none, stop, reload };
/// Waits up to `timeout` for SIGINT, SIGTERM or SIGHUP.
signal_seen wait_for_signal(std::chrono::milliseconds timeout);

bool stderr_is_terminal();

} // namespace inflow::app
