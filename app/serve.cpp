#include "app/commands.hpp"
#include "app/common.hpp"
#include "config/config.hpp"
#include "serve/model_server.hpp"
#include "serve/reply_server.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>

namespace inflow::app {

int run_serve(const serve_cli_options& o) {
  if (o.models.empty() == !o.support_replies) {
    spdlog::error("serve: give --model NAME=PATH (KServe v2) or --support-replies (OpenAI chat completions)");
    return usage;
  }
  std::vector<serve::served_model> models;
  for (const auto& spec : o.models) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      spdlog::error("--model expects NAME=PATH, got '{}'", spec);
      return usage;
    }
    models.push_back({spec.substr(0, eq), spec.substr(eq + 1)});
  }
  auto address = config::parse_host_port(o.listen); // checked by the command line
  if (!config::is_loopback(address->host) && o.token.empty()) {
    spdlog::error("serve: --listen {} is reachable from other machines: give it a --token (or "
                  "INFLOW_SERVE_TOKEN) that callers send as `Authorization: Bearer ...` (the kserve "
                  "gateway's api_key)",
                  o.listen);
    return usage;
  }
  serve::serve_options options;
  options.host = address->host;
  options.port = address->port;
  options.token = o.token;
  options.max_request_bytes = o.max_request_bytes;
  options.request_timeout_ms = o.request_timeout_ms;
  options.max_batch = o.max_batch;
  options.max_linger_ms = o.max_linger_ms;
  options.threads = o.threads;
  try {
    if (o.support_replies) {
      serve::reply_server server(options.host, options.port, options.token);
      std::printf("http://%s:%u/v1\n", options.host.c_str(), server.port());
      std::fflush(stdout);
      spdlog::info("serving support replies at POST /v1/chat/completions (OpenAI chat completions)");
      while (!wait_for_stop(std::chrono::seconds(1))) {
      }
      return ok;
    }
    serve::model_server server(models, options);
    auto host = options.host.find(':') == std::string::npos ? options.host : "[" + options.host + "]";
    auto url = "http://" + host + ":" + std::to_string(server.port());
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
