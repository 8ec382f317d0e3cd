#pragma once
// The metrics a gateway owns, registered once per model.

#include "admin/metrics.hpp"

#include <string>

namespace inflow::gateways {

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

} // namespace inflow::gateways
