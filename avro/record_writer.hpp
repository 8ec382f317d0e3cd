#pragma once
// Alerts and results as Avro in Confluent's wire format (`output_format: avro`): their schema
// registered once, at start, under the topic's subject; each record converted from the JSON the
// pipeline makes of it, so the two formats always carry the same fields.

#include "avro/registry.hpp"

#include <memory>
#include <string>

namespace inflow::avro {

class json_writer {
public:
  /// Registers `schema_json` under `subject`; throws registry_error, or std::runtime_error for a
  /// schema avro-c does not take.
  json_writer(const registry& r, const std::string& subject, const std::string& schema_json);
  ~json_writer();
  /// The record in Confluent's framing. Throws std::runtime_error when the JSON does not fit.
  std::string encode(const std::string& json) const;
  int id() const { return id_; }

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  int id_ = 0;
};

/// The schema of a pipeline's alerts: their id and key fields are named as the pipeline says.
std::string alert_schema(const std::string& id_as, const std::string& key_as);
/// The schema of a pipeline's results, by its model's task (a score, an embedding or a text).
std::string result_schema(const std::string& task);

} // namespace inflow::avro
