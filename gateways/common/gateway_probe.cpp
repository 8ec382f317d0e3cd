#include "gateways/common/gateway_probe.hpp"

namespace inflow::gateways {

gateway_probe::gateway_probe(metrics::registry& r, const std::string& model)
  : rows(r.get_counter("inflow_gateway_rows_total", "Rows scored by the gateway.", metrics::label("model", model))),
    batches(r.get_counter("inflow_gateway_batches_total", "Model calls.", metrics::label("model", model))),
    errors(r.get_counter("inflow_gateway_errors_total", "Model calls that failed.", metrics::label("model", model))),
    fallback_rows(r.get_counter("inflow_gateway_fallback_rows_total", "Inputs handed to the fallback model.",
                                metrics::label("model", model))),
    tokens_in(r.get_counter("inflow_gateway_tokens_in_total", "Input tokens the provider counted.",
                            metrics::label("model", model))),
    tokens_out(r.get_counter("inflow_gateway_tokens_out_total", "Output tokens the provider counted.",
                             metrics::label("model", model))),
    cost_micro_usd(r.get_counter("inflow_gateway_cost_micro_usd_total",
                                 "Cost of the tokens used, in millionths of a US dollar (prices from config).",
                                 metrics::label("model", model))),
    wait(r.get_histogram("inflow_gateway_wait_seconds",
                         "Time a ready batch waited for the rate and token limits, cooldowns and backoff.",
                         metrics::label("model", model), metrics::latency_buckets())),
    queued_rows(r.get_gauge("inflow_gateway_queued_rows", "Rows waiting for their call: in a batch being filled, or for the limits, a cooldown or a retry.", metrics::label("model", model))),
    circuit(r.get_gauge("inflow_gateway_circuit_state", "Circuit breaker: 0 closed, 1 open, 2 half-open.",
                        metrics::label("model", model))),
    failing_calls(r.get_gauge("inflow_gateway_failing_calls",
                              "Model calls failed in a row since the last that succeeded.",
                              metrics::label("model", model))),
    held_rows(r.get_gauge("inflow_gateway_held_rows",
                          "Rows kept (on_failure: block) until the provider answers again.",
                          metrics::label("model", model))),
    batch_size(r.get_histogram("inflow_gateway_batch_size", "Rows per model call.", metrics::label("model", model),
                               metrics::size_buckets())),
    predict_latency(r.get_histogram("inflow_gateway_call_seconds", "Duration of one model call.",
                                    metrics::label("model", model), metrics::latency_buckets())) {}

} // namespace inflow::gateways
