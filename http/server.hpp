#pragma once
// A small HTTP/1.1 server (Boost.Beast): one thread per connection, keep-alive.
// Serves the admin API and `inflow serve`. Bounded against clients that send too
// much, too slowly or not at all: header and body sizes are checked before
// anything is allocated for them, bodies in flight share a byte budget, a request
// must arrive whole within a timeout, and at the connection cap the longest-idle
// connection makes room for the new one.

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

/// The request carries `Authorization: Bearer <token>` (compared in constant time).
bool bearer_matches(const request& r, const std::string& token);

struct server_limits {
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 64 * 1024;
  /// Bodies being read or handled at once, all connections together (0: 4 × max_body_bytes);
  /// beyond it a request is answered 503 with Retry-After.
  size_t max_body_bytes_in_flight = 0;
  size_t max_connections = 64;
  /// From a connection being ready for a request (opened, or the last answer sent) to the
  /// request having arrived whole: bounds idle connections and slow senders alike.
  int request_timeout_ms = 30'000;
  /// PEM files: set both to serve HTTPS (TLS 1.2 or later) instead of HTTP.
  std::string tls_certificate;
  std::string tls_key;
};

class server {
public:
  /// Binds at once (port 0 picks a free port); throws std::runtime_error if it cannot (or if
  /// the TLS certificate or key cannot be loaded).
  server(const std::string& host, uint16_t port, handler h, server_limits limits = {});
  ~server();
  uint16_t port() const;

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace inflow::http
