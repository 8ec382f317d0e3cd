#include "events/decoder.hpp"

#include <fmt/format.h>
#include <msgpack.hpp>
#include <simdjson.h>

#include <algorithm>
#include <cstring>

namespace inflow::events {

namespace {

/// A double when it holds the integer exactly, else its text too (ids above 2^53 stay distinct).
template <class Integer>
field_value integer_value(Integer v) {
  constexpr Integer exact = Integer(1) << 53;
  if (v <= exact && (std::is_unsigned_v<Integer> || v >= -exact))
    return static_cast<double>(v);
  return big_integer{std::to_string(v), static_cast<double>(v)};
}

/// Sets `slot` to a string, reusing the one it held (a record's strings, in the last record's buffers).
void set_string(field_value& slot, std::string_view text) {
  if (auto* held = std::get_if<std::string>(&slot))
    held->assign(text);
  else
    slot.emplace<std::string>(text);
}

void set_from_json(field_value& slot, simdjson::dom::element value) {
  switch (value.type()) {
    case simdjson::dom::element_type::INT64: slot = integer_value(int64_t(value)); return;
    case simdjson::dom::element_type::UINT64: slot = integer_value(uint64_t(value)); return;
    case simdjson::dom::element_type::DOUBLE: slot = double(value); return;
    case simdjson::dom::element_type::BOOL: slot = bool(value); return;
    case simdjson::dom::element_type::STRING: set_string(slot, std::string_view(value)); return;
    case simdjson::dom::element_type::NULL_VALUE: slot = std::monostate{}; return;
    case simdjson::dom::element_type::ARRAY: slot = other_value{"array"}; return;
    case simdjson::dom::element_type::OBJECT: slot = other_value{"object"}; return;
  }
  slot = std::monostate{};
}

/// A name's first 8 bytes as one number: most of a record's keys differ from a field there.
uint64_t head_of(std::string_view name) {
  uint64_t head = 0;
  if (!name.empty()) // an empty key may have no data at all (memcpy from null is undefined)
    std::memcpy(&head, name.data(), std::min<size_t>(name.size(), sizeof head));
  return head;
}

/// A msgpack map's value under `key`, or nullptr.
const msgpack::object* member(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP)
    return nullptr;
  for (const auto& kv : map.via.map)
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  return nullptr;
}

} // namespace

std::string_view to_string(record_error e) {
  switch (e) {
    case record_error::empty: return "inflow.errors.empty";
    case record_error::oversized: return "inflow.errors.oversized";
    case record_error::invalid_json: return "inflow.errors.invalid_json";
    case record_error::invalid_msgpack: return "inflow.errors.invalid_msgpack";
    case record_error::too_deep: return "inflow.errors.too_deep";
    case record_error::not_an_object: return "inflow.errors.not_an_object";
    case record_error::missing_field: return "inflow.errors.missing_field";
    case record_error::wrong_type: return "inflow.errors.wrong_type";
    case record_error::model_failed: return "inflow.errors.model_failed";
    case record_error::output_refused: return "inflow.errors.output_refused";
    case record_error::invalid_avro: return "inflow.errors.invalid_avro";
    case record_error::schema_unavailable: return "inflow.errors.schema_unavailable";
  }
  return "inflow.errors.unknown";
}

struct decoder::json_parser {
  simdjson::dom::parser parser;
};

decoder::decoder(wire_format format, std::vector<std::string> fields, decoder_limits limits,
                 std::unique_ptr<format_reader> reader)
  : format_(format), fields_(std::move(fields)), limits_(limits), reader_(std::move(reader)) {
  if (format_ == wire_format::avro && !reader_)
    throw std::invalid_argument("Avro records need a reader (a schema registry)");
  for (const auto& f : fields_) { // `payment.amount`: `amount` inside `payment`
    heads_.push_back(head_of(f));
    std::vector<std::string> path;
    size_t start = 0;
    for (size_t dot; (dot = f.find('.', start)) != std::string::npos; start = dot + 1)
      path.push_back(f.substr(start, dot - start));
    path.push_back(f.substr(start));
    paths_.push_back(std::move(path));
  }
  if (format_ == wire_format::json) {
    json_ = std::make_unique<json_parser>();
    // Capacity bounds the document size; depth bounds nesting (poison records).
    if (json_->parser.allocate(limits_.max_record_bytes, limits_.max_depth) != simdjson::SUCCESS)
      throw std::runtime_error("cannot allocate the JSON parser");
  }
}

decoder::~decoder() = default;
decoder::decoder(decoder&&) noexcept = default;

int decoder::index_of(std::string_view key) const {
  const uint64_t head = head_of(key);
  for (size_t i = 0; i < fields_.size(); ++i)
    if (heads_[i] == head && fields_[i] == key)
      return static_cast<int>(i);
  return -1;
}

