#include "gateways/common/aws.hpp"

#include "gateways/common/cloud_tokens.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <ctime>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

namespace inflow::gateways::aws {

const config::option_block<options>& option_block() {
  static const auto block =
    config::option_block<options>("models.*")
      .text("region", &options::region, "", "AWS region; empty takes it from the endpoint's host name.")
      .secret("aws_access_key_id", &options::aws_access_key_id,
              "Empty uses the AWS credential chain (docs/GATEWAYS.md).")
      .secret("aws_secret_access_key", &options::aws_secret_access_key, "Set with aws_access_key_id.")
      .secret("aws_session_token", &options::aws_session_token,
              "For temporary credentials given with aws_access_key_id.")
      .text("aws_profile", &options::aws_profile, "",
            "The profile in the shared AWS files; empty uses AWS_PROFILE, else default.");
  return block;
}

std::string region_of(const options& cfg, const std::string& endpoint, const std::string& service_prefix) {
  if (!cfg.region.empty())
    return cfg.region;
  auto host = http::parse_url(endpoint).host;
  auto at = host.find(service_prefix + ".");
  if (at != std::string::npos) {
    auto start = at + service_prefix.size() + 1;
    auto end = host.find('.', start);
    if (end != std::string::npos && end > start)
      return host.substr(start, end - start);
  }
  throw std::runtime_error(fmt::format("cannot tell the AWS region from {}: set `region:`", host));
}

void sign(http::call& c, const http::url& origin, const sigv4::credentials& creds, const std::string& region,
          const std::string& service) {
  auto date = sigv4::amz_date_now();
  sigv4::request r{c.method, c.target.substr(0, c.target.find('?')), {}, c.headers, c.body};
  r.headers.emplace_back("host", http::host_header(origin));
  r.headers.emplace_back("x-amz-date", date);
  if (!creds.session_token.empty())
    r.headers.emplace_back("x-amz-security-token", creds.session_token);
  auto s = sigv4::sign(r, creds, region, service, date);
  c.headers.emplace_back("x-amz-date", date);
  if (!creds.session_token.empty())
    c.headers.emplace_back("x-amz-security-token", creds.session_token);
  c.headers.emplace_back("Authorization", s.authorization);
}

namespace {

using clock = std::chrono::system_clock;
using fetched = refreshing<sigv4::credentials>::fetched;
using fetch_fn = refreshing<sigv4::credentials>::fetch_fn;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

http::client_options metadata_client() {
  http::client_options o;
  o.timeout_ms = 5000;
  o.max_response_bytes = 1 << 20;
  return o;
}

/// AWS_SHARED_CREDENTIALS_FILE or AWS_CONFIG_FILE, else ~/.aws/<name>.
std::string shared_file(const char* env_name, const char* name) {
  if (auto path = env(env_name); !path.empty())
    return path;
  auto home = env("HOME");
  return home.empty() ? "" : home + "/.aws/" + name;
}

std::string trim(std::string s) {
  auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

/// The `key = value` lines of `[section]` in an INI file; empty when the file or section is absent.
std::map<std::string, std::string> ini_section(const std::string& path, const std::string& section) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';')
      continue;
    if (line.front() == '[' && line.back() == ']') {
      inside = trim(line.substr(1, line.size() - 2)) == section;
    } else if (auto eq = line.find('='); inside && eq != std::string::npos) {
      out[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
  }
  return out;
}

/// 2026-12-01T18:30:00Z (fractions of a second ignored).
clock::time_point parse_time(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail())
    throw std::runtime_error(fmt::format("cannot read the expiration time '{}'", text));
  return clock::from_time_t(timegm(&tm));
}

std::string xml_text(const std::string& xml, const std::string& tag) {
  auto open = xml.find("<" + tag + ">");
  auto close = xml.find("</" + tag + ">");
  if (open == std::string::npos || close == std::string::npos || close < open)
    return {};
  open += tag.size() + 2;
  return xml.substr(open, close - open);
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error(fmt::format("{} {} cannot be read", what, path));
  std::stringstream text;
  text << in.rdbuf();
  return trim(text.str());
}

void expect_ok(const http::result& r, const std::string& where) {
  if (r.error != http::result::failure::none)
    throw std::runtime_error(fmt::format("{}: {}", where, r.message));
  if (r.status != 200)
    throw std::runtime_error(fmt::format("{} answered HTTP {}: {}", where, r.status, r.body.substr(0, 300)));
}

/// {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}: the container and instance endpoints' answer.
fetched read_json_credentials(const http::result& r, const std::string& where) {
  expect_ok(r, where);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("AccessKeyId") || !j.contains("SecretAccessKey"))
    throw std::runtime_error(fmt::format("{} answered without AccessKeyId and SecretAccessKey", where));
  fetched out{{j["AccessKeyId"].get<std::string>(), j["SecretAccessKey"].get<std::string>(), j.value("Token", "")}};
  if (j.contains("Expiration"))
    out.expires = parse_time(j["Expiration"].get<std::string>());
  return out;
}

