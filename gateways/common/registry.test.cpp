// Providers own their options: each declares its keys, reads them from the model's
// section, and refuses the ones it does not declare, with path and line.

#include "gateways/common/registry.hpp"
#include "admin/metrics.hpp"
#include "xgboost/trainer.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace inflow;

namespace {

const char* with_model = R"(
kafka:
  bootstrap.servers: 127.0.0.1:9092
  group.id: g
models:
  m:
    task: classification
    provider: kserve
    endpoint: http://127.0.0.1:1/v2/models/m/infer
    input: [a, b]
)";

std::vector<config::config_error> prepare(const std::vector<std::string>& overrides) {
  auto loaded = config::load_text(std::string(with_model) + "node: { roles: [gateway] }\n", overrides);
  REQUIRE(loaded.config);
  metrics::registry metrics;
  std::map<std::string, gateways::prepared_model> models;
  return gateways::prepare_models(*loaded.config, metrics, models);
}

bool has_error(const std::vector<config::config_error>& errors, const std::string& path, const std::string& fragment) {
  for (const auto& e : errors)
    if (e.path == path && e.message.find(fragment) != std::string::npos)
      return true;
  return false;
}

} // namespace

TEST_CASE("a provider refuses keys it does not declare, naming path and line") {
  CHECK(prepare({}).empty());
  auto errors = prepare({"models.m.request_template={}", "models.m.path=m.json"});
  CHECK(has_error(errors, "models.m.request_template", "unknown key 'request_template'"));
  CHECK(has_error(errors, "models.m.path", "unknown key 'path'"));
  CHECK(errors.size() == 2);

  auto loaded = config::load_text(std::string(with_model) + "    deployment: blue\nnode: { roles: [gateway] }\n");
  REQUIRE(loaded.config);
  metrics::registry metrics;
  std::map<std::string, gateways::prepared_model> models;
  auto in_file = gateways::prepare_models(*loaded.config, metrics, models);
  REQUIRE(in_file.size() == 1);
  CHECK(in_file[0].line == 11);
  CHECK(config::format_error("f.yaml", in_file[0]).rfind("f.yaml:11: models.m.deployment: unknown key 'deployment'", 0) == 0);
}

TEST_CASE("a provider's own options are read, checked and defaulted from its declarations") {
  CHECK(has_error(prepare({"models.m.auth=kerberos"}), "models.m.auth",
                  "unknown auth 'kerberos' (expected api_key, google_service_account"));
  CHECK(has_error(prepare({"models.m.provider=sagemaker", "models.m.content_type=text/xml"}), "models.m.content_type",
                  "expected text/csv or application/json"));
  // bedrock and sagemaker take AWS credentials only: `auth:` means nothing to them.
  CHECK(has_error(prepare({"models.m.provider=sagemaker", "models.m.auth=azure_managed_identity"}), "models.m.auth",
                  "unknown key 'auth'"));
  CHECK(has_error(prepare({"models.m.provider=http"}), "models.m.request_template", "required key is missing"));
}

TEST_CASE("a model's calls carry trace context unless it scores in-process with no provider to fall back on") {
  auto dir = std::filesystem::temp_directory_path() / "inflow-registry-test";
  xgboost::train_options opt;
  opt.out_dir = dir.string();
  opt.rows = 2'000;
  opt.rounds = 2;
  auto model_path = xgboost::train_fraud_model(opt).model_path;
  auto yaml = "kafka: { bootstrap.servers: 127.0.0.1:9092, group.id: g }\n"
              "node: { roles: [gateway] }\n"
              "models:\n"
              "  local: { task: classification, provider: embedded-xgboost, path: " + model_path + " }\n"
              "  remote: { task: classification, provider: kserve, endpoint: http://127.0.0.1:1/v2/models/m/infer,\n"
              "            input: [" + fmt::format("{}", fmt::join(xgboost::fraud_features(), ", ")) + "] }\n";
  auto carries_trace = [&](const std::vector<std::string>& overrides) {
    auto loaded = config::load_text(yaml, overrides);
    REQUIRE(loaded.config);
    metrics::registry metrics;
    std::map<std::string, gateways::prepared_model> models;
    REQUIRE(gateways::prepare_models(*loaded.config, metrics, models).empty());
    return std::pair{models.at("local").info.carries_trace, models.at("remote").info.carries_trace};
  };
  CHECK(carries_trace({}) == std::pair{false, true});
  CHECK(carries_trace({"models.local.fallback=remote"}) == std::pair{true, true});
  std::filesystem::remove_all(dir);
}

TEST_CASE("docs/CONFIGURATION.md carries the reference of every declared option, each provider's included") {
  std::ifstream in(INFLOW_SOURCE_DIR "/docs/CONFIGURATION.md");
  REQUIRE(in);
  std::stringstream doc;
  doc << in.rdbuf();
  auto reference = config::reference_markdown(gateways::provider_options());
  CHECK(doc.str().find(reference) != std::string::npos);
  for (const auto& [name, f] : gateways::registry::instance().all())
    CHECK(reference.find("### `provider: " + name + "`") != std::string::npos);
}

TEST_CASE("no code outside a provider's folder names the provider") {
  // Adding a provider touches its folder only: the core, the cluster and the data path know
  // providers through the registry. The commands of app/ that start a model server or train a
  // model for the demo name the providers they wire, as a user's config would.
  namespace fs = std::filesystem;
  const fs::path root = INFLOW_SOURCE_DIR;
  for (const auto& [name, f] : gateways::registry::instance().all()) {
    if (name == "http") // also the URL scheme every HTTP client and server names
      continue;
    for (const auto& file : fs::recursive_directory_iterator(root)) {
      auto path = file.path();
      auto relative = fs::relative(path, root).string();
      auto ext = path.extension();
      bool source = ext == ".cpp" || ext == ".hpp";
      bool exempt = relative.rfind("gateways/", 0) == 0 && relative.find("/common/") == std::string::npos;
      if (!source || exempt || relative.rfind("build", 0) == 0 || relative.rfind("app/", 0) == 0 ||
          relative.find(".test.cpp") != std::string::npos || relative.rfind("fuzz/", 0) == 0 ||
          relative.rfind("bench/", 0) == 0)
        continue;
      std::ifstream in(path);
      std::stringstream text;
      text << in.rdbuf();
      INFO(relative << " names provider " << name);
      CHECK(text.str().find('"' + name + '"') == std::string::npos);
    }
  }
}
