#pragma once
// The messages nodes exchange, as msgpack. Each travels inside a CAF message
// as one std::vector<char> (which CAF carries without registration):
// [wire_version, kind, body]. Everything is bounds-checked on decode; a peer
// speaking another wire version is refused with a message saying so.
//
// Fields are msgpack arrays in declaration order: a later version may append
// fields (older readers ignore them) but never reorder or remove one.

#include "gateways/common/gateway_api.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

// msgpack-c 4.1 packs a float that holds an integer as that integer, converting 2^64 to uint64_t
// on the way (undefined behaviour, found by fuzzing). Features come from outside bytes, so float
// vectors go as plain float32, which every msgpack reader takes.
namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(v1) {
namespace adaptor {
template <>
struct pack<std::vector<float>> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const std::vector<float>& v) const {
    o.pack_array(checked_get_container_size(v.size()));
    for (float f : v) {
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      const char item[5] = {static_cast<char>(0xca), static_cast<char>(bits >> 24), static_cast<char>(bits >> 16),
                            static_cast<char>(bits >> 8), static_cast<char>(bits)};
      o.pack_bin_body(item, sizeof item);
    }
    return o;
  }
};

// The call protocol (gateways/common/gateway_api.hpp) as it is on the wire: arrays in field order.
template <>
struct pack<inflow::gateways::score_request> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const inflow::gateways::score_request& v) const {
    type::make_define_array(v.ids, v.rows, v.texts, v.traceparent).msgpack_pack(o);
    return o;
  }
};
template <>
struct convert<inflow::gateways::score_request> {
  const msgpack::object& operator()(const msgpack::object& o, inflow::gateways::score_request& v) const {
    type::make_define_array(v.ids, v.rows, v.texts, v.traceparent).msgpack_unpack(o);
    return o;
  }
};

template <>
struct pack<inflow::gateways::failure> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, inflow::gateways::failure v) const {
    return o.pack(static_cast<uint8_t>(v));
  }
};
template <>
struct convert<inflow::gateways::failure> {
  const msgpack::object& operator()(const msgpack::object& o, inflow::gateways::failure& v) const {
    auto n = o.as<uint8_t>();
    if (n > static_cast<uint8_t>(inflow::gateways::last_failure))
      throw type_error();
    v = static_cast<inflow::gateways::failure>(n);
    return o;
  }
};

template <>
struct pack<inflow::gateways::score_reply> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const inflow::gateways::score_reply& v) const {
    type::make_define_array(v.ids, v.values, v.width, v.texts, v.failed, v.error, v.model, v.model_version)
      .msgpack_pack(o);
    return o;
  }
};
template <>
struct convert<inflow::gateways::score_reply> {
  const msgpack::object& operator()(const msgpack::object& o, inflow::gateways::score_reply& v) const {
    type::make_define_array(v.ids, v.values, v.width, v.texts, v.failed, v.error, v.model, v.model_version)
      .msgpack_unpack(o);
    return o;
  }
};

} // namespace adaptor
} // MSGPACK_API_VERSION_NAMESPACE(v1)
} // namespace msgpack

namespace inflow::cluster::wire {

constexpr uint32_t version = 2; ///< 2: calls carry the call protocol as it is, failures typed

/// A model gateway a node hosts.
struct gateway_ad {
  std::string model;
  std::string provider;
  std::string version;
  std::string task;
  MSGPACK_DEFINE(model, provider, version, task)
};

/// The first message each way on a new link, and again whenever what it says changes.
struct hello {
  std::string node;
  std::vector<std::string> roles;
  std::string listen; ///< host:port peers reach this node at
  std::vector<gateway_ad> gateways;
  std::vector<std::string> peers; ///< listen addresses of every node the sender knows
  MSGPACK_DEFINE(node, roles, listen, gateways, peers)
};

/// Model inputs for a gateway on another node. The request's ids are the caller's relay ids
/// (gateway_api.hpp); the gateway's node answers with score_reply messages carrying them back.
struct score_call {
  std::string model;
  gateways::score_request request;
  MSGPACK_DEFINE(model, request)
};

struct partition_load {
  std::string pipeline;
  int32_t partition = 0;
  int64_t in_flight = 0;
  MSGPACK_DEFINE(pipeline, partition, in_flight)
};

/// A hosted model's rate limit as this node sees it (cluster/budget.hpp).
struct model_budget {
  std::string model;
  double demand = 0; ///< calls this node wants to make a second
  double part = 0;   ///< requests a second it may make now
  std::map<std::string, double> targets; ///< from the model's allocator only: every host's part to be
  MSGPACK_DEFINE(model, demand, part, targets)
};

/// What a node is doing, sent to every peer once a second (for `inflow status`, and the budgets).
struct report {
  std::vector<partition_load> partitions;
  uint64_t calls_out = 0; ///< model calls this node waits for on other nodes
  uint64_t calls_in = 0;  ///< calls from other nodes its gateways are working on
  std::vector<model_budget> budgets;
  MSGPACK_DEFINE(partitions, calls_out, calls_in, budgets)
};

using message = std::variant<hello, score_call, gateways::score_reply, report>;

std::vector<char> encode(const message& m);

/// The message, or nullopt with `error` saying why (too large, malformed, other version).
std::optional<message> decode(const char* data, size_t size, size_t max_bytes, std::string& error);

/// An upper bound of the encoded size of a call carrying these inputs.
size_t call_size_bound(size_t ids, size_t floats, size_t text_bytes, size_t texts);

} // namespace inflow::cluster::wire
