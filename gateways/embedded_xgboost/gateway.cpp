// The `embedded-xgboost` provider: scores in-process with XGBoost, batching
// rows from every partition of the node into calls of up to max_batch rows.
// The gateway actor forms the batches; its workers score them, one batch each at
// a time, so that one model's compute spreads over the node's cores.

#include "gateways/common/gateway_actor.hpp"
#include "gateways/common/gateway_probe.hpp"
#include "gateways/common/batcher.hpp"
#include "gateways/common/registry.hpp"
#include "xgboost/booster.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>
#include <vector>

// A batch goes from the gateway to a worker of the same process, never over the wire.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(inflow::gateways::batcher<caf::strong_actor_ptr>::batch)

namespace inflow::gateways::embedded_xgboost {

namespace {

using gateways::flush_atom;
using xgboost::booster;
using xgboost::read_meta;

/// What a worker needs to score a batch and answer its callers.
struct model_context {
  model_info info;
  std::shared_ptr<const booster> model;
  std::shared_ptr<gateway_probe> probe;
};

using batch = gateways::batcher<caf::strong_actor_ptr>::batch;

/// Scores one batch and sends each caller its part (XGBoost's in-place predict is thread-safe).
template <class Self>
void score(const model_context& s, Self* self, batch b) {
  const size_t rows = b.size();
  auto started = std::chrono::steady_clock::now();
  score_reply whole;
  try {
    whole.values = s.model->predict(b.rows.data(), rows);
  } catch (const std::exception& e) {
    whole.failed = failure::failed;
    whole.error = e.what();
    s.probe->errors.inc();
  }
  s.probe->predict_latency.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  s.probe->batch_size.observe(static_cast<double>(rows));
  s.probe->batches.inc();
  s.probe->rows.inc(rows);
  split_results(b.parts, std::move(whole), s.info, [self](const caf::strong_actor_ptr& to, score_reply r) {
    self->send(caf::actor_cast<caller_actor>(to), std::move(r));
  });
}

using worker_actor = caf::typed_actor<caf::reacts_to<batch>>;

worker_actor::behavior_type worker(worker_actor::pointer self, std::shared_ptr<const model_context> s) {
  self->set_exception_handler(end_on_exception); // linked: the gateway ends with it
  return {[=](batch& b) { score(*s, self, std::move(b)); }};
}

struct gateway_state {
  std::shared_ptr<const model_context> model;
  std::optional<gateways::batcher<caf::strong_actor_ptr>> pending;
  std::vector<worker_actor> workers; ///< empty: the gateway scores itself
  size_t next_worker = 0;
  static inline const char* name = "inflow.gateway.embedded-xgboost";
};

/// The gateway role and its own linger timer.
using embedded_actor = gateway_actor::extend<caf::reacts_to<flush_atom, uint64_t>>;
using self_pointer = embedded_actor::stateful_pointer<gateway_state>;

/// A formed batch goes to the next worker in turn (batches are alike, so turns spread them evenly).
void hand_out(self_pointer self, batch b) {
  auto& st = self->state;
  if (st.workers.empty())
    return score(*st.model, self, std::move(b));
  self->send(st.workers[st.next_worker], std::move(b));
  st.next_worker = (st.next_worker + 1) % st.workers.size();
}

embedded_actor::behavior_type gateway(self_pointer self, std::shared_ptr<const booster> model, config::model_config cfg,
                      std::shared_ptr<gateway_probe> probe, model_info info, size_t workers) {
  self->set_exception_handler(end_on_exception);
  auto& st = self->state;
  st.pending.emplace(static_cast<size_t>(cfg.batch.max_batch), model->num_features(),
                     std::chrono::milliseconds(cfg.batch.max_linger_ms));
  st.model = std::make_shared<const model_context>(model_context{std::move(info), std::move(model), std::move(probe)});
  if (workers > 1)
    for (size_t i = 0; i < workers; ++i)
      st.workers.push_back(self->spawn<caf::linked>(worker, st.model));
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
        hand_out(self, st.pending->take());
      if (auto generation = st.pending->arm_linger())
        self->delayed_send(self, st.pending->linger(), flush_atom::value, *generation);
      st.model->probe->queued_rows.set(static_cast<int64_t>(st.pending->pending_rows()));
    },
    [=](flush_atom, uint64_t generation) {
      auto& st = self->state;
      if (!st.pending->linger_due(generation))
        return;
      while (!st.pending->empty())
        hand_out(self, st.pending->take());
      st.model->probe->queued_rows.set(0);
    },
    // One model in this process: no fallback to hand work to, no limits to share.
    [](fallback_atom, const scorer_actor&) {},
    [](budget_atom, double, double, bool) {},
  };
}

struct options {
  std::string path;
  int64_t threads{};
  int64_t workers{};
};

const config::option_block<options>& option_block() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("path", &options::path, std::nullopt,
            "The model file (`inflow train` writes one), relative to the working directory.")
      .integer("threads", &options::threads, 1, 1, 256, "threads", "Threads the model may use for one batch.")
      .integer("workers", &options::workers, 0, 0, 256, "actors",
               "Batches scored at once, each by a worker of its own (0: one per core; 1: the gateway scores them itself).");
  return block;
}

prepared_model prepare(const config::model_config& cfg, const options& o, metrics::registry& metrics) {
  auto model = std::make_shared<const booster>(o.path, static_cast<int>(o.threads));
  model_info info{cfg.name, cfg.version, cfg.input, cfg.task, false};
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
  const size_t workers = o.workers > 0 ? static_cast<size_t>(o.workers) : std::max(1u, std::thread::hardware_concurrency());
  return {info, [model, cfg, probe, info, workers](caf::actor_system& system) {
            return system.spawn(gateway, model, cfg, probe, info, workers);
          }};
}

} // namespace

REGISTER_GATEWAY("embedded-xgboost", make_factory<options>({"classification", "regression"}, option_block(), prepare));

} // namespace inflow::gateways::embedded_xgboost
