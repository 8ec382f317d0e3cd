#pragma once
// A client of a schema registry's Confluent-compatible REST API (Confluent Schema Registry,
// Apicurio's `/apis/ccompat/v7`, Karapace, Redpanda): the schema of an id, a subject's latest
// version, registering a schema. Blocking calls, made rarely: once per schema id a node meets.

#include <stdexcept>
#include <string>

namespace inflow::avro {

struct registry_error : std::runtime_error {
  registry_error(const std::string& what, bool not_found) : std::runtime_error(what), not_found(not_found) {}
  bool not_found; ///< the registry answered that it has no such schema or subject (404)
};

class registry {
public:
  /// `base_url`: e.g. http://registry:8081, or http://apicurio:8080/apis/ccompat/v7.
  explicit registry(std::string base_url, int timeout_ms = 5000);

  struct version {
    int id = 0;
    std::string schema; ///< the schema's JSON text
  };
  /// Throw registry_error.
  std::string schema(int id) const;
  version latest(const std::string& subject) const;
  /// Registers `schema` under `subject` (or finds it there) and returns its id.
  int register_schema(const std::string& subject, const std::string& schema) const;

  const std::string& url() const { return base_; }

private:
  std::string base_;
  int timeout_ms_;
};

} // namespace inflow::avro
