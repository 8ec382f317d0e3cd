#include "avro/record_reader.hpp"

#include <avro.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

namespace inflow::avro {

namespace {

std::string last_error() {
  return avro_strerror();
}

avro_schema_t parse_schema(const std::string& json, const std::string& what) {
  avro_schema_t schema = nullptr;
  if (avro_schema_from_json_length(json.data(), json.size(), &schema) != 0)
    throw std::runtime_error(fmt::format("{}: not an Avro schema: {}", what, last_error()));
  return schema;
}

using events::decode_failure;
using events::field_value;
using events::record_error;

/// Replaces a union by its current branch; false if it has none.
bool follow_union(avro_value_t& at) {
  if (avro_value_get_type(&at) != AVRO_UNION)
    return true;
  avro_value_t branch;
  if (avro_value_get_current_branch(&at, &branch) != 0)
    return false;
  at = branch;
  return true;
}

/// The value at `path` below `record` (unions followed to their branch), as a field value.
field_value value_at(avro_value_t record, const std::vector<std::string>& path) {
  avro_value_t at = record;
  for (const auto& name : path) {
    if (!follow_union(at) || avro_value_get_type(&at) != AVRO_RECORD)
      return std::monostate{};
    avro_value_t child;
    if (avro_value_get_by_name(&at, name.c_str(), &child, nullptr) != 0)
      return std::monostate{};
    at = child;
  }
  if (!follow_union(at))
    return std::monostate{};
  switch (avro_value_get_type(&at)) {
    case AVRO_INT32: {
      int32_t v = 0;
      avro_value_get_int(&at, &v);
      return static_cast<double>(v);
    }
    case AVRO_INT64: {
      int64_t v = 0;
      avro_value_get_long(&at, &v);
      constexpr int64_t exact = int64_t(1) << 53;
      if (v <= exact && v >= -exact)
        return static_cast<double>(v);
      return events::big_integer{std::to_string(v), static_cast<double>(v)};
    }
    case AVRO_FLOAT: {
      float v = 0;
      avro_value_get_float(&at, &v);
      return static_cast<double>(v);
    }
    case AVRO_DOUBLE: {
      double v = 0;
      avro_value_get_double(&at, &v);
      return v;
    }
    case AVRO_BOOLEAN: {
      int v = 0;
      avro_value_get_boolean(&at, &v);
      return v != 0;
    }
    case AVRO_STRING: {
      const char* s = nullptr;
      size_t size = 0; // with its terminating NUL
      avro_value_get_string(&at, &s, &size);
      return std::string(s, size ? size - 1 : 0);
    }
    case AVRO_ENUM: {
      int index = 0;
      avro_value_get_enum(&at, &index);
      const char* symbol = avro_schema_enum_get(avro_value_get_schema(&at), index);
      return symbol ? field_value(std::string(symbol)) : field_value(std::monostate{});
    }
    case AVRO_NULL: return std::monostate{};
    case AVRO_RECORD: return events::other_value{"record"};
    case AVRO_ARRAY: return events::other_value{"array"};
    case AVRO_MAP: return events::other_value{"map"};
    default: return events::other_value{"bytes"};
  }
}

} // namespace

struct schemas::expected {
  std::string json;
  avro_schema_t schema = nullptr;
  ~expected() {
    if (schema)
      avro_schema_decref(schema);
  }
};

struct schemas::writer {
  int id = 0;
  avro_schema_t schema = nullptr;
  avro_schema_t reader = nullptr;         ///< the expected schema, less the fields this writer lacks
  avro_value_iface_t* reader_iface = nullptr;
  avro_value_iface_t* resolver = nullptr; ///< reads the writer's encoding into a `reader` value
  std::map<std::string, field_value> defaults; ///< by dotted path: expected fields the writer lacks
  ~writer() {
    for (auto* iface : {resolver, reader_iface})
      if (iface)
        avro_value_iface_decref(iface);
    for (auto* s : {reader, schema})
      if (s)
        avro_schema_decref(s);
  }
};

namespace {

field_value from_default(const nlohmann::json& j) {
  if (j.is_number_integer())
    return static_cast<double>(j.get<int64_t>());
  if (j.is_number())
    return j.get<double>();
  if (j.is_boolean())
    return j.get<bool>();
  if (j.is_string())
    return j.get<std::string>();
  if (j.is_null())
    return std::monostate{};
  return events::other_value{j.is_object() ? "record" : "array"};
}

/// A record field's schema, whether given inline or as `["null", {...}]` (its record branch).
const nlohmann::json* record_of(const nlohmann::json& type) {
  if (type.is_object() && type.value("type", "") == "record")
    return &type;
  return nullptr;
}

/// Avro fills a field the writer lacks from the reader's default; avro-c 1.11 refuses such a
/// pair of schemas instead. So: drop those fields from the reader's schema (recursively through
/// nested records) and keep their defaults, to be read as if the record had them.
nlohmann::json without_missing(const nlohmann::json& reader, const nlohmann::json& writer, const std::string& prefix,
                               std::map<std::string, field_value>& defaults) {
  nlohmann::json out = reader;
  out["fields"] = nlohmann::json::array();
  for (const auto& field : reader.value("fields", nlohmann::json::array())) {
    const auto name = field.value("name", "");
    std::optional<nlohmann::json> written;
    for (const auto& w : writer.value("fields", nlohmann::json::array()))
      if (w.value("name", "") == name)
        written = w;
    if (!written && field.contains("default")) {
      defaults[prefix + name] = from_default(field["default"]);
      continue;
    }
    auto copy = field;
    if (written && record_of(field["type"]) && record_of((*written)["type"]))
      copy["type"] = without_missing(field["type"], (*written)["type"], prefix + name + ".", defaults);
    out["fields"].push_back(std::move(copy));
  }
  return out;
}

} // namespace

schemas::schemas(std::shared_ptr<const registry> registry, std::string subject)
  : schemas(registry, subject, [&] {
      auto v = registry->latest(subject);
      return v.schema;
    }()) {
  expected_id_ = registry_->latest(subject_).id;
}

schemas::schemas(std::shared_ptr<const registry> registry, const std::string& subject, const std::string& expected_json)
  : registry_(std::move(registry)), subject_(subject), expected_(new expected) {
  expected_->json = expected_json;
  expected_->schema = parse_schema(expected_json, "the expected schema of " + subject_);
  if (avro_typeof(expected_->schema) != AVRO_RECORD)
    throw std::runtime_error(fmt::format("the expected schema of {} is not an Avro record", subject_));
}

schemas::~schemas() = default;

std::shared_ptr<schemas::writer> schemas::writer_of(int id) {
  std::shared_future<std::string> fetch;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    if (auto it = writers_.find(id); it != writers_.end())
      return it->second;
    if (auto it = fetching_.find(id); it != fetching_.end()) {
      fetch = it->second;
    } else {
      if (std::chrono::steady_clock::now() < retry_at_)
        throw registry_error(last_failure_, false);
      // On a thread of its own: a registry that does not answer must not hold the caller (an
      // actor's worker thread) for its timeout.
      fetch = std::async(std::launch::async, [registry = registry_, id] { return registry->schema(id); }).share();
      fetching_.emplace(id, fetch);
    }
  }
  if (fetch.wait_for(answer_wait) != std::future_status::ready)
    throw registry_error(fmt::format("the schema registry has not answered yet for schema {}", id), false);

