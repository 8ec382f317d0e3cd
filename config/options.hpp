#pragma once
// An option is declared once, bound to the field it fills: key, type, default,
// bounds, unit, description and whether it is a secret. Reading, checking
// (unknown keys, bounds, choices, required keys) and the reference in
// docs/CONFIGURATION.md all come from that declaration.
//
// Blocks read a `raw_section`: the config file's map as written, with `${VAR}`
// already replaced and a line for every value. It holds no YAML, so a
// provider's folder declares and reads its own options without yaml-cpp.

#include <cstdint>
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace inflow::config {

struct config_error {
  std::string path; ///< e.g. models.fraud.batch.max_batch
  int line = 0;     ///< 1-based; 0 when the error has no place in the file
  std::string message;
};

struct raw_section;

/// One value of the file: a scalar, a list of scalars or a map.
struct raw_value {
  enum class kind { scalar, list, map, null };
  kind type = kind::null;
  std::string text;                         ///< scalar
  std::vector<std::string> items;           ///< list
  std::shared_ptr<const raw_section> map;   ///< map
  int line = 0;
};

/// A map of the file, e.g. `models.fraud`, as a block reads it.
struct raw_section {
  std::string path; ///< dotted, e.g. models.fraud
  int line = 0;
  std::map<std::string, raw_value> values;

  const raw_value* find(const std::string& key) const;
  /// A value given and not null.
  bool has(const std::string& key) const;
  /// The map under `key`; an empty one (same path rules) when absent.
  raw_section section(const std::string& key) const;
  std::string join(const std::string& key) const { return path.empty() ? key : path + "." + key; }
  int line_of(const std::string& key) const;
};

/// What the reference says of one option.
struct option {
  std::string section; ///< `models.*.batch`: `*` is any entry name
  std::string key;
  std::string type;    ///< string, integer, number, list, secret, topic, one of ..., host:port
  std::optional<std::string> default_value; ///< nullopt: required
  std::string description;
  std::string range;   ///< e.g. `1..100000 ms`; empty when any value of the type goes
  bool secret = false; ///< never printed
};

/// 1 to 249 letters, digits, '.', '_' or '-': a name Kafka takes for a topic.
bool is_topic_name(const std::string& name);
/// `[a, b]`, as a list's default is written.
std::vector<std::string> parse_list_literal(const std::string& text);

/// The markdown table of `options`, as docs/CONFIGURATION.md holds it.
std::string reference_table(const std::vector<option>& options);

/// The options of one section, bound to the fields of `T` they fill.
template <class T>
class option_block {
public:
  using errors_t = std::vector<config_error>;
  /// Turns a value's text into the field; returns an error message, or empty.
  using parser = std::function<std::string(const std::string& text, T& out)>;

  explicit option_block(std::string section) : section_(std::move(section)) {}

  option_block& text(const char* key, std::string T::*field, std::optional<std::string> fallback,
                     const char* description) {
    return add({section_, key, "string", fallback, description}, [field](const std::string& s, T& out) {
      out.*field = s;
      return std::string();
    });
  }

  /// A string never printed (a key, a password): write it as ${ENV_VAR}.
  option_block& secret(const char* key, std::string T::*field, const char* description) {
    text(key, field, "", description);
    auto& declared = entries_.back().declared.back();
    declared.type = "secret";
    declared.secret = true;
    return *this;
  }

  /// A topic name as Kafka takes it: 1 to 249 letters, digits, '.', '_' or '-'.
  option_block& topic(const char* key, std::string T::*field, std::optional<std::string> fallback,
                      const char* description) {
    bool optional = fallback && fallback->empty();
    return add({section_, key, "topic", fallback, description}, [field, optional](const std::string& s, T& out) {
      out.*field = s;
      return (s.empty() && optional) || is_topic_name(s)
               ? std::string()
               : fmt::format("'{}' is not a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-')", s);
    });
  }

  template <class I>
  option_block& integer(const char* key, I T::*field, int64_t fallback, int64_t min, int64_t max, const char* unit,
                        const char* description) {
    option o{section_, key, "integer", std::to_string(fallback), description};
    o.range = fmt::format("{}..{}{}{}", min, max, *unit ? " " : "", unit);
    return add(std::move(o), [=](const std::string& s, T& out) {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc{} || end != s.data() + s.size())
        return fmt::format("expected an integer, got '{}'", s);
      if (v < min || v > max)
        return fmt::format("must be between {} and {}, got {}", min, max, v);
      out.*field = static_cast<I>(v);
      return std::string();
    });
  }

  option_block& number(const char* key, double T::*field, double fallback, double min, double max, const char* unit,
                       const char* description) {
    option o{section_, key, "number", fmt::format("{}", fallback), description};
    o.range = fmt::format("{}..{}{}{}", min, max, *unit ? " " : "", unit);
    return add(std::move(o), [=](const std::string& s, T& out) {
      double v = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v) || v < min || v > max)
        return fmt::format("expected a number between {} and {}, got '{}'", min, max, s);
      out.*field = v;
      return std::string();
    });
  }

  /// One of named values, e.g. `delivery: exactly_once`.
  template <class V>
  option_block& choice(const char* key, V T::*field, std::vector<std::pair<std::string, V>> values,
                       std::optional<std::string> fallback, const char* description) {
    std::string names;
    for (size_t i = 0; i < values.size(); ++i)
      names += (i == 0 ? "" : i + 1 == values.size() ? " or " : ", ") + values[i].first;
    return add({section_, key, "one of " + names, fallback, description},
               [=, key = std::string(key)](const std::string& s, T& out) {
                 for (const auto& [name, value] : values)
                   if (name == s) {
                     out.*field = value;
                     return std::string();
                   }
                 return fmt::format("unknown {} '{}' (expected {})", key, s, names);
               });
  }

  option_block& list(const char* key, std::vector<std::string> T::*field, const char* fallback,
                     const char* description) {
    return list(key, fallback, description, [field](const std::string& item, T& out) {
      (out.*field).push_back(item);
      return std::string();
    });
  }

  /// A list of scalars, each added to the field by `add` (e.g. host:port strings); an item it
  /// refuses is an error at `key[i]`.
  option_block& list(const char* key, const char* fallback, const char* description,
                     std::function<std::string(const std::string& item, T& out)> add) {
    option declared{section_, key, "list", fallback, description};
    return add_entry({key}, {declared}, [declared, add](const raw_section& in, T& out, errors_t& errors) {
      const raw_value* given = in.find(declared.key);
      std::vector<std::string> items;
      if (given && given->type == raw_value::kind::list)
        items = given->items;
      else if (given && given->type != raw_value::kind::null)
        return errors.push_back({in.join(declared.key), given->line, "expected a list"});
      else
        items = parse_list_literal(*declared.default_value);
      for (size_t i = 0; i < items.size(); ++i)
        if (auto message = add(items[i], out); !message.empty())
          errors.push_back({fmt::format("{}[{}]", in.join(declared.key), i), in.line_of(declared.key), message});
    });
  }

  /// Any other kind of value, turned into the field by `parse`.
  option_block& custom(const char* key, const char* type, std::optional<std::string> fallback, const char* description,
                       parser parse) {
    return add({section_, key, type, fallback, description}, std::move(parse));
  }

  /// A map under `key` read by a block of its own (`batch:` of a model). An `optional` one is
  /// read only when given (`alert:` of a pipeline), so its required keys are required then only.
  template <class U>
  option_block& nested(const char* key, U T::*field, const option_block<U>& block, bool optional = false) {
    return section(key, block.options(), optional, [field, block](const raw_section& in, T& out, errors_t& errors) {
      block.read(in, out.*field, errors);
    });
  }

  /// A map under `key` read by `read`; `declared` are its options, for the reference.
  option_block& section(const char* key, std::vector<option> declared, bool optional,
                        std::function<void(const raw_section&, T&, errors_t&)> read) {
    return add_entry({key}, std::move(declared), [key = std::string(key), optional, read](const raw_section& in, T& out,
                                                                                          errors_t& errors) {
      const raw_value* given = in.find(key);
      bool absent = !given || given->type == raw_value::kind::null;
      if (!absent && given->type != raw_value::kind::map)
        errors.push_back({in.join(key), given->line, "expected a map"});
      else if (!absent || !optional)
        read(in.section(key), out, errors);
    });
  }

  /// The options of `block` as if declared here, filling `field` (options several providers share).
  template <class U>
  option_block& include(U T::*field, const option_block<U>& block) {
    std::vector<option> declared = block.options();
    for (auto& o : declared)
      o.section = section_;
    std::vector<std::string> keys;
    for (const auto& e : block.entries_)
      keys.insert(keys.end(), e.keys.begin(), e.keys.end());
    return add_entry(std::move(keys), std::move(declared), [field, block](const raw_section& in, T& out,
                                                                          errors_t& errors) {
      block.read_declared(in, out.*field, errors);
    });
  }

  /// The options of another block of the same struct, as if declared here.
  option_block& include(const option_block& block) {
    for (auto e : block.entries_) {
      for (auto& o : e.declared)
        o.section = section_;
      entries_.push_back(std::move(e));
    }
    return *this;
  }

  /// Fills `out` from `in`: declared defaults for what is absent, an error for every
  /// unknown key (or, with `rest`, unknown keys are handed over there instead). A key set
  /// to null (`path: ~`, `--set models.m.path=~`) counts as absent.
  void read(const raw_section& in, T& out, errors_t& errors, raw_section* rest = nullptr) const {
    for (const auto& [key, value] : in.values)
      if (!declares(key) && value.type != raw_value::kind::null) {
        if (rest)
          rest->values.emplace(key, value);
        else
          errors.push_back({in.join(key), value.line, fmt::format("unknown key '{}' (expected one of: {})", key, keys())});
      }
    read_declared(in, out, errors);
  }

  /// A `T` with every declared default.
  T defaults() const {
    T out{};
    errors_t ignored;
    read(raw_section{}, out, ignored);
    return out;
  }

  /// Every option of this block and the blocks nested in it, for the reference.
  std::vector<option> options() const {
    std::vector<option> out;
    for (const auto& e : entries_)
      out.insert(out.end(), e.declared.begin(), e.declared.end());
    return out;
  }

  const std::string& section() const { return section_; }

