#include "admin/http_server.hpp"

#include <utility> // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

namespace inflow::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct http_server::impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  handler handle;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec)
        return; // closed
      serve(std::move(socket));
      accept();
    });
  }

  void serve(tcp::socket socket) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    socket.set_option(asio::socket_base::receive_buffer_size(64 * 1024), ec);
    // Admin requests are tiny; a client that stalls mid-request is dropped.
    struct timeval tv{2, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    http::read(socket, buffer, parser, ec);
    if (ec)
      return;
    auto& req = parser.get();
    response r;
    try {
      r = handle(std::string(req.method_string()), std::string(req.target()));
    } catch (const std::exception& e) {
      r = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
    }
    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::server, "inflow");
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(false);
    res.body() = std::move(r.body);
    res.prepare_payload();
    http::write(socket, res, ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }
};

http_server::http_server(const std::string& host, uint16_t port, handler h) : impl_(new impl) {
  impl_->handle = std::move(h);
  beast::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec)
    throw std::runtime_error("admin address '" + host + "' is not an IP address");
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
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

http_server::~http_server() {
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->io.stop();
  impl_->thread.join();
}

uint16_t http_server::port() const {
  return impl_->acceptor.local_endpoint().port();
}

} // namespace inflow::admin
