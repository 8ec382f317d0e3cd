#include "avro/registry.hpp"

#include "http/client.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace inflow::avro {

namespace {

/// The answer's JSON, or registry_error saying what went wrong.
nlohmann::json call(const std::string& base, int timeout_ms, const std::string& method, const std::string& path,
                    const std::string& body = {}) {
  http::call c{method, {}, {{"Accept", "application/vnd.schemaregistry.v1+json, application/json"}}, body};
  if (!body.empty())
    c.headers.push_back({"Content-Type", "application/vnd.schemaregistry.v1+json"});
  http::client_options options;
  options.timeout_ms = timeout_ms;
  options.max_response_bytes = 4 << 20;
  auto r = http::fetch(base + path, std::move(c), options);
  if (r.error != http::result::failure::none)
    throw registry_error(fmt::format("schema registry {}: {} {}: {}", base, method, path, r.message), false);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || j.is_discarded())
    throw registry_error(fmt::format("schema registry {}: {} {}: HTTP {}: {}", base, method, path, r.status,
                                     r.body.substr(0, 300)),
                         r.status == 404);
  return j;
}

std::string text_of(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string())
    throw registry_error(fmt::format("schema registry: {} has no `{}`", where, key), false);
  return j[key].get<std::string>();
}

} // namespace

registry::registry(std::string base_url, int timeout_ms) : base_(std::move(base_url)), timeout_ms_(timeout_ms) {
  while (!base_.empty() && base_.back() == '/')
    base_.pop_back();
}

std::string registry::schema(int id) const {
  return text_of(call(base_, timeout_ms_, "GET", fmt::format("/schemas/ids/{}", id)), "schema",
                 fmt::format("schema {}", id));
}

registry::version registry::latest(const std::string& subject) const {
  auto j = call(base_, timeout_ms_, "GET", fmt::format("/subjects/{}/versions/latest", subject));
  if (!j.contains("id") || !j["id"].is_number_integer())
    throw registry_error(fmt::format("schema registry: subject {} has no id", subject), false);
  return {j["id"].get<int>(), text_of(j, "schema", "subject " + subject)};
}

int registry::register_schema(const std::string& subject, const std::string& schema) const {
  auto j = call(base_, timeout_ms_, "POST", fmt::format("/subjects/{}/versions", subject),
                nlohmann::json{{"schema", schema}}.dump());
  if (!j.contains("id") || !j["id"].is_number_integer())
    throw registry_error(fmt::format("schema registry: registering under {} gave no id", subject), false);
  return j["id"].get<int>();
}

} // namespace inflow::avro
