#include "cluster/frame_guard.hpp"

#include "admin/metrics.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <utility>
#include <thread>

namespace inflow::cluster {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr uint8_t client_handshake = 0x01;
constexpr uint8_t last_operation = 0x06; // heartbeat

} // namespace

basp_frame_checker::basp_frame_checker(size_t max_handshake_bytes, size_t max_frame_bytes)
    : max_handshake_bytes_(max_handshake_bytes), max_frame_bytes_(max_frame_bytes) {}

std::optional<std::string> basp_frame_checker::check_header() const {
  const uint8_t operation = header_[0];
  const uint32_t length = uint32_t{header_[4]} << 24 | uint32_t{header_[5]} << 16 | uint32_t{header_[6]} << 8 |
                          uint32_t{header_[7]};
  if (operation > last_operation)
    return fmt::format("unknown frame type {:#04x}: not a CAF 0.17 node", operation);
  if (frames_ == 0 && operation != client_handshake)
    return fmt::format("first frame of type {:#04x}, not a handshake", operation);
  const size_t limit = frames_ == 0 ? max_handshake_bytes_ : max_frame_bytes_;
  if (length > limit)
    return fmt::format("a frame of {} bytes announced, over the limit of {}{}", length, limit,
                       frames_ == 0 ? " for a handshake" : " (cluster.max_message_bytes)");
  return std::nullopt;
}

std::optional<std::string> basp_frame_checker::feed(const uint8_t* data, size_t size) {
  size_t at = 0;
  while (at < size) {
    if (in_payload_) {
      auto take = std::min<uint64_t>(payload_left_, size - at);
      payload_left_ -= take;
      at += take;
      if (payload_left_ == 0) {
        in_payload_ = false;
        ++frames_;
      }
      continue;
    }
    auto take = std::min(header_size - header_fill_, size - at);
    std::copy_n(data + at, take, header_ + header_fill_);
    header_fill_ += take;
    at += take;
    if (header_fill_ < header_size)
      break;
    if (auto why = check_header())
      return why;
    header_fill_ = 0;
    payload_left_ = uint32_t{header_[4]} << 24 | uint32_t{header_[5]} << 16 | uint32_t{header_[6]} << 8 | header_[7];
    if (payload_left_ == 0)
      ++frames_;
    else
      in_payload_ = true;
  }
  return std::nullopt;
}

struct guard_state {
  // Declared before the io_context: sessions still queued in it hold TLS streams made from it.
  std::optional<asio::ssl::context> tls;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  tcp::endpoint caf_endpoint;
  guard_limits limits;
  metrics::counter* refused = nullptr;
  std::shared_ptr<std::atomic<size_t>> open = std::make_shared<std::atomic<size_t>>(0);
  std::chrono::steady_clock::time_point last_warning{};
  double warnings = 10; ///< a token bucket
  uint64_t unwarned = 0;
  std::thread thread;

  void refuse(const std::string& peer, const std::string& why) {
    if (refused)
      refused->inc();
    if (may_warn())
      spdlog::warn("cluster: closed the connection from {}: {}{}", peer, why, suppressed());
  }

  void refuse_tls(const std::string& peer, const boost::system::error_code& ec) {
    if (refused)
      refused->inc();
    if (!may_warn())
      return;
    // An alert received means the peer refused this node; anything else, this node refused the peer.
    if (ec.category() == asio::error::get_ssl_category() && ERR_GET_REASON(ec.value()) >= SSL_AD_REASON_OFFSET)
      spdlog::warn("cluster: TLS peer {} refused this node: {} (a certificate from another CA?){}", peer,
                   ec.message(), suppressed());
    else
      spdlog::warn("cluster: refused TLS peer {}: {}{}", peer, ec.message(), suppressed());
  }

  /// Ten warnings, then one a second: a flood of forged connections must not flood the log too.
  bool may_warn() {
    auto now = std::chrono::steady_clock::now();
    warnings = std::min(10.0, warnings + std::chrono::duration<double>(now - last_warning).count());
    last_warning = now;
    if (warnings < 1) {
      ++unwarned;
      return false;
    }
    warnings -= 1;
    return true;
  }

  std::string suppressed() {
    auto n = std::exchange(unwarned, 0);
    return n ? fmt::format(" ({} more not logged)", n) : "";
  }

  void accept();
};

namespace {

/// One inbound link: the peer's stream (plain TCP or TLS) and the connection to CAF.
template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
public:
  session(guard_state& guard, Stream client, std::string peer)
      : guard_(guard), client_(std::move(client)), caf_(guard.io), deadline_(guard.io), peer_(std::move(peer)),
        checker_(guard.limits.max_handshake_bytes, guard.limits.max_frame_bytes), open_(guard.open) {
    ++*open_;
  }
  ~session() { --*open_; }

  void start() {
    auto self = this->shared_from_this();
    deadline_.expires_after(guard_.limits.handshake_timeout);
    deadline_.async_wait([self](boost::system::error_code ec) {
      if (!ec && !self->checker_.handshake_done()) {
        self->guard_.refuse(self->peer_, "no handshake in time");
        self->close();
      }
    });
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      connect_to_caf();
    } else {
      client_.async_handshake(asio::ssl::stream_base::server, [self](boost::system::error_code ec) {
        if (ec) {
          self->guard_.refuse_tls(self->peer_, ec);
          return self->close();
        }
        self->connect_to_caf();
      });
    }
  }

