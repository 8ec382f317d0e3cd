#include "http/server.hpp"

#include <utility> // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

namespace inflow::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

} // namespace

std::string request::header(const std::string& name) const {
  return header_lookup ? header_lookup(name) : std::string();
}

bool bearer_matches(const request& r, const std::string& token) {
  const std::string given = r.header("Authorization"), expected = "Bearer " + token;
  unsigned char differ = given.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i)
    differ |= static_cast<unsigned char>(i < given.size() ? given[i] ^ expected[i] : 1);
  return differ == 0;
}

struct server::impl : std::enable_shared_from_this<server::impl> {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  handler handle;
  server_limits limits;
  std::thread accept_thread;
  std::thread watch_thread;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> body_bytes_in_flight{0};
  std::optional<asio::ssl::context> tls; ///< set: HTTPS
  std::mutex mutex;
  std::condition_variable stopped;
  struct connection {
    tcp::socket socket;
    std::atomic<int64_t> deadline_ms{0}; ///< the request must have arrived by then; 0 while it is handled
    std::atomic<int64_t> ready_since_ms{0};
    std::atomic<bool> done{false};
    std::atomic<bool> was_cut{false};
    std::mutex fd_mutex; ///< cut() never touches a descriptor close() gave back (it may be a new connection's)
    bool closed = false;
    explicit connection(asio::io_context& io) : socket(io) {}
    /// Unblocks its thread's read or write; the thread then closes it.
    void cut() {
      std::lock_guard<std::mutex> guard(fd_mutex);
      was_cut = true;
      if (!closed)
        ::shutdown(socket.native_handle(), SHUT_RDWR);
    }
    void close() {
      std::lock_guard<std::mutex> guard(fd_mutex);
      beast::error_code ec;
      socket.shutdown(tcp::socket::shutdown_both, ec);
      socket.close(ec);
      closed = true;
    }
  };
  struct worker {
    std::shared_ptr<connection> conn;
    std::thread thread;
  };
  std::list<worker> workers; ///< guarded by `mutex`

  void accept_loop() {
    while (!stopping) {
      auto conn = std::make_shared<connection>(io);
      beast::error_code ec;
      acceptor.accept(conn->socket, ec);
      if (stopping)
        break;
      if (ec) {
        // A client gone before it was accepted, or no file descriptors left for a moment: the
        // server must outlive both (found by fuzzing: one failed accept ended the loop for good).
        if (ec != asio::error::connection_aborted && ec != asio::error::interrupted) {
          spdlog::warn("http server: accepting a connection failed: {}", ec.message());
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        continue;
      }
      std::lock_guard<std::mutex> guard(mutex);
      reap();
      if (workers.size() >= limits.max_connections && !evict_idlest()) {
        conn->socket.close(ec); // every connection is mid-request: refuse rather than exhaust threads
        continue;
      }
      conn->ready_since_ms = steady_ms();
      conn->deadline_ms = conn->ready_since_ms + limits.request_timeout_ms;
      workers.push_back({conn, std::thread([self = shared_from_this(), conn] {
                           self->serve(*conn);
                           conn->done = true;
                         })});
    }
  }

  /// At the cap: cuts the connection waiting longest for its next request. Caller holds `mutex`.
  bool evict_idlest() {
    connection* idlest = nullptr;
    for (auto& w : workers)
      if (!w.conn->done && !w.conn->was_cut && w.conn->deadline_ms != 0 &&
          (!idlest || w.conn->ready_since_ms < idlest->ready_since_ms))
        idlest = w.conn.get();
    if (idlest)
      idlest->cut();
    return idlest != nullptr;
  }

  /// Joins the threads of closed connections. Caller holds `mutex`.
  void reap() {
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->conn->done) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }

