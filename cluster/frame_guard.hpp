#pragma once
// The cluster port's gatekeeper. CAF 0.17 allocates whatever payload length a
// BASP header announces before reading a byte of it, so 32 forged bytes make it
// reserve up to 4 GiB. The guard owns the public cluster port (and its TLS), reads
// every frame header a peer sends and closes the connection at the first one
// that is malformed or too large; everything else passes unchanged to CAF, which
// listens on loopback only. Links this node dials go straight to the peer's guard.

#include "config/config.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace inflow::metrics {
class counter;
}

namespace inflow::cluster {

/// Follows the BASP frames of one inbound byte stream (32-byte header: operation,
/// 2 padding bytes, flags, big-endian payload length, operation data, two actor ids).
class basp_frame_checker {
public:
  static constexpr size_t header_size = 32;
  /// The first frame (the peer's handshake) may carry `max_handshake_bytes`, every later one `max_frame_bytes`.
  basp_frame_checker(size_t max_handshake_bytes, size_t max_frame_bytes);
  /// Takes the next bytes of the stream; returns why it must be closed, before the bad header passes.
  std::optional<std::string> feed(const uint8_t* data, size_t size);
  /// The peer's handshake arrived whole.
  bool handshake_done() const { return frames_ > 0; }

private:
  std::optional<std::string> check_header() const;

  size_t max_handshake_bytes_;
  size_t max_frame_bytes_;
  uint8_t header_[header_size] = {};
  size_t header_fill_ = 0;
  uint64_t payload_left_ = 0;
  uint64_t frames_ = 0; ///< frames whose header and payload have passed
  bool in_payload_ = false;
};

struct guard_limits {
  size_t max_frame_bytes = 0; ///< cluster.max_message_bytes plus CAF's envelope
  size_t max_handshake_bytes = 64 * 1024;
  size_t max_connections = 512;
  /// From accept to the peer's handshake passed whole (TLS included).
  std::chrono::milliseconds handshake_timeout{5000};
};

struct guard_state;

class frame_guard {
public:
  /// Listens on `listen` (port 0: any free one) and relays to CAF on 127.0.0.1:`caf_port`,
  /// with mutual TLS when `tls` is enabled. Throws std::runtime_error when it cannot listen.
  frame_guard(const config::host_port& listen, uint16_t caf_port, guard_limits limits,
              const config::tls_config& tls, metrics::counter* refused = nullptr);
  ~frame_guard();
  uint16_t port() const;

private:
  std::unique_ptr<guard_state> state_;
};

} // namespace inflow::cluster
