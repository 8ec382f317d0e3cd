#include "app/commands.hpp"
#include "app/common.hpp"
#include "gateways/kserve/model_server.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>

namespace inflow::app {

int run_serve(const serve_cli_options& o) {
  std::vector<gateways::kserve::served_model> models;
  for (const auto& spec : o.models) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      spdlog::error("--model expects NAME=PATH, got '{}'", spec);
      return usage;
    }
    models.push_back({spec.substr(0, eq), spec.substr(eq + 1)});
  }
  auto colon = o.listen.rfind(':');
  gateways::kserve::serve_options options;
  options.host = o.listen.substr(0, colon);
  options.port = static_cast<uint16_t>(std::stoi(o.listen.substr(colon + 1)));
  options.max_batch = o.max_batch;
  options.max_linger_ms = o.max_linger_ms;
  options.threads = o.threads;
  try {
    gateways::kserve::model_server server(models, options);
    auto url = "http://" + options.host + ":" + std::to_string(server.port());
    std::printf("%s\n", url.c_str());
    std::fflush(stdout);
    for (const auto& m : models)
      spdlog::info("serving {} at {}/v2/models/{}/infer (KServe v2); metrics at {}/metrics", m.name, url, m.name, url);
    while (!wait_for_stop(std::chrono::seconds(1))) {
    }
    spdlog::info("model server stopped");
    return ok;
  } catch (const std::exception& e) {
    spdlog::error("serve: {}", e.what());
    return unavailable;
  }
}

} // namespace inflow::app
