#include "actors/probes.hpp"

namespace inflow::actors {

namespace {
std::string pl(const std::string& p) {
  return metrics::label("pipeline", p);
}
std::string with(const std::string& p, const char* key, const std::string& value) {
  return pl(p) + "," + metrics::label(key, value);
}
} // namespace

version_probe::version_probe(metrics::registry& r, const std::string& p, const std::string& version,
                             const std::string& shadow)
  : scored(r.get_counter("inflow_version_scored_total", "Records a version of the model answered.",
                         with(p, "version", version))),
    alerted(r.get_counter("inflow_version_alerted_total", "Alerts from a version's answers that Kafka acknowledged.",
                          with(p, "version", version))),
    shadow_compared(r.get_counter("inflow_shadow_compared_total",
                                  "Records both a live version and the shadow answered.",
                                  with(p, "version", version) + "," + metrics::label("shadow", shadow))),
    shadow_agreed(r.get_counter("inflow_shadow_agreed_total",
                                "Compared records on which the shadow made the live version's alert decision.",
                                with(p, "version", version) + "," + metrics::label("shadow", shadow))),
    shadow_difference(r.get_histogram("inflow_shadow_score_difference",
                                      "|shadow's score - the live version's| per compared record.",
                                      with(p, "version", version) + "," + metrics::label("shadow", shadow),
                                      {0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1})) {}

shadow_probe::shadow_probe(metrics::registry& r, const std::string& p, const std::string& shadow)
  : skipped(r.get_counter("inflow_shadow_skipped_total",
                          "Records not copied to the shadow: it had max_in_flight records outstanding.",
                          with(p, "shadow", shadow))),
    failed(r.get_counter("inflow_shadow_failed_total", "Records whose shadow call failed.", with(p, "shadow", shadow))),
    unmatched(r.get_counter("inflow_shadow_unmatched_total",
                            "Shadow answers with no live answer to compare with (a dead letter, a fallback).",
                            with(p, "shadow", shadow))),
    written(r.get_counter("inflow_shadow_written_total", "Shadow answers written to shadow_topic.",
                          with(p, "shadow", shadow))),
    write_failures(r.get_counter("inflow_shadow_write_failures_total",
                                 "Shadow answers Kafka did not take (never retried: a shadow is best effort).",
                                 with(p, "shadow", shadow))) {}

pipeline_probe::pipeline_probe(metrics::registry& r, const std::string& p, const std::vector<std::string>& versions,
                               const std::string& shadow)
  : consumed(r.get_counter("inflow_records_consumed_total", "Records taken from Kafka.", pl(p))),
    scored(r.get_counter("inflow_records_scored_total", "Records the model scored.", pl(p))),
    alerted(r.get_counter("inflow_records_alerted_total", "Records whose alert Kafka acknowledged.", pl(p))),
    no_alert(r.get_counter("inflow_records_no_alert_total", "Records scored below the alert rule.", pl(p))),
    results(r.get_counter("inflow_records_results_total", "Results whose write to the output topic Kafka acknowledged.",
                          pl(p))),
    dead_lettered(r.get_counter("inflow_records_dead_lettered_total",
                                "Records whose dead letter Kafka acknowledged.", pl(p))),
    duplicates_skipped(r.get_counter("inflow_records_duplicate_total",
                                     "Records delivered twice by the consumer and skipped.", pl(p))),
    lost_to_retention(r.get_counter("inflow_records_lost_to_retention_total",
                                    "Records deleted by the broker before they were consumed.", pl(p))),
    produce_retries(r.get_counter("inflow_produce_retries_total",
                                  "Alert or dead-letter writes retried after a Kafka error.", pl(p))),
    unwritable(r.get_counter("inflow_records_unwritable_total",
                             "Records whose dead letter Kafka refused for good, skipped (on_unwritable: skip).",
                             pl(p))),
    stopped(r.get_gauge("inflow_pipeline_stopped",
                        "1 once the pipeline stopped (an unwritable record with on_unwritable: stop, a failed "
                        "producer, or an exception in a partition); /readyz says why.",
                        pl(p))),
    pauses(r.get_counter("inflow_partition_pauses_total",
                         "Times a partition was paused because its in-flight window was full.", pl(p))),
    commits(r.get_counter("inflow_offset_commits_total", "Offset commits sent.", pl(p))),
    commit_failures(r.get_counter("inflow_offset_commit_failures_total", "Offset commits that failed.", pl(p))),
    in_flight(r.get_gauge("inflow_records_in_flight", "Records consumed without a final outcome yet.", pl(p))),
    partitions_assigned(r.get_gauge("inflow_partitions_assigned", "Partitions assigned to this node.", pl(p))),
    partitions_paused(r.get_gauge("inflow_partitions_paused", "Partitions paused by backpressure.", pl(p))),
    lag(r.get_gauge("inflow_consumer_lag_records", "Records between the committed offset and the end.", pl(p))),
    end_to_end_latency(r.get_histogram("inflow_end_to_end_latency_seconds",
                                       "From the record's timestamp to its final outcome.", pl(p),
                                       metrics::latency_buckets())),
    node_latency(r.get_histogram("inflow_node_latency_seconds",
                                 "From the node polling the record from Kafka to its final outcome: the end-to-end "
                                 "latency without the producer's and the broker's part.",
                                 pl(p), metrics::latency_buckets())) {
  for (const auto& v : versions)
    this->versions.emplace_back(r, p, v, shadow);
  if (!shadow.empty())
    this->shadow.emplace(r, p, shadow);
}

} // namespace inflow::actors
