#pragma once
// The metrics a pipeline owns, registered once per pipeline.

#include "admin/metrics.hpp"

namespace inflow::actors {

struct pipeline_probe {
  pipeline_probe(metrics::registry& r, const std::string& pipeline);

  metrics::counter& consumed;
  metrics::counter& scored;
  metrics::counter& alerted;
  metrics::counter& no_alert;
  metrics::counter& results;
  metrics::counter& dead_lettered;
  metrics::counter& duplicates_skipped;
  metrics::counter& lost_to_retention;
  metrics::counter& produce_retries;
  metrics::counter& unwritable;
  metrics::gauge& stopped; ///< 1 once the pipeline stopped on an unwritable record or a fatal producer
  metrics::counter& pauses;
  metrics::counter& commits;
  metrics::counter& commit_failures;
  metrics::gauge& in_flight;
  metrics::gauge& partitions_assigned;
  metrics::gauge& partitions_paused;
  metrics::gauge& lag;
  metrics::histogram& end_to_end_latency;
};

struct gateway_probe {
  gateway_probe(metrics::registry& r, const std::string& model);

  metrics::counter& rows;
  metrics::counter& batches;
  metrics::counter& errors;
  metrics::counter& fallback_rows;
  metrics::counter& tokens_in;
  metrics::counter& tokens_out;
  metrics::counter& cost_micro_usd;
  metrics::histogram& wait; ///< from a batch being ready to its call leaving
  metrics::gauge& queued_rows;
  metrics::gauge& circuit; ///< 0 closed, 1 open, 2 half-open
  metrics::gauge& failing_calls; ///< calls failed in a row since the last that succeeded
  metrics::gauge& held_rows;     ///< on_failure: block: rows kept until the provider answers again
  metrics::histogram& batch_size;
  metrics::histogram& predict_latency;
};

} // namespace inflow::actors
