#pragma once
// The gateway actor of every HTTP provider: micro-batches rows, keeps calls
// within the provider's rate and concurrency limits, honours Retry-After and
// x-ratelimit-reset-* as a (capped) cooldown, retries retriable errors with
// backoff and full jitter, halves a batch the provider refuses until the bad
// input is alone, opens a circuit breaker on repeated failures, and then does
// what `on_failure` says: dead-letter, hold (block) or hand to the fallback,
// within `deadline_ms`. A provider only says how rows become a call and a
// response becomes scores (a codec).

#include "gateways/common/credential.hpp"
#include "gateways/common/registry.hpp"
#include "http/client.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace inflow::gateways {

/// The inputs of one call: `n` rows of `width` features, or `n` texts.
struct call_input {
  const float* rows = nullptr;
  size_t n = 0;
  size_t width = 0;
  const std::string* texts = nullptr;
};

/// What a call produced: `n` scores (width 1) or embeddings (`width` each), or
/// `n` texts; and the tokens the provider counted, when it says.
struct call_output {
  std::vector<float> values;
  size_t width = 1;
  std::vector<std::string> texts;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
};

class codec {
public:
  virtual ~codec() = default;
  /// The call for the inputs; `call_id` is unique per gateway.
  virtual http::call build(const call_input& in, uint64_t call_id) const = 0;
  /// The results of a 2xx response for `n` inputs, or nullopt with `error` set.
  virtual std::optional<call_output> parse(const http::result& response, size_t n, std::string& error) const = 0;
  /// Most inputs one call can carry (an API without batches says 1); 0: any.
  virtual size_t max_inputs_per_call() const { return 0; }
  /// Whether a 2xx response of this media type can be read (JSON unless a codec says otherwise).
  virtual bool accepts(const std::string& content_type) const {
    return content_type.empty() || content_type.find("json") != std::string::npos;
  }
  /// Tokens a call will likely use, for the tokens-per-minute budget (0: untracked).
  virtual int64_t estimate_tokens(const call_input&) const { return 0; }
  /// The credential its calls carry, got again after a 401/403; none: nothing to renew.
  virtual renewable* renewable_credential() const { return nullptr; }
};

/// A codec for APIs that score feature rows, one float per row.
class row_codec : public codec {
public:
  virtual http::call build_rows(const float* rows, size_t n, size_t width, uint64_t call_id) const = 0;
  virtual std::optional<std::vector<float>> parse_scores(const http::result& response, size_t n,
                                                         std::string& error) const = 0;

  http::call build(const call_input& in, uint64_t call_id) const final {
    return build_rows(in.rows, in.n, in.width, call_id);
  }
  std::optional<call_output> parse(const http::result& r, size_t n, std::string& error) const final {
    auto scores = parse_scores(r, n, error);
    if (!scores)
      return std::nullopt;
    call_output out;
    out.values = std::move(*scores);
    return out;
  }
};

/// Checks the remote settings of `cfg` (endpoint, input) and returns a model
/// whose actor calls the provider through `c`. `provider_model` is the provider's
/// name for the model (`model:`, `deployment:`), the version alerts carry unless
/// `version:` says otherwise. Throws std::runtime_error.
prepared_model prepare_remote(const config::model_config& cfg, metrics::registry& metrics,
                              std::shared_ptr<const codec> c, const std::string& provider_model = "");

} // namespace inflow::gateways
