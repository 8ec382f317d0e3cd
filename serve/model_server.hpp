#pragma once
// `inflow serve`: embedded models over the KServe v2 REST protocol, for running
// the model side on machines of its own. Concurrent requests are batched
// together into one model call of up to max_batch rows.

#include "admin/metrics.hpp"
#include "xgboost/booster.hpp"

#include <memory>
#include <string>
#include <vector>

namespace inflow::serve {

struct served_model {
  std::string name;
  std::string path; ///< XGBoost model; its metadata sits beside it
};

struct serve_options {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  size_t max_batch = 256;
  int64_t max_linger_ms = 2;
  int threads = 1; ///< per model call
  std::string token; ///< non-empty: every request but the health checks needs `Authorization: Bearer <token>`
  size_t max_request_bytes = 8 << 20;
  int request_timeout_ms = 30'000;
};

class model_server {
public:
  /// Loads every model; throws std::runtime_error naming the one that fails.
  model_server(const std::vector<served_model>& models, const serve_options& options);
  ~model_server();
  uint16_t port() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace inflow::serve
