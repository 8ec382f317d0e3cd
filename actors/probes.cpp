#include "actors/probes.hpp"

namespace inflow::actors {

namespace {
std::string pl(const std::string& p) {
  return metrics::label("pipeline", p);
}
} // namespace

pipeline_probe::pipeline_probe(metrics::registry& r, const std::string& p)
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
                        "1 once the pipeline stopped (an unwritable record with on_unwritable: stop, or a failed "
                        "producer); /readyz says why.",
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
                                       metrics::latency_buckets())) {}

} // namespace inflow::actors
