#include "http/server.hpp"

#include <utility> // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <list>
#include <mutex>
#include <thread>

namespace inflow::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

std::string request::header(const std::string& name) const {
  return header_lookup ? header_lookup(name) : std::string();
}

struct server::impl : std::enable_shared_from_this<server::impl> {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  handler handle;
  server_limits limits;
  std::thread accept_thread;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> connections{0};
  std::mutex mutex;
  struct worker {
    std::shared_ptr<tcp::socket> socket;
    std::shared_ptr<std::atomic<bool>> done;
    std::thread thread;
  };
  std::list<worker> workers;

  void accept_loop() {
    while (!stopping) {
      auto socket = std::make_shared<tcp::socket>(io);
      beast::error_code ec;
      acceptor.accept(*socket, ec);
      if (ec || stopping)
        break;
      if (connections >= limits.max_connections) {
        socket->close(ec); // refuse rather than exhaust threads
        continue;
      }
      ++connections;
      std::lock_guard<std::mutex> guard(mutex);
      reap();
      auto done = std::make_shared<std::atomic<bool>>(false);
      workers.push_back({socket, done, std::thread([self = shared_from_this(), socket, done] {
                           self->serve(*socket);
                           *done = true;
                         })});
    }
  }

  /// Joins the threads of closed connections. Caller holds `mutex`.
  void reap() {
    for (auto it = workers.begin(); it != workers.end();) {
      if (*it->done) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }

  void serve(tcp::socket& socket) {
    struct timeval tv{limits.idle_timeout_s, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    beast::flat_buffer buffer;
    beast::error_code ec;
    while (!stopping) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(limits.max_body_bytes);
      parser.header_limit(16 * 1024);
      bhttp::read(socket, buffer, parser, ec);
      if (ec == bhttp::error::body_limit) {
        reply(socket, 11, false, {413, "text/plain; charset=utf-8", "request body too large\n"}, ec);
        break;
      }
      if (ec)
        break;
      auto& req = parser.get();
      request r{std::string(req.method_string()), std::string(req.target()), std::move(req.body()), {}};
      r.header_lookup = [&req](const std::string& name) { return std::string(req[name]); };
      response out;
      try {
        out = handle(r);
      } catch (const std::exception& e) {
        out = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
      }
      bool keep_alive = req.keep_alive();
      reply(socket, req.version(), keep_alive, std::move(out), ec);
      if (ec || !keep_alive)
        break;
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    --connections;
  }

  static void reply(tcp::socket& socket, unsigned version, bool keep_alive, response r, beast::error_code& ec) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
    res.set(bhttp::field::server, "inflow");
    res.set(bhttp::field::content_type, r.content_type);
    res.set(bhttp::field::cache_control, "no-store");
    res.keep_alive(keep_alive);
    res.body() = std::move(r.body);
    res.prepare_payload();
    bhttp::write(socket, res, ec);
  }
};

server::server(const std::string& host, uint16_t port, handler h, server_limits limits)
  : impl_(std::make_shared<impl>()) {
  impl_->handle = std::move(h);
  impl_->limits = limits;
  beast::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec)
    throw std::runtime_error("'" + host + "' is not an IP address");
  tcp::endpoint endpoint{address, port};
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec)
    impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    impl_->acceptor.bind(endpoint, ec);
  if (!ec)
    impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  impl_->accept_thread = std::thread([i = impl_] { i->accept_loop(); });
}

server::~server() {
  impl_->stopping = true;
  beast::error_code ec;
  // Unblock accept() and every connection's read().
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  impl_->accept_thread.join();
  impl_->acceptor.close(ec);
  std::lock_guard<std::mutex> guard(impl_->mutex);
  for (auto& w : impl_->workers)
    if (!*w.done)
      ::shutdown(w.socket->native_handle(), SHUT_RDWR);
  for (auto& w : impl_->workers)
    w.thread.join();
}

uint16_t server::port() const {
  return impl_->acceptor.local_endpoint().port();
}

} // namespace inflow::http
