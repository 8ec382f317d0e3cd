#include "http/client.hpp"

#include <atomic>
#include <utility> // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace inflow::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

url parse_url(const std::string& text) {
  url u;
  auto scheme_end = text.find("://");
  if (scheme_end == std::string::npos)
    throw std::invalid_argument("'" + text + "' is not a URL (expected http://host:port/path)");
  u.scheme = text.substr(0, scheme_end);
  if (u.scheme != "http" && u.scheme != "https")
    throw std::invalid_argument("scheme '" + u.scheme + "' is not supported (use http:// or https://)");
  auto rest = text.substr(scheme_end + 3);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = authority.rfind(':');
  u.host = authority.substr(0, colon);
  u.port = u.scheme == "https" ? 443 : 80;
  if (colon != std::string::npos) {
    int port = 0;
    auto p = authority.substr(colon + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc{} || end != p.data() + p.size() || port <= 0 || port > 65535)
      throw std::invalid_argument("'" + text + "' has an invalid port");
    u.port = static_cast<uint16_t>(port);
  }
  if (u.host.empty())
    throw std::invalid_argument("'" + text + "' has no host");
  return u;
}

std::string host_header(const url& u) {
  bool default_port = (u.scheme == "https" && u.port == 443) || (u.scheme == "http" && u.port == 80);
  return default_port ? u.host : u.host + ":" + std::to_string(u.port);
}

struct client::impl {
  struct job {
    call c;
    std::function<void(result)> done;
  };

  url origin;
  client_options options;
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<job> jobs;
  std::atomic<bool> stopping{false}; ///< set under `mutex`; read unlocked by calls in progress
  std::vector<std::thread> threads;
  std::optional<asio::ssl::context> tls;

  /// One keep-alive connection, driven synchronously through its own io_context
  /// so that every step can have a deadline.
  struct connection {
    asio::io_context io;
    std::optional<beast::tcp_stream> stream;                         ///< http
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream; ///< https
    beast::flat_buffer buffer;
    beast::tcp_stream& tcp() { return tls_stream ? beast::get_lowest_layer(*tls_stream) : *stream; }
    bool open() { return (stream || tls_stream) && tcp().socket().is_open(); }
    void reset() {
      if (stream || tls_stream) {
        beast::error_code ec;
        tcp().socket().close(ec);
      }
      stream.reset();
      tls_stream.reset();
    }
  };

