#pragma once
// Mapping decoded fields to a model's input, as the config declares.
//
// Models that score feature rows (classification, regression) take a list of
// features, each one of:
//   `amount`                   a number or boolean field (true = 1)
//   `channel == online`        1 when the field equals the literal, else 0
//   `amount / amount_avg_30d`  a ratio of two number fields (0 when dividing by 0)
// Models that take text (embedding, text_generation) take one template, e.g.
//   `{subject}: {body}`        fields in braces are replaced by their values
// Every record also needs its identity: the id and key fields (`id` and
// `card_id` unless the pipeline's source says otherwise), copied to outputs.

#include "events/decoder.hpp"

#include <optional>
#include <string>
#include <vector>

namespace inflow::events {

struct record_identity {
  std::string id;
  std::string key;
};

struct identity_fields {
  std::string id = "id";
  std::string key = "card_id";
};

class feature_map {
public:
  /// Feature rows. Throws std::invalid_argument naming the bad expression (config time only).
  explicit feature_map(const std::vector<std::string>& expressions, identity_fields ids = {});
  /// A text template. Throws std::invalid_argument when it is malformed.
  static feature_map text(const std::string& text_template, identity_fields ids = {});

  /// The top-level fields a decoder must extract: identity fields first.
  const std::vector<std::string>& fields() const { return fields_; }
  bool is_text() const { return !pieces_.empty(); }
  /// Features per row; 0 for a text template.
  size_t size() const { return features_.size(); }

  /// An absent (or null) feature field is NaN in the row, for a model that handles missing
  /// values (XGBoost), instead of making the record a dead letter (`models.*.on_missing: nan`).
  void allow_missing(bool allow) { allow_missing_ = allow; }

  /// Writes size() floats to `row` and fills `identity`, or says what is wrong.
  std::optional<decode_failure> extract(std::vector<field_value>& values, float* row,
                                        record_identity& identity) const;
  /// Renders the template into `text` and fills `identity`, or says what is wrong.
  std::optional<decode_failure> extract_text(std::vector<field_value>& values, std::string& text,
                                             record_identity& identity) const;

private:
  feature_map() = default;
  enum class kind : uint8_t { field, equals, ratio };
  struct feature {
    std::string expression;
    kind op;
    size_t lhs;
    size_t rhs = 0;
    std::string literal;
    std::optional<double> number; ///< the literal read as a number, when it starts with one
  };
  struct piece {
    std::string literal; ///< text before the field
    size_t field;        ///< npos: literal only
  };
  size_t field_index(const std::string& name);
  std::optional<decode_failure> read_identity(std::vector<field_value>& values, record_identity& identity) const;

  std::vector<std::string> fields_; ///< the id field first, then the key field unless the same
  size_t key_field_ = 1;
  bool allow_missing_ = false;
  std::vector<feature> features_;
  std::vector<piece> pieces_;
};

} // namespace inflow::events
