#pragma once
// The secret a provider call carries, kept fresh: an api key (from the config or a
// file), or an OAuth access token from Google or Microsoft Entra ID, fetched again
// before it expires. `auth:` picks the source; the options are declared here once for
// every provider that takes them.

#include "config/config.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace inflow::gateways {

/// What a call carries that can be got again when the provider refuses it. Thread-safe.
class renewable {
public:
  virtual ~renewable() = default;
  /// The provider refused it: read or fetch it again. True when that gave a new one, worth one more try.
  virtual bool refresh() = 0;
  /// Changes whenever a new one is had, so that a refused call can tell whether it carried the latest.
  virtual uint64_t generation() const = 0;
};

/// A provider's key or access token. The secret is never printed.
class credential : public renewable {
public:
  virtual std::string value() const = 0;
  /// An OAuth access token (sent as `Authorization: Bearer`) rather than a provider's own key.
  virtual bool is_access_token() const { return false; }
};

/// A provider's credential options: its own key, or (with `auth:`) an OAuth token source.
struct credential_options {
  std::string api_key; ///< secret
  std::string api_key_file;
  std::string auth; ///< api_key, or a token source
  std::string token_scope;
  std::string credentials_file; ///< google_service_account
  std::string tenant_id;        ///< azure_client_credentials
  std::string client_id;        ///< azure_*
  std::string client_secret;    ///< secret
};

/// `api_key` and `api_key_file`: for providers that take their own keys only.
const config::option_block<credential_options>& api_key_options();
/// Those and `auth:` with what each token source needs.
const config::option_block<credential_options>& credential_options_block();

/// The model's credential from `auth` (default: `api_key`, else the content of `api_key_file`).
/// `token_scope` is the OAuth scope the provider's tokens need (an Entra ID or Google scope);
/// nullopt: the provider takes its own keys only. Throws std::runtime_error when `required` and
/// there is none, or when the first token cannot be had (the message says why and what to set).
std::shared_ptr<credential> make_credential(const config::model_config& cfg, const credential_options& options,
                                            std::optional<std::string> token_scope, bool required);

/// Logs that refreshing `what` failed, and what happens next.
void warn_refresh_failed(const std::string& what, const char* reason);

/// A value that expires, fetched at start and again ahead of its expiry on a thread of its own
/// (when a quarter of its life, at most 5 minutes, is left); failed fetches are retried with
/// backoff and logged. `fetch` throws std::runtime_error with a reason.
template <class T>
class refreshing {
public:
  using clock = std::chrono::system_clock;
  struct fetched {
    T value;
    clock::time_point expires = clock::time_point::max(); ///< max: never; fetched again only when refused
  };
  using fetch_fn = std::function<fetched()>;

  refreshing(std::string what, fetch_fn fetch) : what_(std::move(what)), fetch_(std::move(fetch)), current_(fetch_()) {
    fetched_at_ = clock::now();
    thread_ = std::thread([this] { run(); });
  }
  ~refreshing() {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  T value() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return current_.value;
  }
  uint64_t generation() const { return generation_.load(); }
  /// Fetches now (or takes what was fetched in the last 2 s); false when that failed.
  bool refresh() {
    std::lock_guard<std::mutex> one_at_a_time(fetching_);
    {
      std::lock_guard<std::mutex> guard(mutex_);
      if (clock::now() - fetched_at_ < std::chrono::seconds(2))
        return true;
    }
    return fetch_now();
  }

private:
  bool fetch_now() {
    try {
      auto fresh = fetch_();
      std::lock_guard<std::mutex> guard(mutex_);
      current_ = std::move(fresh);
      fetched_at_ = clock::now();
      failures_ = 0;
      ++generation_;
      return true;
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> guard(mutex_);
      if (failures_++ % 10 == 0)
        warn_refresh_failed(what_, e.what());
      return false;
    }
  }
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      auto when = clock::time_point::max();
      if (current_.expires != clock::time_point::max()) {
        auto life = current_.expires - fetched_at_;
        when = current_.expires - std::min<clock::duration>(life / 4, std::chrono::minutes(5));
        if (failures_ > 0) // retry soon, sooner as the expiry nears
          when = clock::now() + std::clamp<clock::duration>((current_.expires - clock::now()) / 4,
                                                            std::chrono::seconds(1), std::chrono::seconds(30));
      }
      if (when == clock::time_point::max())
        wake_.wait(lock, [this] { return stopping_; });
      else if (!wake_.wait_until(lock, when, [this] { return stopping_; })) {
        lock.unlock();
        {
          std::lock_guard<std::mutex> one_at_a_time(fetching_);
          fetch_now();
        }
        lock.lock();
      }
    }
  }
  std::string what_;
  fetch_fn fetch_;
  mutable std::mutex mutex_;
  std::mutex fetching_;
  std::condition_variable wake_;
  fetched current_;
  clock::time_point fetched_at_;
  int failures_ = 0;
  std::atomic<uint64_t> generation_{1};
  bool stopping_ = false;
  std::thread thread_;
};

} // namespace inflow::gateways