  void worker() {
    connection conn;
    while (true) {
      job j;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [this] { return stopping || !jobs.empty(); });
        if (jobs.empty())
          return;
        j = std::move(jobs.front());
        jobs.pop_front();
      }
      const bool reused = conn.open();
      bool answered_nothing = false;
      auto r = perform(conn, j.c, answered_nothing);
      // A keep-alive connection the server closed while it sat idle breaks on its next use. That
      // says nothing of the server: the call goes again at once, on a fresh connection.
      if (reused && r.error == result::failure::reset && answered_nothing)
        r = perform(conn, j.c, answered_nothing);
      // A failed or closed connection is not reused.
      if (r.error != result::failure::none || r.header("connection") == "close")
        conn.reset();
      j.done(std::move(r));
    }
  }

  /// Runs the io_context until `done`, the deadline or the client stopping; false unless done.
  /// Runs in slices, so that a call that never ends cannot hold up the client's destruction.
  bool run_until(connection& conn, const bool& done, std::chrono::steady_clock::time_point deadline) {
    conn.io.restart();
    while (!done && !stopping.load()) {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero())
        return false;
      conn.io.run_one_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(100)));
    }
    return done;
  }

  /// `answered_nothing`: the call failed before a byte of the response arrived.
  result perform(connection& conn, const call& c, bool& answered_nothing) {
    result r;
    answered_nothing = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.timeout_ms);
    auto fail = [&](result::failure f, std::string message) {
      r.error = f;
      r.message = std::move(message);
      conn.reset();
      conn.io.restart();
      conn.io.poll(); // let the cancelled handlers run
      return r;
    };
    beast::error_code ec;
    bool done = false;
    auto step = [&](auto&& start) {
      done = false;
      start([&](beast::error_code e, auto&&...) {
        ec = e;
        done = true;
      });
      return run_until(conn, done, deadline);
    };
    if (!conn.open()) {
      conn.reset();
      if (tls)
        conn.tls_stream.emplace(conn.io, *tls);
      else
        conn.stream.emplace(conn.io);
      conn.buffer.clear();
      tcp::resolver resolver(conn.io);
      auto endpoints = resolver.resolve(origin.host, std::to_string(origin.port), ec);
      if (ec)
        return fail(result::failure::connect, "cannot resolve " + origin.host + ": " + ec.message());
      if (!step([&](auto h) { conn.tcp().async_connect(endpoints, h); }))
        return fail(result::failure::timeout, "connect timed out");
      if (ec)
        return fail(result::failure::connect, "cannot connect to " + origin.host + ":" +
                                                std::to_string(origin.port) + ": " + ec.message());
      conn.tcp().socket().set_option(tcp::no_delay(true), ec);
      if (tls) {
        // The certificate must name the host we asked for (an IP address is
        // checked against the certificate's IP entries, and gets no SNI).
        SSL* ssl = conn.tls_stream->native_handle();
        beast::error_code not_ip;
        asio::ip::make_address(origin.host, not_ip);
        if (not_ip) {
          SSL_set_tlsext_host_name(ssl, origin.host.c_str());
          SSL_set1_host(ssl, origin.host.c_str());
        } else {
          X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), origin.host.c_str());
        }
        if (!step([&](auto h) { conn.tls_stream->async_handshake(asio::ssl::stream_base::client, h); }))
          return fail(result::failure::timeout, "TLS handshake timed out");
        if (ec)
          return fail(result::failure::connect, "TLS handshake with " + origin.host + " failed: " + ec.message());
      }
    }

    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(c.method), c.target, 11};
    req.set(bhttp::field::host, host_header(origin));
    req.set(bhttp::field::user_agent, "inflow/" INFLOW_VERSION);
    for (const auto& [name, value] : c.headers)
      req.set(name, value);
    req.body() = c.body;
    req.keep_alive(true);
    req.prepare_payload();

    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options.max_response_bytes);
    parser.header_limit(static_cast<uint32_t>(options.max_header_bytes));
    auto io = [&](auto& stream) -> std::optional<result> {
      if (!step([&](auto h) { bhttp::async_write(stream, req, h); }))
        return fail(result::failure::timeout, "timed out sending the request");
      if (ec) {
        answered_nothing = true;
        return fail(result::failure::reset, "sending the request failed: " + ec.message());
      }
      if (c.on_sent)
        c.on_sent(std::chrono::steady_clock::now());
      const auto timed_out = "no complete response within " + std::to_string(options.timeout_ms) + " ms";
      if (!step([&](auto h) { bhttp::async_read_header(stream, conn.buffer, parser, h); }))
        return fail(result::failure::timeout, timed_out);
      // Beast 1.74 does not hold a Content-Length against body_limit: check it here.
      if (!ec && parser.content_length() && *parser.content_length() > options.max_response_bytes)
        ec = bhttp::error::body_limit;
      if (!ec && !step([&](auto h) { bhttp::async_read(stream, conn.buffer, parser, h); }))
        return fail(result::failure::timeout, timed_out);
      if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit)
        return fail(result::failure::too_large, "response over the size cap: " + ec.message());
      if (ec) {
        answered_nothing = !parser.got_some();
        return fail(result::failure::reset, "reading the response failed: " + ec.message());
      }
      return std::nullopt;
    };
    if (auto failed = conn.tls_stream ? io(*conn.tls_stream) : io(*conn.stream))
      return *failed;
    auto& res = parser.get();
    r.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
      r.headers[name] = std::string(field.value());
    }
    r.body = std::move(res.body());
    if (!res.keep_alive())
      r.headers["connection"] = "close";
    return r;
  }
};

client::client(url origin, client_options options) : origin_(std::move(origin)), impl_(new impl) {
  impl_->origin = origin_;
  impl_->options = options;
  if (origin_.scheme == "https") {
    impl_->tls.emplace(asio::ssl::context::tls_client);
    impl_->tls->set_verify_mode(asio::ssl::verify_peer);
    beast::error_code ec;
    if (options.ca_file.empty())
      impl_->tls->set_default_verify_paths(ec);
    else
      impl_->tls->load_verify_file(options.ca_file, ec);
    if (ec)
      throw std::runtime_error("cannot load CA certificates" +
                               (options.ca_file.empty() ? std::string() : " from " + options.ca_file) + ": " +
                               ec.message());
  }
  for (int i = 0; i < std::max(1, options.connections); ++i)
    impl_->threads.emplace_back([this] { impl_->worker(); });
}

client::~client() {
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    impl_->stopping = true;
    for (auto& j : impl_->jobs)
      j.done(result{result::failure::reset, "client stopped", 0, {}, {}});
    impl_->jobs.clear();
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->threads)
    t.join();
}

void client::submit(call c, std::function<void(result)> done) {
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    impl_->jobs.push_back({std::move(c), std::move(done)});
  }
  impl_->cv.notify_one();
}

result fetch(const std::string& url, call c, client_options options) {
  auto origin = parse_url(url);
  c.target = origin.target;
  options.connections = 1;
  client one(origin, options);
  std::promise<result> answer;
  one.submit(std::move(c), [&](result r) { answer.set_value(std::move(r)); });
  return answer.get_future().get();
}

} // namespace inflow::http
