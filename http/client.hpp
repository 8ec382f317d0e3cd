#pragma once
// An HTTP/1.1 client for model providers: a fixed set of keep-alive
// connections to one origin, each served by its own thread, with a deadline
// per call and caps on response size. Results arrive through a callback on
// that connection's thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace inflow::http {

struct url {
  std::string scheme; ///< http or https
  std::string host;
  uint16_t port = 0;
  std::string target; ///< path and query
};
/// Throws std::invalid_argument with a message naming what is wrong.
url parse_url(const std::string& text);
/// The Host header for a URL: the port only when it is not the scheme's default.
std::string host_header(const url& u);

struct call {
  std::string method = "POST";
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Runs on the connection's thread once the request is written, with the time it left: a
  /// limit counted from when the call was decided on would miss how late a busy thread sent it.
  std::function<void(std::chrono::steady_clock::time_point)> on_sent;
};

struct result {
  enum class failure : uint8_t { none, connect, timeout, reset, too_large };
  failure error = failure::none;
  std::string message; ///< what went wrong, when error is set
  int status = 0;
  std::map<std::string, std::string> headers; ///< names in lower case
  std::string body;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct client_options {
  int connections = 8;
  int timeout_ms = 2000;
  size_t max_response_bytes = 16 * 1024 * 1024;
  size_t max_header_bytes = 64 * 1024;
  std::string ca_file; ///< https: trust these CAs instead of the system's
};

class client {
public:
  client(url origin, client_options options);
  ~client(); ///< finishes queued calls' callbacks with a reset failure
  /// Queues a call; `done` runs on a connection thread when it ends.
  void submit(call c, std::function<void(result)> done);
  const url& origin() const { return origin_; }

private:
  struct impl;
  url origin_;
  std::unique_ptr<impl> impl_;
};

/// One call to `url` (its path and query become the target), waiting for the answer: for rare
/// calls such as fetching a token. Throws std::invalid_argument for a bad URL.
result fetch(const std::string& url, call c, client_options options = {});

} // namespace inflow::http
