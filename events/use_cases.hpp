#pragma once
// The events of the use cases besides fraud (events/generator.hpp): sensor telemetry for
// predictive maintenance, shoppers' visits for personalization, customers' messages for support.
// Deterministic for a seed, each with its ground truth, so that `inflow train` learns from them
// and tests check what a pipeline made of them.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace inflow::events {

/// One generated event: its Kafka key, its JSON value and its ground truth.
struct sample {
  std::string key;
  std::string json;
  float label = 0;
};

using sample_source = std::function<sample(int64_t now_ms)>;

/// Machines that wear out and fail, one reading per machine-hour: temperature, vibration,
/// pressure, rpm, load and hours since service. Label: hours until the machine fails (at most
/// 500); a machine that fails is serviced and starts again as new.
sample_source telemetry_source(uint64_t seed, int machines = 200);
/// The features the maintenance model takes, as feature expressions.
const std::vector<std::string>& telemetry_features();

/// Shoppers seeing an offer: its category and discount, their recent activity. Label: 1 when
/// they take it (price-sensitive users take discounts, others what they already buy).
sample_source offer_source(uint64_t seed, int users = 5000);
const std::vector<std::string>& offer_features();

/// Customers writing to support about one of support_topics(). Label: the topic's index.
sample_source message_source(uint64_t seed, int customers = 2000);
const std::vector<std::string>& support_topics();

/// A source by use case name (maintenance, personalization, support); throws std::invalid_argument.
sample_source source_for(const std::string& use_case, uint64_t seed);

} // namespace inflow::events
