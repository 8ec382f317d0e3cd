#pragma once
// A model's actor behind its result cache (`models.*.cache`): inputs answered before are
// answered at once from the cache; only the others go to the model. An answer reaches its
// caller once Kafka holds it in the cache topic, so a record whose outcome was written (and
// whose offset may be committed) can never cost a second call when it is read again.

#include "gateways/common/registry.hpp"
#include "kafka/client.hpp"

namespace inflow::gateways {

/// The model with its cache in front when `cfg.cache.topic` is set (the cache is read when the
/// model is spawned, not here: `inflow validate` touches no Kafka); otherwise `model` itself.
prepared_model with_cache(prepared_model model, const config::model_config& cfg, const kafka::properties& kafka,
                          metrics::registry& metrics);

} // namespace inflow::gateways
