// The `embedded-xgboost` provider: scores in-process with XGBoost, batching
// rows from every partition of the node into calls of up to max_batch rows.

#include "gateways/common/gateway_actor.hpp"
#include "gateways/common/gateway_probe.hpp"
#include "gateways/common/batcher.hpp"
#include "gateways/common/registry.hpp"
#include "xgboost/booster.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace inflow::gateways::embedded_xgboost {

namespace {

using gateways::flush_atom;
using xgboost::booster;
using xgboost::read_meta;

struct gateway_state {
  model_info info;
  std::shared_ptr<const booster> model;
  std::shared_ptr<gateway_probe> probe;
  std::optional<gateways::batcher<caf::strong_actor_ptr>> pending;
  static inline const char* name = "inflow.gateway.embedded-xgboost";
};

/// The gateway role and its own linger timer.
using embedded_actor = gateway_actor::extend<caf::reacts_to<flush_atom, uint64_t>>;
using self_pointer = embedded_actor::stateful_pointer<gateway_state>;

void score(self_pointer self, gateways::batcher<caf::strong_actor_ptr>::batch batch) {
  auto& st = self->state;
  const size_t rows = batch.size();
  auto started = std::chrono::steady_clock::now();
  score_reply whole;
  try {
    whole.values = st.model->predict(batch.rows.data(), rows);
  } catch (const std::exception& e) {
    whole.failed = failure::failed;
    whole.error = e.what();
    st.probe->errors.inc();
  }
  st.probe->predict_latency.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  st.probe->batch_size.observe(static_cast<double>(rows));
  st.probe->batches.inc();
  st.probe->rows.inc(rows);
  split_results(batch.parts, std::move(whole), st.info, [self](const caf::strong_actor_ptr& to, score_reply r) {
    self->send(caf::actor_cast<caller_actor>(to), std::move(r));
  });
}

embedded_actor::behavior_type gateway(self_pointer self, std::shared_ptr<const booster> model, config::model_config cfg,
                      std::shared_ptr<gateway_probe> probe, model_info info) {
  auto& st = self->state;
  st.info = std::move(info);
  st.pending.emplace(static_cast<size_t>(cfg.batch.max_batch), model->num_features(),
                     std::chrono::milliseconds(cfg.batch.max_linger_ms));
  st.model = std::move(model);
  st.probe = std::move(probe);
  return {
    [=](gateways::score_request& request) {
      auto& st = self->state;
      try {
        st.pending->add(self->current_sender(), std::move(request));
      } catch (const std::invalid_argument& e) {
        self->send(caf::actor_cast<caller_actor>(self->current_sender()),
                   failed_reply(std::move(request.ids), failure::rejected, e.what()));
        return;
      }
      while (st.pending->full())
        score(self, st.pending->take());
      if (auto generation = st.pending->arm_linger())
        self->delayed_send(self, st.pending->linger(), flush_atom::value, *generation);
      st.probe->queued_rows.set(static_cast<int64_t>(st.pending->pending_rows()));
    },
    [=](flush_atom, uint64_t generation) {
      auto& st = self->state;
      if (!st.pending->linger_due(generation))
        return;
      while (!st.pending->empty())
        score(self, st.pending->take());
      st.probe->queued_rows.set(0);
    },
    // One model in this process: no fallback to hand work to, no limits to share.
    [](fallback_atom, const scorer_actor&) {},
    [](budget_atom, double, double, bool) {},
  };
}

struct options {
  std::string path;
  int64_t threads{};
};

const config::option_block<options>& option_block() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("path", &options::path, std::nullopt,
            "The model file (`inflow train` writes one), relative to the working directory.")
      .integer("threads", &options::threads, 1, 1, 256, "threads", "Threads the model may use for one batch.");
  return block;
}

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  auto model = std::make_shared<const booster>(o.path, static_cast<int>(o.threads));
  model_info info{cfg.name, cfg.version, cfg.input, cfg.task};
  if (info.version.empty() || info.input.empty()) {
    auto meta = read_meta(o.path);
    if (info.version.empty())
      info.version = meta.version;
    if (info.input.empty())
      info.input = meta.features;
  }
  if (info.input.size() != model->num_features())
    throw std::runtime_error(fmt::format("{} expects {} input features but {} are declared", o.path,
                                         model->num_features(), info.input.size()));
  auto probe = std::make_shared<gateway_probe>(metrics, cfg.name);
  return {info, [model, cfg, probe, info](caf::actor_system& system) {
            return system.spawn(gateway, model, cfg, probe, info);
          }};
}

} // namespace

REGISTER_GATEWAY("embedded-xgboost", make_factory<options>({"classification", "regression"}, option_block(), prepare));

} // namespace inflow::gateways::embedded_xgboost
