#pragma once
// One actor per assigned partition: decodes records, asks the model gateway
// for scores, turns scores into alerts, writes alerts and dead letters, and
// tracks which offsets are finished.
//
// Handles (see actors/messages.hpp):
//   shared_ptr<record_batch>  records from the consumer thread, in offset order
//   score_reply               scores (or an error) from the gateway
//   produce_ack               Kafka acknowledged (or failed) an alert, result or dead letter
//   retry_atom, token         write that part of the outcome again after a failure
//   rewind_atom               (in offset order) write again what a failed write rewound
//   hold_atom, epoch          issue no more writes; publish what is issued (a transaction commits)
//   release_atom              issue writes again

#include "actors/pipeline_health.hpp"
#include "actors/probes.hpp"
#include "actors/recent_alerts.hpp"
#include "actors/source.hpp"
#include "config/config.hpp"
#include "events/features.hpp"
#include "gateways/common/gateway_api.hpp"
#include "kafka/producer.hpp"

#include <caf/fwd.hpp>

#include <memory>

namespace inflow::actors {

/// Everything the partitions of one pipeline share; immutable once built.
struct pipeline_context {
  config::pipeline_config config;
  events::feature_map features;
  gateways::model_info model;
  kafka::producer& producer;
  pipeline_probe& probe;
  recent_alerts& alerts;
  pipeline_health& health;
  size_t dead_letter_limit_bytes; ///< the smaller of the producer's and the topic's record limits
};

std::unique_ptr<partition_handle> spawn_partition_actor(caf::actor_system& system,
                                                        std::shared_ptr<const pipeline_context> context,
                                                        const caf::actor& gateway,
                                                        std::shared_ptr<partition_shared> shared);

/// What the model said about one record.
struct model_result {
  std::string model; ///< the model that answered (empty: the pipeline's own)
  std::string model_version;
  float score = 0;           ///< classification, regression
  std::vector<float> vector; ///< embedding
  std::string text;          ///< text_generation
};

/// The alert's JSON; `alert_id` is `topic/partition/offset`, the same on every replay.
std::string make_alert_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                            const events::record_identity& identity, const model_result& result, int64_t now_ms);

/// The result's JSON for the output topic: score, embedding or text, by task.
std::string make_result_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                             const events::record_identity& identity, const model_result& result, int64_t now_ms);

} // namespace inflow::actors
