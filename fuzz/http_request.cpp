// The HTTP server of the admin API and `inflow serve`: any bytes a client may send, over a real
// loopback socket to a server with small limits, read until the server answers and closes.
#include "http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <memory>

namespace {

inflow::http::server& server() {
  static auto s = [] {
    inflow::http::server_limits limits;
    limits.max_header_bytes = 2048;
    limits.max_body_bytes = 4096;
    limits.max_connections = 8;
    limits.request_timeout_ms = 1000;
    return std::make_unique<inflow::http::server>(
      "127.0.0.1", 0,
      [](const inflow::http::request& r) {
        return inflow::http::response{200, "text/plain", r.method + " " + r.target + " " + r.header("Host") +
                                                           std::to_string(r.body.size())};
      },
      limits);
  }();
  return *s;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint16_t port = server().port();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  linger reset{1, 0}; // closed with a reset: no TIME_WAIT, so hours of connections do not use up the ports
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Loopback ports run out for a moment when the server's side of closed connections waits in
  // TIME_WAIT, and libFuzzer's timer signal interrupts a connect, which then goes on by itself:
  // both are this harness's doing, so wait. Any other refusal is the server's.
  int attempts = 0;
  while (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (errno == EISCONN)
      break;
    const bool ours = errno == EINTR || errno == EALREADY || errno == EINPROGRESS || errno == EADDRNOTAVAIL;
    if (!ours || ++attempts > 200) {
      std::fprintf(stderr, "connect: %s\n", std::strerror(errno));
      __builtin_trap(); // the server must always take a connection
    }
    usleep(errno == EADDRNOTAVAIL ? 50'000 : 1'000);
  }
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  for (size_t sent = 0; sent < size;) {
    ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; // the server may answer and close before reading everything
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  char buffer[4096];
  while (true) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      std::fprintf(stderr, "no answer and no close within 5 s\n");
      __builtin_trap(); // the server hangs on this input
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; // closed or reset: both fine once the server is done with the input
  }
  close(fd);
  return 0;
}
