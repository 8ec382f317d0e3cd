#pragma once
// The gateway actor of every HTTP provider: micro-batches rows, keeps calls
// within the provider's rate and concurrency limits, honours Retry-After and
// x-ratelimit-reset-* as a cooldown for every caller, retries retriable errors
// with backoff and full jitter, and opens a circuit breaker on repeated
// failures. A provider only says how rows become a call and a response
// becomes scores (a codec).

#include "gateways/common/registry.hpp"
#include "http/client.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace inflow::gateways {

class codec {
public:
  virtual ~codec() = default;
  /// The call for `n` rows of `width` features; `batch_id` is unique per gateway.
  virtual http::call build(const float* rows, size_t n, size_t width, uint64_t batch_id) const = 0;
  /// `n` scores from a 2xx response, or nullopt with `error` set.
  virtual std::optional<std::vector<float>> parse(const http::result& response, size_t n,
                                                  std::string& error) const = 0;
};

/// Checks the remote settings of `cfg` (endpoint, input) and returns a model
/// whose actor calls the provider through `c`. Throws std::runtime_error.
prepared_model prepare_remote(const config::model_config& cfg, metrics::registry& metrics,
                              std::shared_ptr<const codec> c);

} // namespace inflow::gateways