fetch_fn web_identity(std::string token_file, std::string role_arn, std::string session, const std::string& region) {
  auto sts = env("AWS_ENDPOINT_URL_STS");
  if (sts.empty())
    sts = env("AWS_ENDPOINT_URL");
  if (sts.empty())
    sts = fmt::format("https://sts.{}.amazonaws.com/", region);
  if (session.empty())
    session = "inflow";
  return [=] {
    // The token file is rotated by the platform (EKS, say): read it at every exchange.
    auto form = cloud_tokens::form_encode({{"Action", "AssumeRoleWithWebIdentity"}, {"Version", "2011-06-15"},
                                           {"RoleArn", role_arn}, {"RoleSessionName", session},
                                           {"WebIdentityToken", read_file(token_file, "web identity token file")}});
    auto r = http::fetch(sts, {"POST", "", {{"Content-Type", "application/x-www-form-urlencoded"}}, form},
                         metadata_client());
    if (r.error == http::result::failure::none && r.status != 200)
      throw std::runtime_error(fmt::format("STS AssumeRoleWithWebIdentity at {} refused: HTTP {} {} {}", sts,
                                           r.status, xml_text(r.body, "Code"), xml_text(r.body, "Message")));
    expect_ok(r, "STS at " + sts);
    auto creds = xml_text(r.body, "Credentials");
    fetched out{{xml_text(creds, "AccessKeyId"), xml_text(creds, "SecretAccessKey"), xml_text(creds, "SessionToken")}};
    if (out.value.access_key_id.empty() || out.value.secret_access_key.empty())
      throw std::runtime_error("STS answered without Credentials");
    out.expires = parse_time(xml_text(creds, "Expiration"));
    return out;
  };
}

fetch_fn container() {
  auto url = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (auto relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); !relative.empty())
    url = "http://169.254.170.2" + relative;
  return [url] {
    http::call c{"GET", "", {}, ""};
    if (auto file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); !file.empty())
      c.headers.emplace_back("Authorization", read_file(file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
    else if (auto token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN"); !token.empty())
      c.headers.emplace_back("Authorization", token);
    return read_json_credentials(http::fetch(url, std::move(c), metadata_client()), "the container credentials endpoint");
  };
}

fetch_fn instance_metadata() {
  auto base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (base.empty())
    base = "http://169.254.169.254";
  while (base.back() == '/')
    base.pop_back();
  return [base] {
    const std::string where = "the EC2 instance metadata service at " + base;
    // IMDSv2: a session token first, then the instance role's name, then its credentials.
    auto session = http::fetch(base + "/latest/api/token",
                               {"PUT", "", {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}}, ""}, metadata_client());
    expect_ok(session, where);
    http::call get{"GET", "", {{"X-aws-ec2-metadata-token", session.body}}, ""};
    auto roles = http::fetch(base + "/latest/meta-data/iam/security-credentials/", get, metadata_client());
    expect_ok(roles, where);
    auto role = trim(roles.body.substr(0, roles.body.find('\n')));
    if (role.empty())
      throw std::runtime_error(where + ": the instance has no IAM role");
    return read_json_credentials(
      http::fetch(base + "/latest/meta-data/iam/security-credentials/" + role, get, metadata_client()), where);
  };
}

sigv4::credentials keys_of(const std::map<std::string, std::string>& section) {
  auto get = [&](const char* key) {
    auto it = section.find(key);
    return it == section.end() ? std::string() : it->second;
  };
  return {get("aws_access_key_id"), get("aws_secret_access_key"), get("aws_session_token")};
}

} // namespace

