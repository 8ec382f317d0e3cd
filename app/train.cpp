#include "app/commands.hpp"
#include "app/common.hpp"
#include "drift/profile.hpp"
#include "xgboost/trainer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace inflow::app {

int run_train(xgboost::train_options opt) {
  const bool tty = stderr_is_terminal();
  opt.progress = [&](int round, int rounds) {
    if (tty)
      fmt::print(stderr, "\rtraining: round {}/{}\x1b[K", round, rounds);
    else if (round % 25 == 0 || round == rounds)
      fmt::print(stderr, "training: round {}/{}\n", round, rounds);
  };
  try {
    fmt::print(stderr, "training on {} generated transactions (seed {})\n", opt.rows, opt.seed);
    auto r = xgboost::train_fraud_model(opt);
    if (tty)
      fmt::print(stderr, "\n");
    fmt::print("model:      {} (version {})\n", r.model_path, r.version);
    fmt::print("profile:    {} (what drift is measured against)\n", drift::profile_path_for(r.model_path));
    fmt::print("rows:       {} train, {} held out ({} fraud)\n", r.train_rows, r.holdout_rows, r.holdout_fraud);
    fmt::print("AUC:        {:.4f}\n", r.auc);
    fmt::print("precision:  {:.4f} at score >= {}\n", r.precision, r.threshold);
    fmt::print("recall:     {:.4f} at score >= {}\n", r.recall, r.threshold);
    return ok;
  } catch (const std::exception& e) {
    spdlog::error("train: {}", e.what());
    return internal;
  }
}

} // namespace inflow::app
