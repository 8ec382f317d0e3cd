#pragma once
// Mapping decoded fields to a model's input row, as the config declares.
//
// A feature is one of:
//   `amount`                   a number or boolean field (true = 1)
//   `channel == online`        1 when the field equals the literal, else 0
//   `amount / amount_avg_30d`  a ratio of two number fields (0 when dividing by 0)
// Every record also needs the string fields `id` and `card_id`, which alerts carry.

#include "events/decoder.hpp"

#include <optional>
#include <string>
#include <vector>

namespace inflow::events {

struct record_identity {
  std::string id;
  std::string card_id;
};

class feature_map {
public:
  /// Throws std::invalid_argument naming the bad expression (config time only).
  explicit feature_map(const std::vector<std::string>& expressions);

  /// The top-level fields a decoder must extract: identity fields first.
  const std::vector<std::string>& fields() const { return fields_; }
  size_t size() const { return features_.size(); }

  /// Writes size() floats to `row`, fills `identity`, or says what is wrong.
  std::optional<decode_failure> extract(std::vector<field_value>& values, float* row,
                                        record_identity& identity) const;

private:
  enum class kind : uint8_t { field, equals, ratio };
  struct feature {
    std::string expression;
    kind op;
    size_t lhs;
    size_t rhs = 0;
    std::string literal;
  };
  size_t field_index(const std::string& name);

  std::vector<std::string> fields_;
  std::vector<feature> features_;
};

} // namespace inflow::events