std::optional<decode_failure> decoder::decode(std::string_view bytes, std::vector<field_value>& values) {
  // The slots keep what they held (a string's buffer is reused); set_ says which this record set,
  // and the others are cleared, all of them when the record fails.
  values.resize(fields_.size());
  set_.assign(fields_.size(), false);
  std::optional<decode_failure> failure;
  if (bytes.empty())
    failure = decode_failure{record_error::empty, "empty record"};
  else if (bytes.size() > limits_.max_record_bytes)
    failure = decode_failure{record_error::oversized, fmt::format("record of {} bytes exceeds max_record_bytes {}",
                                                                  bytes.size(), limits_.max_record_bytes)};
  else if (format_ == wire_format::json)
    failure = decode_json(bytes, values);
  else if (format_ == wire_format::msgpack)
    failure = decode_msgpack(bytes, values);
  else if (!(failure = reader_->read(bytes, paths_, values)))
    return std::nullopt; // a read that succeeds sets every slot
  for (size_t i = 0; i < values.size(); ++i)
    if (failure || !set_[i])
      values[i] = std::monostate{};
  return failure;
}

std::optional<decode_failure> decoder::decode_json(std::string_view bytes, std::vector<field_value>& values) {
  simdjson::dom::element doc;
  auto err = json_->parser.parse(bytes.data(), bytes.size(), true).get(doc);
  if (err == simdjson::DEPTH_ERROR)
    return decode_failure{record_error::too_deep,
                          fmt::format("JSON nested deeper than {} levels", limits_.max_depth)};
  if (err)
    return decode_failure{record_error::invalid_json, fmt::format("invalid JSON: {}", simdjson::error_message(err))};
  simdjson::dom::object object;
  if (doc.get_object().get(object))
    return decode_failure{record_error::not_an_object, "top-level JSON value is not an object"};
  for (auto [key, value] : object) {
    if (int i = index_of(key); i >= 0) {
      set_from_json(values[static_cast<size_t>(i)], value);
      set_[static_cast<size_t>(i)] = true;
    }
  }
  for (size_t i = 0; i < paths_.size(); ++i) { // nested fields a top-level key of that name did not give
    if (paths_[i].size() < 2 || (set_[i] && !std::holds_alternative<std::monostate>(values[i])))
      continue;
    simdjson::dom::element at = doc;
    bool found = true;
    for (const auto& part : paths_[i]) {
      simdjson::dom::object inner;
      found = !at.get_object().get(inner) && !inner[part].get(at);
      if (!found)
        break;
    }
    if (found) {
      set_from_json(values[i], at);
      set_[i] = true;
    }
  }
  return std::nullopt;
}

std::optional<decode_failure> decoder::decode_msgpack(std::string_view bytes, std::vector<field_value>& values) {
  msgpack::object_handle handle;
  size_t offset = 0;
  const size_t cap = limits_.max_record_bytes;
  try {
    msgpack::unpack(handle, bytes.data(), bytes.size(), offset, nullptr, nullptr,
                    msgpack::unpack_limit(cap, cap, cap, cap, cap, limits_.max_depth));
  } catch (const msgpack::depth_size_overflow&) {
    return decode_failure{record_error::too_deep,
                          fmt::format("msgpack nested deeper than {} levels", limits_.max_depth)};
  } catch (const std::exception& e) {
    return decode_failure{record_error::invalid_msgpack, fmt::format("invalid msgpack: {}", e.what())};
  }
  if (offset != bytes.size())
    return decode_failure{record_error::invalid_msgpack,
                          fmt::format("invalid msgpack: {} trailing bytes", bytes.size() - offset)};
  const msgpack::object& root = handle.get();
  if (root.type != msgpack::type::MAP)
    return decode_failure{record_error::not_an_object, "top-level msgpack value is not a map"};
  std::vector<const msgpack::object*> found(fields_.size(), nullptr);
  for (const auto& kv : root.via.map) {
    if (kv.key.type != msgpack::type::STR)
      continue;
    if (int i = index_of({kv.key.via.str.ptr, kv.key.via.str.size}); i >= 0)
      found[static_cast<size_t>(i)] = &kv.val;
  }
  for (size_t i = 0; i < paths_.size(); ++i) // nested fields a top-level key of that name did not give
    if (paths_[i].size() > 1 && !found[i]) {
      const msgpack::object* at = &root;
      for (const auto& part : paths_[i])
        if (at)
          at = member(*at, part);
      found[i] = at;
    }
  for (size_t i = 0; i < found.size(); ++i) {
    if (!found[i])
      continue;
    set_[i] = true;
    auto& out = values[i];
    const auto& v = *found[i];
    switch (v.type) {
      case msgpack::type::POSITIVE_INTEGER: out = integer_value(v.via.u64); break;
      case msgpack::type::NEGATIVE_INTEGER: out = integer_value(v.via.i64); break;
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: out = v.via.f64; break;
      case msgpack::type::BOOLEAN: out = v.via.boolean; break;
      case msgpack::type::STR:
        // JSON's parser checks UTF-8; msgpack's does not, and alerts are JSON.
        if (!simdjson::validate_utf8(v.via.str.ptr, v.via.str.size))
          return decode_failure{record_error::invalid_msgpack,
                                fmt::format("field '{}' is not valid UTF-8", fields_[i])};
        set_string(out, {v.via.str.ptr, v.via.str.size});
        break;
      case msgpack::type::NIL: out = std::monostate{}; break;
      case msgpack::type::ARRAY: out = other_value{"array"}; break;
      case msgpack::type::MAP: out = other_value{"map"}; break;
      case msgpack::type::BIN: out = other_value{"binary"}; break;
      case msgpack::type::EXT: out = other_value{"extension"}; break;
    }
  }
  return std::nullopt;
}

} // namespace inflow::events
