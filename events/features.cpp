#include "events/features.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <charconv>
#include <limits>
#include <stdexcept>

namespace inflow::events {

namespace {

constexpr size_t id_field = 0;

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return std::string(s);
}

bool is_identifier(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

const char* kind_name(const field_value& v) {
  switch (v.index()) {
    case 0: return "null";
    case 1: return "number";
    case 2: return "boolean";
    case 3: return "string";
    case 5: return "number";
    default: return std::get<other_value>(v).kind.data();
  }
}

} // namespace

feature_map feature_map::text(const std::string& text_template, identity_fields ids) {
  feature_map m;
  m.fields_ = {ids.id};
  m.key_field_ = m.field_index(ids.key); // the id's own when both name one field
  size_t pos = 0;
  std::string literal;
  while (pos < text_template.size()) {
    auto open = text_template.find('{', pos);
    if (open == std::string::npos) {
      literal += text_template.substr(pos);
      break;
    }
    auto close = text_template.find('}', open);
    if (close == std::string::npos)
      throw std::invalid_argument(fmt::format("text template '{}': '{{' without '}}'", text_template));
    literal += text_template.substr(pos, open - pos);
    auto name = trim(std::string_view(text_template).substr(open + 1, close - open - 1));
    if (!is_identifier(name))
      throw std::invalid_argument(fmt::format("text template '{}': '{{{}}}' is not a field name", text_template, name));
    m.pieces_.push_back({std::move(literal), m.field_index(name)});
    literal.clear();
    pos = close + 1;
  }
  if (m.pieces_.empty())
    throw std::invalid_argument(
      fmt::format("text template '{}' names no field; write e.g. '{{subject}}: {{body}}'", text_template));
  m.pieces_.push_back({std::move(literal), std::string::npos});
  return m;
}

feature_map::feature_map(const std::vector<std::string>& expressions, identity_fields ids) {
  fields_ = {ids.id};
  key_field_ = field_index(ids.key); // the id's own when both name one field
  for (const auto& raw : expressions) {
    feature f{trim(raw), kind::field, 0};
    const auto& e = f.expression;
    std::string lhs = e, rhs;
    if (auto eq = e.find("=="); eq != std::string::npos) {
      f.op = kind::equals;
      lhs = trim(std::string_view(e).substr(0, eq));
      f.literal = trim(std::string_view(e).substr(eq + 2));
      if (f.literal.size() >= 2 && (f.literal.front() == '\'' || f.literal.front() == '"') &&
          f.literal.back() == f.literal.front())
        f.literal = f.literal.substr(1, f.literal.size() - 2);
      if (f.literal.empty())
        throw std::invalid_argument(fmt::format("feature '{}': nothing to compare with", e));
      double number = 0;
      if (std::from_chars(f.literal.data(), f.literal.data() + f.literal.size(), number).ec == std::errc{})
        f.number = number;
    } else if (auto slash = e.find('/'); slash != std::string::npos) {
      f.op = kind::ratio;
      lhs = trim(std::string_view(e).substr(0, slash));
      rhs = trim(std::string_view(e).substr(slash + 1));
      if (!is_identifier(rhs))
        throw std::invalid_argument(fmt::format("feature '{}': '{}' is not a field name", e, rhs));
      f.rhs = field_index(rhs);
    }
    if (!is_identifier(lhs))
      throw std::invalid_argument(
        fmt::format("feature '{}': expected `field`, `field == value` or `field / field`", e));
    f.lhs = field_index(lhs);
    features_.push_back(std::move(f));
  }
  if (features_.empty())
    throw std::invalid_argument("a model needs at least one input feature");
}

size_t feature_map::field_index(const std::string& name) {
  auto it = std::find(fields_.begin(), fields_.end(), name);
  if (it != fields_.end())
    return static_cast<size_t>(it - fields_.begin());
  fields_.push_back(name);
  return fields_.size() - 1;
}

namespace {

std::optional<std::string> as_text(const field_value& v) {
  if (auto s = std::get_if<std::string>(&v))
    return *s;
  if (auto d = std::get_if<double>(&v)) {
    // Whole numbers an int64 holds print without a fraction; the range check comes first
    // because casting a larger double to an integer is undefined behaviour.
    if (std::abs(*d) < 0x1p63 && *d == std::trunc(*d))
      return std::to_string(static_cast<int64_t>(*d));
    return fmt::format("{}", *d);
  }
  if (auto b = std::get_if<bool>(&v))
    return std::string(*b ? "true" : "false");
  if (auto big = std::get_if<big_integer>(&v))
    return big->text;
  return std::nullopt;
}

} // namespace

std::optional<decode_failure> feature_map::read_identity(std::vector<field_value>& values,
                                                         record_identity& identity) const {
  for (size_t i : {id_field, key_field_}) {
    auto& v = values[i];
    if (std::holds_alternative<std::monostate>(v))
      return decode_failure{record_error::missing_field, fmt::format("missing field '{}'", fields_[i])};
    if (!std::holds_alternative<std::string>(v) && !std::holds_alternative<double>(v) &&
        !std::holds_alternative<big_integer>(v))
      return decode_failure{record_error::wrong_type, fmt::format("field '{}' must be a string or number, got {}",
                                                                  fields_[i], kind_name(v))};
  }
  identity.id = *as_text(values[id_field]);
  identity.key = *as_text(values[key_field_]);
  return std::nullopt;
}

std::optional<decode_failure> feature_map::extract_text(std::vector<field_value>& values, std::string& text,
                                                        record_identity& identity) const {
  if (auto err = read_identity(values, identity))
    return err;
  text.clear();
  for (const auto& p : pieces_) {
    text += p.literal;
    if (p.field == std::string::npos)
      continue;
    const auto& v = values[p.field];
    if (std::holds_alternative<std::monostate>(v))
      return decode_failure{record_error::missing_field, fmt::format("missing field '{}'", fields_[p.field])};
    auto rendered = as_text(v);
    if (!rendered)
      return decode_failure{record_error::wrong_type, fmt::format("field '{}' must be a string, number or boolean, "
                                                                  "got {}", fields_[p.field], kind_name(v))};
    text += *rendered;
  }
  return std::nullopt;
}

std::optional<decode_failure> feature_map::extract(std::vector<field_value>& values, float* row,
                                                   record_identity& identity) const {
  auto missing = [&](size_t i) {
    return decode_failure{record_error::missing_field, fmt::format("missing field '{}'", fields_[i])};
  };
  auto wrong = [&](size_t i, const char* expected) {
    return decode_failure{record_error::wrong_type, fmt::format("field '{}' must be {}, got {}", fields_[i],
                                                                expected, kind_name(values[i]))};
  };
  if (auto err = read_identity(values, identity))
    return err;

  auto number = [&](size_t i, double& out) -> std::optional<decode_failure> {
    const auto& v = values[i];
    if (auto d = std::get_if<double>(&v))
      out = *d;
    else if (auto big = std::get_if<big_integer>(&v))
      out = big->value;
    else if (auto b = std::get_if<bool>(&v))
      out = *b ? 1.0 : 0.0;
    else if (std::holds_alternative<std::monostate>(v) && allow_missing_)
      out = std::numeric_limits<double>::quiet_NaN();
    else if (std::holds_alternative<std::monostate>(v))
      return missing(i);
    else
      return wrong(i, "a number or boolean");
    return std::nullopt;
  };
  for (size_t k = 0; k < features_.size(); ++k) {
    const auto& f = features_[k];
    double a = 0, b = 0;
    switch (f.op) {
      case kind::field:
        if (auto err = number(f.lhs, a))
          return err;
        row[k] = static_cast<float>(a);
        break;
      case kind::ratio:
        if (auto err = number(f.lhs, a))
          return err;
        if (auto err = number(f.rhs, b))
          return err;
        row[k] = b == 0 ? 0.0f : static_cast<float>(a / b); // NaN stays NaN
        break;
      case kind::equals: {
        const auto& v = values[f.lhs];
        if (auto s = std::get_if<std::string>(&v)) {
          row[k] = *s == f.literal ? 1.0f : 0.0f;
        } else if (auto d = std::get_if<double>(&v)) {
          row[k] = f.number == *d ? 1.0f : 0.0f;
        } else if (auto big = std::get_if<big_integer>(&v)) {
          row[k] = big->text == f.literal ? 1.0f : 0.0f;
        } else if (auto bo = std::get_if<bool>(&v)) {
          row[k] = (*bo ? "true" : "false") == f.literal ? 1.0f : 0.0f;
        } else if (std::holds_alternative<std::monostate>(v) && allow_missing_) {
          row[k] = std::numeric_limits<float>::quiet_NaN();
        } else if (std::holds_alternative<std::monostate>(v)) {
          return missing(f.lhs);
        } else {
          return wrong(f.lhs, "a string, number or boolean");
        }
        break;
      }
    }
  }
  return std::nullopt;
}

} // namespace inflow::events
