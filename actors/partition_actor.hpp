#pragma once
// One actor per assigned partition, running that partition's outcome sink
// (actors/outcome_sink.hpp): it connects the sink to the model gateway, the
// producer's delivery reports and its timers.
//
// Handles (see actors/messages.hpp):
//   shared_ptr<record_batch>  records from the consumer thread, in offset order
//   score_reply               scores (or an error) from the gateway
//   produce_ack               Kafka acknowledged (or failed) an alert, result or dead letter
//   retry_atom, token         write that part of the outcome again after a failure
//   rewind_atom               (in offset order) write again what a failed write rewound
//   hold_atom, epoch          issue no more writes; publish what is issued (a transaction commits)
//   release_atom              issue writes again

#include "actors/outcome_sink.hpp"

#include <caf/fwd.hpp>

#include <memory>

namespace inflow::actors {

/// `producer` writes the pipeline's outcomes (its transactional one under exactly_once).
std::unique_ptr<partition_handle> spawn_partition_actor(caf::actor_system& system,
                                                        std::shared_ptr<const pipeline_context> context,
                                                        kafka::producer& producer, const caf::actor& gateway,
                                                        std::shared_ptr<partition_shared> shared);

} // namespace inflow::actors
