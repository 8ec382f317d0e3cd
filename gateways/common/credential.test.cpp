// Where a credential comes from, and the errors that say what to set. The token services
// themselves are exercised over HTTP in tests/integration/test_credentials.py.

#include "gateways/common/aws.hpp"
#include "gateways/common/credential.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>

using namespace inflow;
using namespace inflow::gateways;

namespace {

config::model_config model(const std::string& provider) {
  auto cfg = config::model_defaults();
  cfg.name = "m";
  cfg.provider = provider;
  return cfg;
}

credential_options with_auth(const std::string& auth) {
  credential_options o;
  o.auth = auth;
  return o;
}

/// Sets an environment variable for one test, restoring it after.
struct scoped_env {
  std::string name;
  std::optional<std::string> before;
  scoped_env(std::string n, const char* value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str()))
      before = v;
    value ? setenv(name.c_str(), value, 1) : unsetenv(name.c_str());
  }
  ~scoped_env() { before ? setenv(name.c_str(), before->c_str(), 1) : unsetenv(name.c_str()); }
};

} // namespace

TEST_CASE("an api key is the default credential; a missing one says what to set") {
  credential_options key_given;
  key_given.api_key = "sk-1";
  auto key = make_credential(model("openai"), key_given, std::nullopt, true);
  CHECK(key->value() == "sk-1");
  CHECK_FALSE(key->is_access_token());
  CHECK_FALSE(key->refresh()); // nothing to read again
  CHECK_THROWS_WITH(make_credential(model("openai"), {}, std::nullopt, true), Catch::Contains("api_key_file"));
  CHECK(make_credential(model("kserve"), {}, "", false)->value().empty());
}

TEST_CASE("token sources are refused where the provider takes its own keys only, or without what they need") {
  CHECK_THROWS_WITH(make_credential(model("openai"), with_auth("google_metadata"), std::nullopt, true),
                    Catch::Contains("takes its own api keys only"));
  CHECK_THROWS_WITH(make_credential(model("kserve"), with_auth("azure_managed_identity"), "", false),
                    Catch::Contains("needs `token_scope:`"));
  scoped_env no_key("GOOGLE_APPLICATION_CREDENTIALS", nullptr);
  CHECK_THROWS_WITH(make_credential(model("vertex-ai"), with_auth("google_service_account"), "scope", true),
                    Catch::Contains("set `credentials_file:`"));
  scoped_env no_tenant("AZURE_TENANT_ID", nullptr);
  CHECK_THROWS_WITH(make_credential(model("azure-ml"), with_auth("azure_client_credentials"), "scope", true),
                    Catch::Contains("needs tenant_id, client_id and client_secret"));
}

TEST_CASE("a value is fetched again ahead of its expiry") {
  std::atomic<int> fetches{0};
  using clock = std::chrono::system_clock;
  refreshing<int> value("test value", [&] {
    int n = ++fetches;
    return refreshing<int>::fetched{n, clock::now() + std::chrono::milliseconds(400)}; // refreshed at 300 ms
  });
  CHECK(value.value() == 1);
  for (int i = 0; i < 100 && fetches < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(fetches >= 3);
  CHECK(value.value() >= 2);
}

TEST_CASE("AWS credentials: the model's keys, then the environment, then a profile of the shared files") {
  scoped_env a("AWS_ACCESS_KEY_ID", nullptr), b("AWS_SECRET_ACCESS_KEY", nullptr), c("AWS_PROFILE", nullptr),
    d("AWS_WEB_IDENTITY_TOKEN_FILE", nullptr), e("AWS_CONTAINER_CREDENTIALS_FULL_URI", nullptr),
    f("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", nullptr), g("AWS_EC2_METADATA_DISABLED", "true"),
    h("AWS_CONFIG_FILE", "/nonexistent/config");
  const std::string path = "credential_test_aws_credentials";
  std::ofstream(path) << "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n"
                         "[other]\naws_access_key_id=AKIDOTHER\naws_secret_access_key=s2\naws_session_token = t2\n";
  scoped_env file("AWS_SHARED_CREDENTIALS_FILE", path.c_str());

  aws::options cfg;
  CHECK(aws::credential_chain("m", cfg, "eu-west-1").current().access_key_id == "AKIDDEFAULT");
  cfg.aws_profile = "other";
  aws::credential_chain other("m", cfg, "eu-west-1");
  CHECK(other.current().session_token == "t2");
  CHECK(other.source().find("profile other") != std::string::npos);
  {
    scoped_env env_key("AWS_ACCESS_KEY_ID", "AKIDENV"), env_secret("AWS_SECRET_ACCESS_KEY", "s3");
    CHECK(aws::credential_chain("m", cfg, "eu-west-1").current().access_key_id == "AKIDENV");
    cfg.aws_access_key_id = "AKIDMODEL";
    cfg.aws_secret_access_key = "s4";
    CHECK(aws::credential_chain("m", cfg, "eu-west-1").current().access_key_id == "AKIDMODEL");
    cfg.aws_secret_access_key.clear();
    CHECK_THROWS_WITH(aws::credential_chain("m", cfg, "eu-west-1"), Catch::Contains("set both"));
  }
  aws::options missing;
  missing.aws_profile = "nope";
  CHECK_THROWS_WITH(aws::credential_chain("m", missing, "eu-west-1"), Catch::Contains("AWS profile nope has no credentials"));
  std::remove(path.c_str());
  CHECK_THROWS_WITH(aws::credential_chain("m", aws::options{}, "eu-west-1"), Catch::Contains("no AWS credentials"));
}
