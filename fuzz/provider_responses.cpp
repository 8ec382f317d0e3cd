// The response parsers of every remote provider (OpenAI, Azure OpenAI, Bedrock, SageMaker, Vertex
// AI, Google AI, Azure ML, KServe, HTTP JSON, Cohere): whatever a provider, or something posing as one,
// answers with a 2xx. The codecs are taken from the providers themselves: this target stands in
// for prepare_remote (the gateway actor, which links CAF) and keeps the codec it is handed.
#include "admin/metrics.hpp"
#include "gateways/common/remote_gateway.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace inflow::gateways {

namespace {
std::vector<std::shared_ptr<const codec>>& captured() {
  static std::vector<std::shared_ptr<const codec>> codecs;
  return codecs;
}
} // namespace

prepared_model prepare_remote(const config::model_config& cfg, metrics::registry&, std::shared_ptr<const codec> c,
                              const std::string&) {
  if (!c)
    throw std::runtime_error("no codec");
  captured().push_back(std::move(c));
  return {};
}

} // namespace inflow::gateways

namespace {

using namespace inflow;

/// Every codec the providers make from plausible configs: each task, each model family.
const std::vector<std::shared_ptr<const gateways::codec>>& codecs() {
  static const auto all = [] {
    metrics::registry metrics;
    for (const auto& [name, f] : gateways::registry::instance().all()) {
      if (name == "embedded-xgboost")
        continue;
      for (const auto& task : f.tasks)
        for (std::string model : {"", "amazon.titan-embed-text-v2:0", "anthropic.claude-3-haiku", "gpt-4o-mini",
                                  "text-embedding-3-small", "gemini-1.5-flash", "text-embedding-004"})
          for (std::string content_type : {"application/json", "text/csv"}) {
            auto cfg = config::model_defaults();
            cfg.name = "m";
            cfg.provider = name;
            cfg.task = task;
            cfg.endpoint = "https://127.0.0.1:1/v1/models/m:predict";
            const std::map<std::string, std::string> plausible{
              {"api_key", "key"}, {"deployment", "deployment"}, {"model", model}, {"region", "us-east-1"},
              {"aws_access_key_id", "AKIDEXAMPLE"}, {"aws_secret_access_key", "secret"}, {"content_type", content_type},
              {"request_template", R"({"id": {{id}}, "rows": {{rows}}})"}, {"response_pointer", "/scores"}};
            cfg.provider_options.path = "models.m";
            for (const auto& declared : f.options)
              if (auto value = plausible.find(declared.key); value != plausible.end())
                cfg.provider_options.values[declared.key] = {config::raw_value::kind::scalar, value->second};
            cfg.input = gateways::takes_text(task) ? std::vector<std::string>{"{text}"}
                                                   : std::vector<std::string>{"a", "b"};
            try {
              f.prepare(cfg, metrics);
            } catch (const std::exception&) {
              // this combination is not one the provider takes
            }
          }
    }
    return gateways::captured();
  }();
  return all;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (codecs().size() < 12) { // every provider, each task: a seam that stopped working must fail loudly
    std::fprintf(stderr, "provider_responses: only %zu codecs captured\n", codecs().size());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2)
    return 0;
  const auto& codec = *codecs()[data[0] % codecs().size()];
  http::result response;
  response.status = 200;
  response.headers["content-type"] = data[1] & 0x80 ? "text/csv" : "application/json";
  response.body.assign(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t n = 1 + (data[1] & 0x07);
  if (size_t most = codec.max_inputs_per_call()) // as the gateway batches: never more than an API takes
    n = std::min(n, most);
  std::string error;
  if (auto out = codec.parse(response, n, error)) {
    // What the gateway relies on: one result per input.
    const bool scored = out->texts.empty() ? out->values.size() == n * out->width : out->texts.size() == n;
    if (!scored)
      __builtin_trap();
  }
  return 0;
}
