#pragma once
// The metrics a pipeline owns, registered once per pipeline.

#include "admin/metrics.hpp"

#include <optional>
#include <vector>

namespace inflow::actors {

/// One version of a pipeline's model (`models.<name>.versions`): what it answered, and how the
/// shadow's answers compared with its own.
struct version_probe {
  version_probe(metrics::registry& r, const std::string& pipeline, const std::string& version,
                const std::string& shadow);

  metrics::counter& scored;
  metrics::counter& alerted;
  metrics::counter& shadow_compared; ///< records both it and the shadow answered
  metrics::counter& shadow_agreed;   ///< ... with the same alert decision
  metrics::histogram& shadow_difference; ///< |shadow's score - its score|
};

/// The shadow's copies that were not compared, and its answers written.
struct shadow_probe {
  shadow_probe(metrics::registry& r, const std::string& pipeline, const std::string& shadow);

  metrics::counter& skipped;   ///< not sent: the shadow had a pipeline's max_in_flight outstanding already
  metrics::counter& failed;    ///< its call failed
  metrics::counter& unmatched; ///< the live answer never came (a dead letter) or came too late
  metrics::counter& written;
  metrics::counter& write_failures;
};

struct pipeline_probe {
  /// `versions`: those of its model that take a share of the records (config.routes), in order;
  /// `shadow`: the shadow version, or empty.
  pipeline_probe(metrics::registry& r, const std::string& pipeline, const std::vector<std::string>& versions = {""},
                 const std::string& shadow = "");

  std::vector<version_probe> versions;
  std::optional<shadow_probe> shadow;

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
  metrics::histogram& node_latency;
};

} // namespace inflow::actors
