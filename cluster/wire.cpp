#include "cluster/wire.hpp"

#include <fmt/format.h>

namespace inflow::cluster::wire {

std::vector<char> encode(const message& m) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(3);
  pk.pack(version);
  pk.pack(static_cast<uint32_t>(m.index()));
  std::visit([&](const auto& body) { pk.pack(body); }, m);
  return {buffer.data(), buffer.data() + buffer.size()};
}

size_t call_size_bound(size_t ids, size_t floats, size_t text_bytes, size_t texts) {
  // uint64 ≤ 9 bytes, float32 5, a string's header ≤ 5; 64 for the envelope and model name.
  return 64 + 256 + ids * 9 + floats * 5 + text_bytes + texts * 5;
}

namespace {

template <size_t I = 0>
message body_of(uint32_t kind, const msgpack::object& o) {
  if constexpr (I < std::variant_size_v<message>) {
    if (kind == I)
      return o.as<std::variant_alternative_t<I, message>>();
    return body_of<I + 1>(kind, o);
  } else {
    throw std::invalid_argument(fmt::format("unknown message kind {}", kind));
  }
}

/// Budgets are rates: finite, not negative, and nowhere near 2^64, which msgpack-c cannot pack
/// again (it converts a whole-number double to uint64_t first). A peer's nonsense is refused.
void check_rates(const message& m) {
  const auto* r = std::get_if<report>(&m);
  if (!r)
    return;
  auto rate = [](double x) {
    if (!(x >= 0 && x <= 1e12))
      throw std::invalid_argument(fmt::format("a model budget's rate is out of range: {}", x));
  };
  for (const auto& b : r->budgets) {
    rate(b.demand);
    rate(b.part);
    for (const auto& [host, part] : b.targets)
      rate(part);
  }
}

} // namespace

std::optional<message> decode(const char* data, size_t size, size_t max_bytes, std::string& error) {
  if (size > max_bytes) {
    error = fmt::format("message of {} bytes exceeds the cap of {} (cluster.max_message_bytes)", size, max_bytes);
    return std::nullopt;
  }
  // msgpack allocates an array's elements when it reads the array's header:
  // cap counts and depth so a small message cannot announce a huge one.
  const size_t most = std::min<size_t>(size, 1 << 20);
  msgpack::unpack_limit limit(most, 16, size, size, 0, 6);
  try {
    auto handle = msgpack::unpack(data, size, nullptr, nullptr, limit);
    const auto& root = handle.get();
    if (root.type != msgpack::type::ARRAY || root.via.array.size < 3)
      throw std::invalid_argument("not an Inflow cluster message");
    const auto* fields = root.via.array.ptr;
    auto peer_version = fields[0].as<uint32_t>();
    if (peer_version != version) {
      error = fmt::format("peer speaks cluster wire version {}, this node {}: run one Inflow version on every node",
                          peer_version, version);
      return std::nullopt;
    }
    auto message = body_of(fields[1].as<uint32_t>(), fields[2]);
    check_rates(message);
    return message;
  } catch (const std::exception& e) {
    error = fmt::format("malformed cluster message ({} bytes): {}", size, e.what());
    return std::nullopt;
  }
}

} // namespace inflow::cluster::wire
