#pragma once
// CAF declarations of the in-process messages of the data path. Include only
// in translation units that run actors: CAF headers are expensive to compile.

#include "actors/source.hpp"
#include "gateways/common/gateway_actor.hpp"

#include <caf/all.hpp>

namespace inflow::actors {

using gateways::flush_atom;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
/// (rewind_atom): write again, in order, what a failed write rewound (ordered delivery).
using rewind_atom = caf::atom_constant<caf::atom("rewind")>;
/// (hold_atom, epoch) / (release_atom): stop and resume issuing writes while a transaction commits.
using hold_atom = caf::atom_constant<caf::atom("hold")>;
using release_atom = caf::atom_constant<caf::atom("release")>;

/// Kafka's verdict on one write of a record's outcome (see partition_actor.cpp).
struct produce_ack {
  int64_t token = 0;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

} // namespace inflow::actors

// These never leave the process (cross-node messages are msgpack, cluster/wire.hpp).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<inflow::actors::record_batch>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::actors::produce_ack)
