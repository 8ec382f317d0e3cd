#pragma once
// A small HTTP/1.1 server (Boost.Beast): one thread per connection, keep-alive,
// capped request sizes. Serves the admin API and `inflow serve`.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace inflow::http {

struct request {
  std::string method;
  std::string target; ///< path and query
  std::string body;
  std::string header(const std::string& name) const;
  std::function<std::string(const std::string&)> header_lookup;
};

struct response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using handler = std::function<response(const request&)>;

struct server_limits {
  size_t max_body_bytes = 64 * 1024;
  size_t max_connections = 256;
  int idle_timeout_s = 30;
};

class server {
public:
  /// Binds at once (port 0 picks a free port); throws std::runtime_error if it cannot.
  server(const std::string& host, uint16_t port, handler h, server_limits limits = {});
  ~server();
  uint16_t port() const;

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace inflow::http
