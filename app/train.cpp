#include "app/commands.hpp"
#include "app/common.hpp"
#include "drift/profile.hpp"
#include "xgboost/trainer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace inflow::app {

int run_train(xgboost::train_options opt, const std::string& use_case) {
  const bool tty = stderr_is_terminal();
  opt.progress = [&](int round, int rounds) {
    if (tty)
      fmt::print(stderr, "\rtraining: round {}/{}\x1b[K", round, rounds);
    else if (round % 25 == 0 || round == rounds)
      fmt::print(stderr, "training: round {}/{}\n", round, rounds);
  };
  try {
    fmt::print(stderr, "training the {} model on {} generated events (seed {})\n", use_case, opt.rows, opt.seed);
    auto r = xgboost::train_use_case_model(use_case, opt);
    if (tty)
      fmt::print(stderr, "\n");
    fmt::print("model:      {} (version {})\n", r.model_path, r.version);
    fmt::print("profile:    {} (what drift is measured against)\n", drift::profile_path_for(r.model_path));
    const char* rule = r.regression ? "<=" : ">=";
    fmt::print("rows:       {} train, {} held out ({} at score {} {})\n", r.train_rows, r.holdout_rows,
               r.holdout_positive, rule, r.threshold);
    if (r.regression)
      fmt::print("RMSE:       {:.4f}\n", r.rmse);
    else
      fmt::print("AUC:        {:.4f}\n", r.auc);
    fmt::print("precision:  {:.4f} at score {} {}\n", r.precision, rule, r.threshold);
    fmt::print("recall:     {:.4f} at score {} {}\n", r.recall, rule, r.threshold);
    return ok;
  } catch (const std::invalid_argument& e) {
    spdlog::error("train: {}", e.what());
    return usage;
  } catch (const std::exception& e) {
    spdlog::error("train: {}", e.what());
    return internal;
  }
}

} // namespace inflow::app