  std::lock_guard<std::mutex> guard(mutex_);
  if (auto it = writers_.find(id); it != writers_.end()) // another partition took the answer first
    return it->second;
  fetching_.erase(id);
  std::string json;
  try {
    json = fetch.get();
  } catch (const registry_error& e) {
    if (!e.not_found) { // partitions waiting for the registry do not each ask it again at once
      retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      last_failure_ = e.what();
    }
    throw;
  }
  auto w = std::make_shared<writer>();
  w->id = id;
  w->schema = parse_schema(json, fmt::format("schema {}", id));
  auto expected_json = nlohmann::json::parse(expected_->json);
  auto reduced = without_missing(expected_json, nlohmann::json::parse(json, nullptr, false), "", w->defaults);
  w->reader = parse_schema(reduced.dump(), "the expected schema of " + subject_);
  w->reader_iface = avro_generic_class_from_schema(w->reader);
  w->resolver = avro_resolved_writer_new(w->schema, w->reader);
  if (!w->resolver)
    throw std::runtime_error(fmt::format("schema {} cannot be read as the expected schema of {}: {}", id, subject_,
                                         last_error()));
  spdlog::info("avro: schema {} of {} resolved against the expected one", id, subject_);
  return writers_.emplace(id, std::move(w)).first->second;
}

