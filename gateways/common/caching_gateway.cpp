#include "gateways/common/caching_gateway.hpp"

#include "gateways/common/gateway_actor.hpp"
#include "gateways/common/gateway_probe.hpp"
#include "admin/metrics.hpp"
#include "gateways/common/result_cache.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <map>

namespace inflow::gateways {

namespace {

using cached_atom = caf::atom_constant<caf::atom("cached")>;

/// The gateway role in front of the model; it takes the model's replies, and word from
/// librdkafka's thread that the cache topic has a reply's answers.
using caching_interface =
  gateway_actor::extend<caf::reacts_to<score_reply>, caf::reacts_to<cached_atom, uint64_t, int32_t>>;

class ack_to_actor : public kafka::delivery_listener {
public:
  explicit ack_to_actor(caching_interface target) : target_(std::move(target)) {}
  void on_delivery(uint64_t token, rd_kafka_resp_err_t error) override {
    caf::anon_send(target_, cached_atom::value, static_cast<uint64_t>(token), static_cast<int32_t>(error));
  }

private:
  caching_interface target_;
};

/// An input sent on to the model, under an id of this actor's.
struct forwarded {
  caf::strong_actor_ptr caller;
  uint64_t id; ///< the caller's
  std::string key;
};

/// A reply held until Kafka has every answer in it.
struct unconfirmed {
  caf::strong_actor_ptr caller;
  score_reply reply;
  size_t left = 0;
};

struct caching_state {
  gateway_actor model;
  std::shared_ptr<result_cache> cache;
  model_info info;
  std::shared_ptr<ack_to_actor> acks;
  std::map<uint64_t, forwarded> sent;
  std::map<uint64_t, unconfirmed> waiting;
  uint64_t next_id = 1;
  bool warned = false;
  metrics::counter* hits = nullptr;
  metrics::counter* misses = nullptr;
  metrics::gauge* entries = nullptr;
  std::unique_ptr<gateway_probe> model_probe; ///< the model's rows, calls and cost: what an answer cost
  metrics::counter* calls_saved = nullptr;
  metrics::counter* cost_saved = nullptr;
  double calls_saved_part = 0, cost_saved_part = 0; ///< fractions not yet counted
  uint64_t calls_seen = 0, cost_seen = 0;           ///< the model's counters at the last reply
  static inline const char* name = "inflow.gateway.cache";
};

using caching_actor = caching_interface::stateful_base<caching_state>;

/// Adds `amount` to a counter of whole units, keeping the fraction for later.
void add_saved(metrics::counter* c, double& part, double amount) {
  part += amount;
  auto whole = static_cast<uint64_t>(part);
  c->inc(whole);
  part -= static_cast<double>(whole);
}

void on_request(caching_actor* self, score_request& request) {
  auto& st = self->state;
  auto caller = self->current_sender();
  const bool text = takes_text(st.info.task);
  const size_t width = text ? 0 : (request.ids.empty() ? 0 : request.rows.size() / request.ids.size());
  score_reply hits;
  hits.model = st.info.name;
  hits.model_version = st.info.version;
  score_request misses;
  misses.traceparent = request.traceparent;
  for (size_t i = 0; i < request.ids.size(); ++i) {
    auto key = text ? st.cache->key_of(request.texts[i]) : st.cache->key_of(request.rows.data() + i * width, width);
    if (auto e = st.cache->find(key)) {
      add_saved(st.calls_saved, st.calls_saved_part, e->call_share);
      add_saved(st.cost_saved, st.cost_saved_part, e->cost_micro_usd);
      hits.ids.push_back(request.ids[i]);
      hits.width = text ? 1 : static_cast<uint32_t>(e->values.size());
      hits.values.insert(hits.values.end(), e->values.begin(), e->values.end());
      if (text)
        hits.texts.push_back(std::move(e->text));
      continue;
    }
    auto id = st.next_id++;
    st.sent.emplace(id, forwarded{caller, request.ids[i], std::move(key)});
    misses.ids.push_back(id);
    if (text)
      misses.texts.push_back(std::move(request.texts[i]));
    else
      misses.rows.insert(misses.rows.end(), request.rows.begin() + static_cast<std::ptrdiff_t>(i * width),
                         request.rows.begin() + static_cast<std::ptrdiff_t>((i + 1) * width));
  }
  st.hits->inc(hits.ids.size());
  st.misses->inc(misses.ids.size());
  if (!hits.ids.empty())
    self->send(caf::actor_cast<caller_actor>(caller), std::move(hits));
  if (!misses.ids.empty())
    self->send(st.model, std::move(misses));
}

void on_reply(caching_actor* self, score_reply& reply) {
  auto& st = self->state;
  // Back to each caller under its own ids; only this model's own answers are cached.
  const bool keep = reply.ok() && reply.model == st.info.name;
  std::map<caf::strong_actor_ptr, std::pair<score_reply, std::vector<std::string>>> parts;
  for (size_t i = 0; i < reply.ids.size(); ++i) {
    auto it = st.sent.find(reply.ids[i]);
    if (it == st.sent.end())
      continue;
    auto& [part, keys] = parts[it->second.caller];
    part.ids.push_back(it->second.id);
    if (reply.ok() && !reply.values.empty())
      part.values.insert(part.values.end(), reply.values.begin() + static_cast<std::ptrdiff_t>(i * reply.width),
                         reply.values.begin() + static_cast<std::ptrdiff_t>((i + 1) * reply.width));
    if (reply.ok() && !reply.texts.empty())
      part.texts.push_back(std::move(reply.texts[i]));
    keys.push_back(std::move(it->second.key));
    st.sent.erase(it);
  }
  // What each answer cost: the model's calls and cost since the last reply, per input of this one
  // (this actor is the model's only caller). What a hit on it saves.
  const auto calls = st.model_probe->batches.value(), cost = st.model_probe->cost_micro_usd.value();
  const double inputs = std::max<double>(1, static_cast<double>(reply.ids.size()));
  const auto call_share = static_cast<float>(static_cast<double>(calls - st.calls_seen) / inputs);
  const auto cost_share = static_cast<float>(static_cast<double>(cost - st.cost_seen) / inputs);
  st.calls_seen = calls;
  st.cost_seen = cost;
  for (auto& [caller, part_keys] : parts) {
    auto& [part, keys] = part_keys;
    part.failed = reply.failed;
    part.error = reply.error;
    part.width = reply.width;
    part.model = reply.model;
    part.model_version = reply.model_version;
    if (!keep) {
      self->send(caf::actor_cast<caller_actor>(caller), std::move(part));
      continue;
    }
    auto token = st.next_id++;
    auto& wait = st.waiting[token];
    for (size_t i = 0; i < keys.size(); ++i) {
      result_cache::entry e;
      e.call_share = call_share;
      e.cost_micro_usd = cost_share;
      if (!part.texts.empty())
        e.text = part.texts[i];
      else
        e.values.assign(part.values.begin() + static_cast<std::ptrdiff_t>(i * part.width),
                        part.values.begin() + static_cast<std::ptrdiff_t>((i + 1) * part.width));
      auto err = st.cache->store(keys[i], e, st.acks, token);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++wait.left;
      } else if (!st.warned) {
        st.warned = true;
        spdlog::warn("model {}: cannot write to cache topic {}: {}; answers go uncached", st.info.name,
                     st.cache->topic(), rd_kafka_err2str(err));
      }
    }
    wait.caller = caller;
    wait.reply = std::move(part);
    if (wait.left == 0) {
      self->send(caf::actor_cast<caller_actor>(wait.caller), std::move(wait.reply));
      st.waiting.erase(token);
    }
  }
  st.entries->set(static_cast<int64_t>(st.cache->size()));
}

gateway_actor spawn_caching(caf::actor_system& system, gateway_actor model, std::shared_ptr<result_cache> cache,
                                 model_info info, metrics::registry& metrics) {
  auto behavior = [](caching_actor* self, gateway_actor model, std::shared_ptr<result_cache> cache, model_info info,
                     metrics::registry* metrics) -> caching_interface::behavior_type {
    self->set_exception_handler(end_on_exception);
    self->link_to(model); // the model's end is the cache's (and a stop of the cache stops the model)
    auto& st = self->state;
    const auto label = metrics::label("model", info.name);
    st.hits = &metrics->get_counter("inflow_gateway_cache_hits_total", "Inputs answered from the result cache.", label);
    st.misses = &metrics->get_counter("inflow_gateway_cache_misses_total", "Inputs the result cache did not hold.", label);
    st.entries = &metrics->get_gauge("inflow_gateway_cache_entries", "Answers in the result cache's index.", label);
    st.calls_saved = &metrics->get_counter("inflow_gateway_cache_calls_saved_total",
                                           "Model calls the cache's hits saved (at the model's rows per call).", label);
    st.cost_saved = &metrics->get_counter("inflow_gateway_cache_cost_saved_micro_usd_total",
                                          "Cost the cache's hits saved (at the model's cost per row), in millionths "
                                          "of a US dollar.", label);
    st.model_probe = std::make_unique<gateway_probe>(*metrics, info.name);
    st.model = std::move(model);
    st.cache = std::move(cache);
    st.info = std::move(info);
    st.acks = std::make_shared<ack_to_actor>(caf::actor_cast<caching_interface>(self));
    self->link_to(st.model);
    return {
      [=](score_request& request) { on_request(self, request); },
      [=](score_reply& reply) { on_reply(self, reply); },
      [=](cached_atom, uint64_t token, int32_t error) {
        auto& st = self->state;
        auto it = st.waiting.find(token);
        if (it == st.waiting.end())
          return;
        if (error && !st.warned) {
          st.warned = true;
          spdlog::warn("model {}: an answer was not written to cache topic {}: {}", st.info.name, st.cache->topic(),
                       rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(error)));
        }
        if (--it->second.left == 0) {
          self->send(caf::actor_cast<caller_actor>(it->second.caller), std::move(it->second.reply));
          st.waiting.erase(it);
        }
      },
      // Settings for the model itself.
      [=](fallback_atom a, scorer_actor& fallback) { self->send(self->state.model, a, std::move(fallback)); },
      [=](budget_atom a, double rps, double tpm, bool paused) { self->send(self->state.model, a, rps, tpm, paused); },
    };
  };
  return system.spawn(behavior, std::move(model), std::move(cache), std::move(info), &metrics);
}

} // namespace

prepared_model with_cache(prepared_model model, const config::model_config& cfg, const kafka::properties& kafka,
                          metrics::registry& metrics) {
  if (cfg.cache.topic.empty())
    return model;
  model.spawn = [inner = std::move(model.spawn), info = model.info, cfg, kafka, &metrics](caf::actor_system& system) {
    auto cache = std::make_shared<result_cache>(kafka, cfg.cache.topic, static_cast<size_t>(cfg.cache.max_entries),
                                                info.name + '\0' + info.version);
    return spawn_caching(system, inner(system), std::move(cache), info, metrics);
  };
  return model;
}

} // namespace inflow::gateways