  /// Cuts the connections whose request did not arrive in time (sync reads have no timeout of their own).
  void watch_loop() {
    std::unique_lock<std::mutex> lock(mutex);
    while (!stopped.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping.load(); })) {
      const int64_t now = steady_ms();
      for (auto& w : workers)
        if (int64_t deadline = w.conn->deadline_ms; deadline != 0 && now >= deadline && !w.conn->was_cut)
          w.conn->cut();
    }
  }

  /// Reserves room for a body in the shared budget; false if there is none.
  bool reserve(size_t bytes) {
    const size_t budget = limits.max_body_bytes_in_flight ? limits.max_body_bytes_in_flight : 4 * limits.max_body_bytes;
    size_t used = body_bytes_in_flight.load();
    do {
      if (used + bytes > budget)
        return false;
    } while (!body_bytes_in_flight.compare_exchange_weak(used, used + bytes));
    return true;
  }

  void serve(connection& conn) {
    beast::error_code ec;
    if (tls) {
      asio::ssl::stream<tcp::socket&> stream(conn.socket, *tls);
      stream.handshake(asio::ssl::stream_base::server, ec); // under the request deadline too
      if (!ec) {
        serve_requests(stream, conn);
        stream.shutdown(ec);
      }
    } else {
      serve_requests(conn.socket, conn);
    }
    conn.close();
  }

  template <class Stream>
  void serve_requests(Stream& socket, connection& conn) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    while (!stopping) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      parser.body_limit(limits.max_body_bytes);
      bhttp::read_header(socket, buffer, parser, ec);
      if (ec == bhttp::error::header_limit) {
        reply(socket, 11, false, {431, "text/plain; charset=utf-8", "request header too large\n"}, ec);
        break;
      }
      if (ec == bhttp::error::body_limit) { // from Content-Length, before any of the body is read
        reply(socket, 11, false,
              {413, "text/plain; charset=utf-8",
               "request body too large (at most " + std::to_string(limits.max_body_bytes) + " bytes)\n"},
              ec);
        break;
      }
      if (ec)
        break;
      // Known before the body is read: its size, reserved in the budget all connections share.
      const size_t body_bytes = parser.content_length() ? static_cast<size_t>(*parser.content_length())
                                                        : (parser.chunked() ? limits.max_body_bytes : 0);
      if (!reserve(body_bytes)) {
        reply(socket, parser.get().version(), false,
              {503, "text/plain; charset=utf-8", "too many large requests at once; retry shortly\n"}, ec);
        break;
      }
      bhttp::read(socket, buffer, parser, ec);
      conn.deadline_ms = 0; // arrived: handling it has no deadline here
      bool keep_alive = false;
      if (ec == bhttp::error::body_limit) {
        reply(socket, 11, false, {413, "text/plain; charset=utf-8", "request body too large\n"}, ec);
      } else if (!ec) {
        auto& req = parser.get();
        request r{std::string(req.method_string()), std::string(req.target()), std::move(req.body()), {}};
        r.header_lookup = [&req](const std::string& name) { return std::string(req[name]); };
        response out;
        try {
          out = handle(r);
        } catch (const std::exception& e) {
          out = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
        }
        r = {};
        keep_alive = req.keep_alive();
        reply(socket, req.version(), keep_alive, std::move(out), ec);
      }
      body_bytes_in_flight -= body_bytes;
      if (ec || !keep_alive)
        break;
      conn.ready_since_ms = steady_ms();
      conn.deadline_ms = conn.ready_since_ms + limits.request_timeout_ms;
    }
  }

  template <class Stream>
  static void reply(Stream& socket, unsigned version, bool keep_alive, response r, beast::error_code& ec) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
    res.set(bhttp::field::server, "inflow");
    res.set(bhttp::field::content_type, r.content_type);
    res.set(bhttp::field::cache_control, "no-store");
    if (r.status == 503)
      res.set(bhttp::field::retry_after, "1");
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
  if (!limits.tls_certificate.empty() || !limits.tls_key.empty()) {
    auto& tls = impl_->tls.emplace(asio::ssl::context::tls_server);
    tls.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                    asio::ssl::context::no_tlsv1_1);
    beast::error_code tls_error;
    tls.use_certificate_chain_file(limits.tls_certificate, tls_error);
    if (!tls_error)
      tls.use_private_key_file(limits.tls_key, asio::ssl::context::pem, tls_error);
    if (tls_error)
      throw std::runtime_error("cannot load the TLS certificate " + limits.tls_certificate + " and key " +
                               limits.tls_key + ": " + tls_error.message());
  }
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
  impl_->watch_thread = std::thread([i = impl_] { i->watch_loop(); });
}

server::~server() {
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->stopped.notify_all();
  impl_->watch_thread.join();
  beast::error_code ec;
  // Unblock accept() and every connection's read().
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  impl_->accept_thread.join();
  impl_->acceptor.close(ec);
  std::lock_guard<std::mutex> guard(impl_->mutex);
  for (auto& w : impl_->workers)
    if (!w.conn->done)
      w.conn->cut();
  for (auto& w : impl_->workers)
    w.thread.join();
}

uint16_t server::port() const {
  return impl_->acceptor.local_endpoint().port();
}

} // namespace inflow::http
