#include "avro/record_reader.hpp"

#include <avro.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

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

/// The value at `path` below `record` (unions followed to their branch), as a field value.
field_value value_at(avro_value_t record, const std::vector<std::string>& path) {
  avro_value_t at = record;
  for (const auto& name : path) {
    if (avro_value_get_type(&at) == AVRO_UNION) {
      avro_value_t branch;
      if (avro_value_get_current_branch(&at, &branch) != 0)
        return std::monostate{};
      at = branch;
    }
    if (avro_value_get_type(&at) != AVRO_RECORD)
      return std::monostate{};
    avro_value_t child;
    if (avro_value_get_by_name(&at, name.c_str(), &child, nullptr) != 0)
      return std::monostate{};
    at = child;
  }
  if (avro_value_get_type(&at) == AVRO_UNION) {
    avro_value_t branch;
    if (avro_value_get_current_branch(&at, &branch) != 0)
      return std::monostate{};
    at = branch;
  }
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
  avro_schema_t schema = nullptr;
  avro_value_iface_t* iface = nullptr;
  ~expected() {
    if (iface)
      avro_value_iface_decref(iface);
    if (schema)
      avro_schema_decref(schema);
  }
};

struct schemas::writer {
  int id = 0;
  avro_schema_t schema = nullptr;
  avro_value_iface_t* resolver = nullptr; ///< reads the writer's encoding into an expected-schema value
  ~writer() {
    if (resolver)
      avro_value_iface_decref(resolver);
    if (schema)
      avro_schema_decref(schema);
  }
};

schemas::schemas(std::shared_ptr<const registry> registry, std::string subject)
  : schemas(registry, subject, [&] {
      auto v = registry->latest(subject);
      return v.schema;
    }()) {
  expected_id_ = registry_->latest(subject_).id;
}

schemas::schemas(std::shared_ptr<const registry> registry, const std::string& subject, const std::string& expected_json)
  : registry_(std::move(registry)), subject_(subject), expected_(new expected) {
  expected_->schema = parse_schema(expected_json, "the expected schema of " + subject_);
  if (avro_typeof(expected_->schema) != AVRO_RECORD)
    throw std::runtime_error(fmt::format("the expected schema of {} is not an Avro record", subject_));
  expected_->iface = avro_generic_class_from_schema(expected_->schema);
}

schemas::~schemas() = default;

std::shared_ptr<schemas::writer> schemas::writer_of(int id) {
  // Under the lock, so that partitions meeting a new schema at once fetch it once; fetches are
  // rare (one per schema id a node meets) and each partition caches what it got.
  std::lock_guard<std::mutex> guard(mutex_);
  if (auto it = writers_.find(id); it != writers_.end())
    return it->second;
  auto json = registry_->schema(id);
  auto w = std::make_shared<writer>();
  w->id = id;
  w->schema = parse_schema(json, fmt::format("schema {}", id));
  w->resolver = avro_resolved_writer_new(w->schema, expected_->schema);
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
    // A registry that does not answer now may in a moment; one that has no such id never will.
    for (int attempt = 0; !writer; ++attempt) {
      try {
        writer = schemas_->writer_of(id);
      } catch (const registry_error& e) {
        if (e.not_found)
          return decode_failure{record_error::invalid_avro, fmt::format("schema id {}: {}", id, e.what())};
        if (attempt == 2)
          return decode_failure{record_error::schema_unavailable, e.what()};
        std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
      } catch (const std::runtime_error& e) {
        return decode_failure{record_error::invalid_avro, e.what()};
      }
    }
    auto v = std::make_unique<values_of>();
    v->writer = writer;
    avro_resolved_writer_new_value(writer->resolver, &v->resolved);
    avro_generic_value_new(schemas_->expected_->iface, &v->record);
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
  for (size_t i = 0; i < paths.size(); ++i)
    values[i] = value_at(v.record, paths[i]);
  return std::nullopt;
}

} // namespace inflow::avro
