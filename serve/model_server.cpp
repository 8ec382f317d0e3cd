#include "serve/model_server.hpp"

#include "gateways/common/batcher.hpp"
#include "gateways/kserve/protocol.hpp"
#include "http/server.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <numeric>
#include <thread>

namespace inflow::serve {

using gateways::kserve::decode_infer_request;
using gateways::kserve::encode_infer_response;

namespace {

using clock = std::chrono::steady_clock;

/// Batches rows from concurrent requests into model calls (the batcher every gateway uses, its
/// linger run by a condition variable); one worker thread.
class batching_model {
public:
  batching_model(std::string name, const std::string& path, const serve_options& options, metrics::registry& reg)
    : name_(std::move(name)), model_(path, options.threads), meta_(xgboost::read_meta(path)),
      pending_(options.max_batch, model_.num_features(), std::chrono::milliseconds(options.max_linger_ms)),
      batch_size_(reg.get_histogram("inflow_serve_batch_size", "Rows per model call.", metrics::label("model", name_),
                                    metrics::size_buckets())),
      call_seconds_(reg.get_histogram("inflow_serve_call_seconds", "Duration of one model call.",
                                      metrics::label("model", name_), metrics::latency_buckets())),
      worker_([this] { run(); }) {}

  ~batching_model() {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  const std::string& name() const { return name_; }
  const xgboost::model_meta& meta() const { return meta_; }
  size_t width() const { return model_.num_features(); }

  /// Blocks until the `n` rows are scored. Throws std::runtime_error with the model's error.
  std::vector<float> score(std::vector<float>&& rows, size_t n) {
    job j{std::vector<float>(n), n, {}, {}};
    auto done = j.result.get_future();
    gateways::score_request request;
    request.ids.resize(n);
    std::iota(request.ids.begin(), request.ids.end(), uint64_t{0});
    request.rows = std::move(rows);
    {
      std::lock_guard<std::mutex> guard(mutex_);
      pending_.add(&j, std::move(request));
    }
    cv_.notify_one();
    return done.get();
  }

private:
  /// One request's rows, scored in one or more batches (a request may be split).
  struct job {
    std::vector<float> scores;
    size_t left; ///< rows not yet scored
    std::string error;
    std::promise<std::vector<float>> result;
  };

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      if (stopping_)
        return;
      // Wait a little for more rows, unless a batch is already full.
      cv_.wait_until(lock, clock::now() + pending_.linger(), [this] { return stopping_ || pending_.full(); });
      auto batch = pending_.take();
      lock.unlock();
      predict(batch);
      lock.lock();
    }
  }

  void predict(gateways::batcher<job*>::batch& batch) {
    auto started = clock::now();
    gateways::score_reply whole;
    try {
      whole.values = model_.predict(batch.rows.data(), batch.size());
      call_seconds_.observe(std::chrono::duration<double>(clock::now() - started).count());
      batch_size_.observe(static_cast<double>(batch.size()));
    } catch (const std::exception& e) {
      whole.failed = gateways::failure::failed;
      whole.error = e.what();
    }
    split_results(batch.parts, std::move(whole), {name_, meta_.version, {}, "classification"},
                  [](job* j, gateways::score_reply part) {
                    for (size_t k = 0; k < part.ids.size() && part.ok(); ++k)
                      j->scores[part.ids[k]] = part.values[k];
                    if (!part.ok())
                      j->error = part.error;
                    j->left -= part.ids.size();
                    if (j->left > 0)
                      return;
                    // A job lives on its caller's stack, and the caller returns as soon as its result
                    // is set: take what is needed first, never touch the job after.
                    auto promise = std::move(j->result);
                    if (j->error.empty())
                      promise.set_value(std::move(j->scores));
                    else
                      promise.set_exception(std::make_exception_ptr(std::runtime_error(j->error)));
                  });
  }

