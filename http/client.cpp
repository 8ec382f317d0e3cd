#include "http/client.hpp"

#include <utility> // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <deque>
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
  if (u.scheme != "http")
    throw std::invalid_argument("scheme '" + u.scheme + "' is not supported yet (use http://)");
  auto rest = text.substr(scheme_end + 3);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = authority.rfind(':');
  u.host = authority.substr(0, colon);
  u.port = 80;
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
  bool stopping = false;
  std::vector<std::thread> threads;

  /// One keep-alive connection, driven synchronously through its own io_context
  /// so that every step can have a deadline.
  struct connection {
    asio::io_context io;
    std::optional<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
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
      auto r = perform(conn, j.c);
      // A failed or closed connection is not reused.
      if (r.error != result::failure::none || r.header("connection") == "close")
        conn.stream.reset();
      j.done(std::move(r));
    }
  }

  /// Runs the io_context until `done` or the deadline; false on timeout.
  static bool run_until(connection& conn, const bool& done, std::chrono::steady_clock::time_point deadline) {
    conn.io.restart();
    while (!done) {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero() || conn.io.run_one_for(left) == 0)
        return done;
    }
    return true;
  }

  result perform(connection& conn, const call& c) {
    result r;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.timeout_ms);
    auto fail = [&](result::failure f, std::string message) {
      r.error = f;
      r.message = std::move(message);
      if (conn.stream)
        conn.stream->socket().close();
      conn.stream.reset();
      conn.io.restart();
      conn.io.poll(); // let the cancelled handlers run
      return r;
    };
    beast::error_code ec;
    bool done = false;
    if (!conn.stream || !conn.stream->socket().is_open()) {
      conn.stream.emplace(conn.io);
      conn.buffer.clear();
      tcp::resolver resolver(conn.io);
      auto endpoints = resolver.resolve(origin.host, std::to_string(origin.port), ec);
      if (ec)
        return fail(result::failure::connect, "cannot resolve " + origin.host + ": " + ec.message());
      conn.stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
        ec = e;
        done = true;
      });
      if (!run_until(conn, done, deadline))
        return fail(result::failure::timeout, "connect timed out");
      if (ec)
        return fail(result::failure::connect, "cannot connect to " + origin.host + ":" +
                                                std::to_string(origin.port) + ": " + ec.message());
      conn.stream->socket().set_option(tcp::no_delay(true), ec);
    }

    bhttp::request<bhttp::string_body> req{c.method == "GET" ? bhttp::verb::get : bhttp::verb::post, c.target, 11};
    req.set(bhttp::field::host, origin.host + ":" + std::to_string(origin.port));
    req.set(bhttp::field::user_agent, "inflow/" INFLOW_VERSION);
    for (const auto& [name, value] : c.headers)
      req.set(name, value);
    req.body() = c.body;
    req.keep_alive(true);
    req.prepare_payload();

    done = false;
    bhttp::async_write(*conn.stream, req, [&](beast::error_code e, size_t) {
      ec = e;
      done = true;
    });
    if (!run_until(conn, done, deadline))
      return fail(result::failure::timeout, "timed out sending the request");
    if (ec)
      return fail(result::failure::reset, "sending the request failed: " + ec.message());

    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options.max_response_bytes);
    parser.header_limit(static_cast<uint32_t>(options.max_header_bytes));
    auto read = [&](bool header_only) {
      done = false;
      auto handler = [&](beast::error_code e, size_t) {
        ec = e;
        done = true;
      };
      if (header_only)
        bhttp::async_read_header(*conn.stream, conn.buffer, parser, handler);
      else
        bhttp::async_read(*conn.stream, conn.buffer, parser, handler);
      return run_until(conn, done, deadline);
    };
    const auto timed_out = "no complete response within " + std::to_string(options.timeout_ms) + " ms";
    if (!read(true))
      return fail(result::failure::timeout, timed_out);
    // Beast 1.74 does not hold a Content-Length against body_limit: check it here.
    if (!ec && parser.content_length() && *parser.content_length() > options.max_response_bytes)
      ec = bhttp::error::body_limit;
    if (!ec && !read(false))
      return fail(result::failure::timeout, timed_out);
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit)
      return fail(result::failure::too_large, "response over the size cap: " + ec.message());
    if (ec)
      return fail(result::failure::reset, "reading the response failed: " + ec.message());
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

} // namespace inflow::http
