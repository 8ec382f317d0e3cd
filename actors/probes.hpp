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

} // namespace inflow::actors
