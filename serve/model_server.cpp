#include "serve/model_server.hpp"

#include "gateways/kserve/protocol.hpp"
#include "http/server.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <thread>

namespace inflow::serve {

using gateways::kserve::decode_infer_request;
using gateways::kserve::encode_infer_response;

namespace {

using clock = std::chrono::steady_clock;

/// Batches rows from concurrent requests into model calls; one worker thread.
class batching_model {
public:
  batching_model(std::string name, const std::string& path, const serve_options& options, metrics::registry& reg)
    : name_(std::move(name)), model_(path, options.threads), meta_(xgboost::read_meta(path)), options_(options),
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

  /// Blocks until the rows are scored. Throws what the model throws.
  std::vector<float> score(const std::vector<float>& rows, size_t n) {
    job j{&rows, n, {}};
    auto done = j.result.get_future();
    {
      std::lock_guard<std::mutex> guard(mutex_);
      jobs_.push_back(&j);
      pending_rows_ += n;
    }
    cv_.notify_one();
    return done.get();
  }

private:
  struct job {
    const std::vector<float>* rows;
    size_t n;
    std::promise<std::vector<float>> result;
  };

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_)
        return;
      // Wait a little for more rows, unless a batch is already full.
      auto deadline = clock::now() + std::chrono::milliseconds(options_.max_linger_ms);
      cv_.wait_until(lock, deadline, [this] { return stopping_ || pending_rows_ >= options_.max_batch; });
      std::vector<job*> batch;
      size_t rows = 0;
      while (!jobs_.empty() && (batch.empty() || rows + jobs_.front()->n <= options_.max_batch)) {
        rows += jobs_.front()->n;
        batch.push_back(jobs_.front());
        jobs_.pop_front();
      }
      pending_rows_ -= rows;
      lock.unlock();
      predict(batch, rows);
      lock.lock();
    }
  }

  void predict(const std::vector<job*>& batch, size_t rows) {
    std::vector<float> input;
    input.reserve(rows * width());
    for (auto* j : batch)
      input.insert(input.end(), j->rows->begin(), j->rows->end());
    auto started = clock::now();
    std::vector<float> scores;
    std::exception_ptr failure;
    try {
      scores = model_.predict(input.data(), rows);
      call_seconds_.observe(std::chrono::duration<double>(clock::now() - started).count());
      batch_size_.observe(static_cast<double>(rows));
    } catch (...) {
      failure = std::current_exception();
    }
    size_t next = 0;
    for (auto* j : batch) {
      // A job lives on its caller's stack, and the caller returns as soon as its result is set:
      // take the promise and the row count first, never touch the job after. (Reading j->n after
      // set_value read a returned frame: a garbage count, and the server died in memmove.)
      auto promise = std::move(j->result);
      const size_t n = j->n;
      if (failure)
        promise.set_exception(failure);
      else
        promise.set_value(std::vector<float>(scores.begin() + static_cast<std::ptrdiff_t>(next),
                                             scores.begin() + static_cast<std::ptrdiff_t>(next + n)));
      next += n;
    }
  }

  std::string name_;
  xgboost::booster model_;
  xgboost::model_meta meta_;
  serve_options options_;
  metrics::histogram& batch_size_;
  metrics::histogram& call_seconds_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<job*> jobs_;
  size_t pending_rows_ = 0;
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
      auto scores = model.score(req->rows, req->n);
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