/// A partition's values for one writer: the resolver's, and the expected-schema value it fills.
struct record_reader::values_of {
  std::shared_ptr<schemas::writer> writer;
  avro_value_t resolved{};
  avro_value_t record{};
  ~values_of() {
    avro_value_decref(&resolved);
    avro_value_decref(&record);
  }
};

record_reader::record_reader(std::shared_ptr<schemas> s) : schemas_(std::move(s)) {}
record_reader::~record_reader() = default;

std::optional<decode_failure> record_reader::read(std::string_view bytes,
                                                  const std::vector<std::vector<std::string>>& paths,
                                                  std::vector<field_value>& values) {
  if (bytes.size() < 5 || bytes[0] != 0)
    return decode_failure{record_error::invalid_avro,
                          "not Confluent-framed Avro (a zero byte and a four-byte schema id first)"};
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const int id = static_cast<int>((uint32_t(p[1]) << 24) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 8) | p[4]);
  auto found = by_writer_.find(id);
  if (found == by_writer_.end()) {
    std::shared_ptr<schemas::writer> writer;
    // A registry that does not answer now may in a moment (the partition holds the record and
    // asks again); one that has no such id never will.
    try {
      writer = schemas_->writer_of(id);
    } catch (const registry_error& e) {
      if (e.not_found)
        return decode_failure{record_error::invalid_avro, fmt::format("schema id {}: {}", id, e.what())};
      return decode_failure{record_error::schema_unavailable, e.what()};
    } catch (const std::exception& e) { // a schema avro-c will not take, or JSON it is not
      return decode_failure{record_error::invalid_avro, fmt::format("schema id {}: {}", id, e.what())};
    }
    auto v = std::make_unique<values_of>();
    v->writer = writer;
    avro_resolved_writer_new_value(writer->resolver, &v->resolved);
    avro_generic_value_new(writer->reader_iface, &v->record);
    avro_resolved_writer_set_dest(&v->resolved, &v->record);
    found = by_writer_.emplace(id, std::move(v)).first;
  }
  auto& v = *found->second;
  avro_reader_t in = avro_reader_memory(bytes.data() + 5, static_cast<int64_t>(bytes.size() - 5));
  const int rc = avro_value_read(in, &v.resolved);
  avro_reader_free(in);
  if (rc != 0)
    return decode_failure{record_error::invalid_avro,
                          fmt::format("Avro record of schema {} does not decode: {}", id, last_error())};
  for (size_t i = 0; i < paths.size(); ++i) {
    values[i] = value_at(v.record, paths[i]);
    if (std::holds_alternative<std::monostate>(values[i]) && !v.writer->defaults.empty())
      if (auto d = v.writer->defaults.find(fmt::format("{}", fmt::join(paths[i], "."))); d != v.writer->defaults.end())
        values[i] = d->second;
  }
  return std::nullopt;
}

} // namespace inflow::avro