credential_chain::credential_chain(const std::string& model, const options& cfg, const std::string& region) {
  const char* what_to_set = "set the model's aws_access_key_id and aws_secret_access_key, AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY, a web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) or "
                            "a profile (aws_profile)";
  fetch_fn fetch;
  auto fixed = [](sigv4::credentials c) { return [c] { return fetched{c}; }; };
  const auto credentials_file = shared_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  const auto config_file = shared_file("AWS_CONFIG_FILE", "config");
  const auto chosen_profile = cfg.aws_profile.empty() ? env("AWS_PROFILE") : cfg.aws_profile;
  const auto profile = chosen_profile.empty() ? std::string("default") : chosen_profile;
  auto in_credentials = ini_section(credentials_file, profile);
  auto in_config = ini_section(config_file, profile == "default" ? profile : "profile " + profile);
  if (!cfg.aws_access_key_id.empty() || !cfg.aws_secret_access_key.empty()) {
    if (cfg.aws_access_key_id.empty() || cfg.aws_secret_access_key.empty())
      throw std::runtime_error("set both aws_access_key_id and aws_secret_access_key, or neither");
    source_ = "the model's aws_access_key_id";
    fetch = fixed({cfg.aws_access_key_id, cfg.aws_secret_access_key, cfg.aws_session_token});
  } else if (!env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty()) {
    source_ = "AWS_ACCESS_KEY_ID";
    fetch = fixed({env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")});
  } else if (!env("AWS_WEB_IDENTITY_TOKEN_FILE").empty() && !env("AWS_ROLE_ARN").empty()) {
    source_ = "web identity (AWS_ROLE_ARN " + env("AWS_ROLE_ARN") + ")";
    fetch = web_identity(env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"), env("AWS_ROLE_SESSION_NAME"), region);
  } else if (in_credentials.count("aws_access_key_id") || in_config.count("aws_access_key_id")) {
    source_ = fmt::format("profile {} of {}", profile,
                          in_credentials.count("aws_access_key_id") ? credentials_file : config_file);
    fetch = [=] { // read again when AWS refuses what it held: another tool may have renewed it
      auto creds = keys_of(ini_section(credentials_file, profile));
      if (creds.access_key_id.empty())
        creds = keys_of(ini_section(config_file, profile == "default" ? profile : "profile " + profile));
      if (creds.access_key_id.empty() || creds.secret_access_key.empty())
        throw std::runtime_error(fmt::format("profile {} has no aws_access_key_id and aws_secret_access_key", profile));
      return fetched{creds};
    };
  } else if (in_config.count("role_arn") && in_config.count("web_identity_token_file")) {
    source_ = fmt::format("profile {} of {} (web identity role {})", profile, config_file, in_config["role_arn"]);
    fetch = web_identity(in_config["web_identity_token_file"], in_config["role_arn"], in_config["role_session_name"],
                         region);
  } else if (!chosen_profile.empty()) {
    throw std::runtime_error(fmt::format("AWS profile {} has no credentials in {} or {}", profile, credentials_file,
                                         config_file));
  } else if (!env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty() ||
             !env("AWS_CONTAINER_CREDENTIALS_FULL_URI").empty()) {
    source_ = "the container credentials endpoint";
    fetch = container();
  } else if (env("AWS_EC2_METADATA_DISABLED") != "true") {
    source_ = "the EC2 instance metadata service";
    fetch = instance_metadata();
  } else {
    throw std::runtime_error(std::string("no AWS credentials: ") + what_to_set);
  }
  try {
    auto what = fmt::format("model {}: AWS credentials from {}", model, source_);
    creds_ = std::make_unique<refreshing<sigv4::credentials>>(what, std::move(fetch));
    spdlog::info("{}", what);
  } catch (const std::exception& e) {
    if (source_ == "the EC2 instance metadata service") // the last resort, not something the user chose
      throw std::runtime_error(
        fmt::format("no AWS credentials: {}; the EC2 instance metadata service, tried last, gave none ({})",
                    what_to_set, e.what()));
    throw std::runtime_error(fmt::format("cannot get AWS credentials from {}: {}", source_, e.what()));
  }
}

} // namespace inflow::gateways::aws