private:
  template <class>
  friend class option_block;

  using reader = std::function<void(const raw_section&, T&, errors_t&)>;
  struct entry {
    std::vector<std::string> keys; ///< the keys it reads
    std::vector<option> declared;  ///< what the reference says of them
    reader read;
  };

  option_block& add_entry(std::vector<std::string> keys, std::vector<option> declared, reader read) {
    entries_.push_back({std::move(keys), std::move(declared), std::move(read)});
    return *this;
  }

  /// A scalar: given, or its default; required when it has none.
  option_block& add(option declared, parser parse) {
    std::string key = declared.key;
    return add_entry({key}, {declared}, [declared, parse](const raw_section& in, T& out, errors_t& errors) {
      const raw_value* given = in.find(declared.key);
      bool absent = !given || given->type == raw_value::kind::null;
      if (!absent && given->type != raw_value::kind::scalar)
        return errors.push_back({in.join(declared.key), given->line, fmt::format("expected a {}", declared.type)});
      if (absent && !declared.default_value)
        return errors.push_back({in.join(declared.key), in.line, "required key is missing"});
      auto message = parse(absent ? *declared.default_value : given->text, out);
      if (!message.empty())
        errors.push_back({in.join(declared.key), absent ? in.line : given->line, std::move(message)});
    });
  }

  void read_declared(const raw_section& in, T& out, errors_t& errors) const {
    for (const auto& e : entries_)
      e.read(in, out, errors);
  }

  bool declares(const std::string& key) const {
    for (const auto& e : entries_)
      for (const auto& k : e.keys)
        if (k == key)
          return true;
    return false;
  }

  std::string keys() const {
    std::string out;
    for (const auto& e : entries_)
      for (const auto& k : e.keys)
        out += (out.empty() ? "" : ", ") + k;
    return out;
  }

  std::string section_;
  std::vector<entry> entries_;
};

} // namespace inflow::config
