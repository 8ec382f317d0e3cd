#pragma once
// A small HTTP/1.1 server (Boost.Beast) for the admin API of a node. One
// thread, one request per connection; the handler runs on that thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace inflow::admin {

struct response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using handler = std::function<response(const std::string& method, const std::string& target)>;

class http_server {
public:
  /// Binds at once (port 0 picks a free port); throws std::runtime_error if it cannot.
  http_server(const std::string& host, uint16_t port, handler h);
  ~http_server();
  uint16_t port() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace inflow::admin
