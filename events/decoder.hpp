#pragma once
// Decoding raw Kafka record values (JSON or msgpack) into the fields a pipeline
// needs: top-level ones, or nested ones by a dotted path (`payment.amount`). A record that cannot be decoded yields a
// record_error and a message; it never throws.

#include "config/record_format.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace inflow::events {

/// Why a record could not become a model input. Every value ends up in the
/// dead-letter header `__connect.errors.exception.class.name` via to_string().
enum class record_error : uint8_t {
  empty = 1,       ///< zero-length value
  oversized,       ///< larger than the pipeline's max_record_bytes
  invalid_json,    ///< not well-formed JSON (includes truncated input)
  invalid_msgpack, ///< not well-formed msgpack, or trailing bytes
  too_deep,        ///< nesting deeper than allowed
  not_an_object,   ///< the top level is not a JSON object / msgpack map
  missing_field,   ///< a field the pipeline needs is absent or null
  wrong_type,      ///< a field has a type the pipeline cannot use
  model_failed,    ///< the model gateway could not score the record
  output_refused,  ///< Kafka refused the record's alert or result for good (too large, topic closed to us)
  invalid_avro,    ///< not Confluent-framed Avro, an unknown schema id, or a schema that cannot be read as expected
  schema_unavailable, ///< the schema registry could not be reached for the record's schema
};

std::string_view to_string(record_error e);

struct decode_failure {
  record_error code;
  std::string message;
};

/// A decoded top-level field: absent, a number, a boolean, a string, or a
/// composite/null value we name by its kind for the error message.
struct other_value {
  std::string_view kind;
};
/// An integer a double cannot hold exactly (beyond ±2^53): its decimal text keeps ids
/// distinct; as a feature it is `value`, rounded as any number is.
struct big_integer {
  std::string text;
  double value;
};
using field_value = std::variant<std::monostate, double, bool, std::string, other_value, big_integer>;

using config::decoder_limits;
using config::wire_format;

/// A record format parsed outside events/ (Avro with a schema registry: avro/), one per decoder.
class format_reader {
public:
  virtual ~format_reader() = default;
  /// Fills values[i] with the field at paths[i] (a top-level name, or a dotted path's parts),
  /// left absent when the record has none. Returns the failure, if any.
  virtual std::optional<decode_failure> read(std::string_view bytes, const std::vector<std::vector<std::string>>& paths,
                                             std::vector<field_value>& values) = 0;
};

/// Owned by one actor at a time: it reuses parser buffers between records.
class decoder {
public:
  /// `reader` parses wire_format::avro (and is required for it).
  decoder(wire_format format, std::vector<std::string> fields, decoder_limits limits,
          std::unique_ptr<format_reader> reader = nullptr);
  ~decoder();
  decoder(decoder&&) noexcept;

  /// Resizes `values` to fields().size() and fills it. Returns the failure, if any.
  std::optional<decode_failure> decode(std::string_view bytes, std::vector<field_value>& values);

  const std::vector<std::string>& fields() const { return fields_; }

private:
  struct json_parser;
  int index_of(std::string_view key) const;
  std::optional<decode_failure> decode_json(std::string_view bytes, std::vector<field_value>& values);
  std::optional<decode_failure> decode_msgpack(std::string_view bytes, std::vector<field_value>& values);

  wire_format format_;
  std::vector<std::string> fields_;
  std::vector<std::vector<std::string>> paths_; ///< per field: its name's parts (`payment.amount`: 2)
  std::vector<uint64_t> heads_;                 ///< per field: its name's first 8 bytes (index_of)
  decoder_limits limits_;
  std::unique_ptr<json_parser> json_;
  std::unique_ptr<format_reader> reader_;
  std::vector<bool> set_; ///< per field: whether this record set it
};

} // namespace inflow::events
