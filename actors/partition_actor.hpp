#pragma once
// The partition role: one actor per assigned partition, running that partition's outcome sink
// (actors/outcome_sink.hpp); it connects the sink to the model gateway, the producer's delivery
// reports and its timers. Its typed interface says what it takes; CAF checks every send to it.

#include "actors/outcome_sink.hpp"
#include "gateways/common/gateway_actor.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <vector>

namespace inflow::actors {

/// (retry_atom, token): write that part of the outcome again after a failure.
using retry_atom = caf::atom_constant<caf::atom("retry")>;
/// (rewind_atom): write again, in order, what a failed write rewound (ordered delivery).
using rewind_atom = caf::atom_constant<caf::atom("rewind")>;
/// (schema_atom): decode again the records held until the schema registry answers.
using schema_atom = caf::atom_constant<caf::atom("schema")>;
/// (hold_atom, epoch) / (release_atom): stop and resume issuing writes while a transaction commits.
using hold_atom = caf::atom_constant<caf::atom("hold")>;
using release_atom = caf::atom_constant<caf::atom("release")>;

/// Kafka's verdict on one write of a record's outcome (an alert, a result or a dead letter).
struct produce_ack {
  int64_t token = 0;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

using partition_actor = caf::typed_actor<
  caf::reacts_to<std::shared_ptr<record_batch>>, ///< records from the consumer thread, in offset order
  caf::reacts_to<gateways::score_reply>,         ///< scores (or a failure) from the gateway
  caf::reacts_to<produce_ack>, caf::reacts_to<retry_atom, int64_t>, caf::reacts_to<rewind_atom>,
  caf::reacts_to<schema_atom>, caf::reacts_to<hold_atom, int64_t>, caf::reacts_to<release_atom>>;

/// `producer` writes the pipeline's outcomes (its transactional one under exactly_once), `plain`
/// a shadow's answers; `versions` score config.routes, then the shadow when there is one.
std::unique_ptr<partition_handle> spawn_partition_actor(caf::actor_system& system,
                                                        std::shared_ptr<const pipeline_context> context,
                                                        kafka::producer& producer, kafka::producer& plain,
                                                        const std::vector<gateways::scorer_actor>& versions,
                                                        std::shared_ptr<partition_shared> shared);

} // namespace inflow::actors

// These never leave the process (cross-node messages are msgpack, cluster/wire.hpp).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<inflow::actors::record_batch>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::actors::produce_ack)