  std::string name_;
  xgboost::booster model_;
  xgboost::model_meta meta_;
  gateways::batcher<job*> pending_; ///< guarded by mutex_
  metrics::histogram& batch_size_;
  metrics::histogram& call_seconds_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread worker_;
};

http::response json(int status, std::string body) {
  return {status, "application/json", std::move(body)};
}

http::response error(int status, const std::string& message) {
  return json(status, nlohmann::json{{"error", message}}.dump());
}

} // namespace

struct model_server::impl {
  metrics::registry registry;
  std::map<std::string, std::unique_ptr<batching_model>> models;
  std::unique_ptr<http::server> server;
  std::string token;

  http::response handle(const http::request& r) {
    auto path = r.target.substr(0, r.target.find('?'));
    if (path == "/v2/health/live" || path == "/v2/health/ready")
      return json(200, R"({"live":true,"ready":true})");
    if (!token.empty() && !http::bearer_matches(r, token))
      return error(401, "missing or wrong bearer token (Authorization: Bearer ...)");
    if (path == "/metrics")
      return {200, "text/plain; version=0.0.4; charset=utf-8", registry.render()};
    if (path == "/v2")
      return json(200, R"({"name":"inflow","version":")" INFLOW_VERSION R"(","extensions":[]})");
    const std::string prefix = "/v2/models/";
    if (path.rfind(prefix, 0) != 0)
      return error(404, "not found; try /v2/models/{name}/infer");
    auto rest = path.substr(prefix.size());
    auto slash = rest.find('/');
    auto name = rest.substr(0, slash);
    auto action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    auto it = models.find(name);
    if (it == models.end())
      return error(404, fmt::format("no model named '{}'", name));
    auto& model = *it->second;
    auto& requests = registry.get_counter("inflow_serve_requests_total", "Inference requests by outcome.",
                                          metrics::label("model", name) + ",outcome=\"ok\"");
    auto& failures = registry.get_counter("inflow_serve_requests_total", "Inference requests by outcome.",
                                          metrics::label("model", name) + ",outcome=\"error\"");
    if (action.empty() && r.method == "GET") {
      nlohmann::json meta{{"name", name}, {"versions", {model.meta().version}}, {"platform", "xgboost"},
                          {"inputs", {{{"name", "input-0"}, {"datatype", "FP32"}, {"shape", {-1, model.width()}}}}},
                          {"outputs", {{{"name", "output-0"}, {"datatype", "FP32"}, {"shape", {-1}}}}},
                          {"parameters", {{"features", model.meta().features}}}};
      return json(200, meta.dump());
    }
    if (action == "ready")
      return json(200, fmt::format(R"({{"name":"{}","ready":true}})", name));
    if (action != "infer" || r.method != "POST")
      return error(405, "use POST /v2/models/{name}/infer");
    std::string problem;
    auto req = decode_infer_request(r.body, problem);
    if (req && req->width != model.width())
      problem = fmt::format("model '{}' takes {} features per row, got {}", name, model.width(), req->width);
    if (!problem.empty()) {
      failures.inc();
      return error(400, problem);
    }
    try {
      auto scores = model.score(std::move(req->rows), req->n);
      requests.inc();
      return json(200, encode_infer_response(name, model.meta().version, req->id, scores));
    } catch (const std::exception& e) {
      failures.inc();
      return error(500, e.what());
    }
  }
};

model_server::model_server(const std::vector<served_model>& models, const serve_options& options)
  : impl_(new impl) {
  for (const auto& m : models) {
    try {
      impl_->models[m.name] = std::make_unique<batching_model>(m.name, m.path, options, impl_->registry);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("model {}: {}", m.name, e.what()));
    }
  }
  impl_->token = options.token;
  http::server_limits limits;
  limits.max_body_bytes = options.max_request_bytes;
  limits.request_timeout_ms = options.request_timeout_ms;
  impl_->server = std::make_unique<http::server>(
    options.host, options.port, [this](const http::request& r) { return impl_->handle(r); }, limits);
}

model_server::~model_server() = default;

uint16_t model_server::port() const {
  return impl_->server->port();
}

} // namespace inflow::serve