private:
  void connect_to_caf() {
    auto self = this->shared_from_this();
    caf_.async_connect(guard_.caf_endpoint, [self](boost::system::error_code ec) {
      if (ec) {
        spdlog::warn("cluster: cannot reach this node's own endpoint: {}", ec.message());
        return self->close();
      }
      self->from_peer();
      self->to_peer();
    });
  }

  /// Peer to CAF, every byte checked before it is passed on.
  void from_peer() {
    auto self = this->shared_from_this();
    client_.async_read_some(asio::buffer(inbound_), [self](boost::system::error_code ec, size_t n) {
      if (ec)
        return self->close();
      if (auto why = self->checker_.feed(self->inbound_.data(), n)) {
        self->guard_.refuse(self->peer_, *why);
        return self->close();
      }
      if (self->checker_.handshake_done())
        self->deadline_.cancel();
      asio::async_write(self->caf_, asio::buffer(self->inbound_.data(), n),
                        [self](boost::system::error_code ec, size_t) {
                          if (ec)
                            return self->close();
                          self->from_peer();
                        });
    });
  }

  /// CAF to peer, unchanged: the peer's own guard checks it.
  void to_peer() {
    auto self = this->shared_from_this();
    caf_.async_read_some(asio::buffer(outbound_), [self](boost::system::error_code ec, size_t n) {
      if (ec)
        return self->close();
      asio::async_write(self->client_, asio::buffer(self->outbound_.data(), n),
                        [self](boost::system::error_code ec, size_t) {
                          if (ec)
                            return self->close();
                          self->to_peer();
                        });
    });
  }

  void close() {
    boost::system::error_code ignored;
    client_.lowest_layer().close(ignored);
    caf_.close(ignored);
    deadline_.cancel();
  }

  guard_state& guard_;
  Stream client_;
  tcp::socket caf_;
  asio::steady_timer deadline_;
  std::string peer_;
  basp_frame_checker checker_;
  std::shared_ptr<std::atomic<size_t>> open_;
  std::array<uint8_t, 16 * 1024> inbound_;
  std::array<uint8_t, 16 * 1024> outbound_;
};

} // namespace

void guard_state::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted)
      return;
    if (!ec) {
      boost::system::error_code ignored;
      auto remote = socket.remote_endpoint(ignored);
      auto peer = fmt::format("{}:{}", remote.address().to_string(), remote.port());
      if (*open >= limits.max_connections) {
        refuse(peer, fmt::format("{} connections open already", limits.max_connections));
      } else {
        socket.set_option(tcp::no_delay(true), ignored);
        if (tls)
          std::make_shared<session<asio::ssl::stream<tcp::socket>>>(
            *this, asio::ssl::stream<tcp::socket>(std::move(socket), *tls), peer)
            ->start();
        else
          std::make_shared<session<tcp::socket>>(*this, std::move(socket), peer)->start();
      }
    } else {
      spdlog::warn("cluster: accepting a connection failed: {}", ec.message());
    }
    accept(); // a failed accept (out of file descriptors) must not end the listener
  });
}

frame_guard::frame_guard(const config::host_port& listen, uint16_t caf_port, guard_limits limits,
                         const config::tls_config& tls, metrics::counter* refused)
    : state_(std::make_unique<guard_state>()) {
  auto& i = *state_;
  i.limits = limits;
  i.refused = refused;
  i.caf_endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), caf_port);
  if (tls.enabled()) {
    auto& ctx = i.tls.emplace(asio::ssl::context::tls_server);
    ctx.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                    asio::ssl::context::no_tlsv1_1);
    ctx.use_certificate_chain_file(tls.certificate); // the files were checked before (check_tls_files)
    ctx.use_private_key_file(tls.key, asio::ssl::context::pem);
    ctx.load_verify_file(tls.ca_file);
    ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    // cluster/tls.cpp hooks an alert logger into such contexts for CAF's; the guard logs its own
    // refusals, with the peer's address, which that logger cannot see here.
    SSL_CTX_set_info_callback(ctx.native_handle(), nullptr);
  }
  boost::system::error_code ec;
  auto address = listen.host.empty() ? asio::ip::address(asio::ip::address_v4::any())
                                     : asio::ip::make_address(listen.host, ec);
  if (ec)
    throw std::runtime_error(fmt::format("'{}' is not an IP address", listen.host));
  tcp::endpoint at(address, listen.port);
  i.acceptor.open(at.protocol(), ec);
  if (!ec)
    i.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    i.acceptor.bind(at, ec);
  if (!ec)
    i.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error(ec.message());
  i.accept();
  i.thread = std::thread([&io = i.io] { io.run(); });
}

frame_guard::~frame_guard() {
  state_->io.stop();
  state_->thread.join();
}

uint16_t frame_guard::port() const {
  return state_->acceptor.local_endpoint().port();
}

} // namespace inflow::cluster
