#include "avro/record_writer.hpp"

#include <avro.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace inflow::avro {

namespace {

nlohmann::json source_field() {
  return {{"name", "source"},
          {"type",
           {{"type", "record"},
            {"name", "Source"},
            {"fields", {{{"name", "topic"}, {"type", "string"}}, {{"name", "partition"}, {"type", "int"}},
                        {{"name", "offset"}, {"type", "long"}}}}}}};
}

nlohmann::json outcome(const char* name, const std::string& id_name, nlohmann::json fields) {
  nlohmann::json all = nlohmann::json::array({{{"name", id_name}, {"type", "string"}}, source_field()});
  for (auto& f : fields)
    all.push_back(std::move(f));
  for (const char* text : {"model", "model_version", "pipeline"})
    all.push_back({{"name", text}, {"type", "string"}});
  all.push_back({{"name", "ts"}, {"type", "long"}});
  return {{"type", "record"}, {"name", name}, {"namespace", "io.inflow"}, {"fields", all}};
}

/// Sets `v` (of the schema's type) from `j`; throws std::runtime_error naming what does not fit.
void set(avro_value_t& v, const nlohmann::json& j, const std::string& where) {
  auto misfit = [&] { return std::runtime_error(fmt::format("{}: {} does not fit the Avro schema", where, j.dump())); };
  switch (avro_value_get_type(&v)) {
    case AVRO_STRING:
      if (!j.is_string())
        throw misfit();
      avro_value_set_string_len(&v, j.get_ref<const std::string&>().c_str(), j.get_ref<const std::string&>().size() + 1);
      return;
    case AVRO_DOUBLE:
      if (!j.is_number())
        throw misfit();
      avro_value_set_double(&v, j.get<double>());
      return;
    case AVRO_FLOAT:
      if (!j.is_number())
        throw misfit();
      avro_value_set_float(&v, j.get<float>());
      return;
    case AVRO_INT64:
      if (!j.is_number_integer())
        throw misfit();
      avro_value_set_long(&v, j.get<int64_t>());
      return;
    case AVRO_INT32:
      if (!j.is_number_integer())
        throw misfit();
      avro_value_set_int(&v, j.get<int32_t>());
      return;
    case AVRO_ARRAY:
      if (!j.is_array())
        throw misfit();
      for (const auto& item : j) {
        avro_value_t element;
        avro_value_append(&v, &element, nullptr);
        set(element, item, where);
      }
      return;
    case AVRO_RECORD: {
      if (!j.is_object())
        throw misfit();
      const size_t n = avro_schema_record_size(avro_value_get_schema(&v));
      for (size_t i = 0; i < n; ++i) {
        avro_value_t field;
        const char* name = nullptr;
        avro_value_get_by_index(&v, i, &field, &name);
        auto it = j.find(name);
        if (it == j.end())
          throw std::runtime_error(fmt::format("{}: no field {} for the Avro schema", where, name));
        set(field, *it, where + "." + name);
      }
      return;
    }
    default: throw misfit();
  }
}

} // namespace

std::string alert_schema(const std::string& id_as, const std::string& key_as) {
  return outcome("Alert", "alert_id",
                 {{{"name", id_as}, {"type", "string"}}, {{"name", key_as}, {"type", "string"}},
                  {{"name", "score"}, {"type", "double"}}})
    .dump();
}

std::string result_schema(const std::string& task) {
  nlohmann::json answer = task == "embedding"         ? nlohmann::json{{"name", "embedding"}, {"type", {{"type", "array"}, {"items", "float"}}}}
                          : task == "text_generation" ? nlohmann::json{{"name", "text"}, {"type", "string"}}
                                                      : nlohmann::json{{"name", "score"}, {"type", "double"}};
  return outcome("Result", "result_id",
                 {{{"name", "id"}, {"type", "string"}}, {{"name", "key"}, {"type", "string"}}, std::move(answer)})
    .dump();
}

struct json_writer::impl {
  avro_schema_t schema = nullptr;
  avro_value_iface_t* iface = nullptr;
  ~impl() {
    if (iface)
      avro_value_iface_decref(iface);
    if (schema)
      avro_schema_decref(schema);
  }
};

json_writer::json_writer(const registry& r, const std::string& subject, const std::string& schema_json)
  : impl_(new impl) {
  if (avro_schema_from_json_length(schema_json.data(), schema_json.size(), &impl_->schema) != 0)
    throw std::runtime_error(fmt::format("the Avro schema for {}: {}", subject, avro_strerror()));
  impl_->iface = avro_generic_class_from_schema(impl_->schema);
  id_ = r.register_schema(subject, schema_json);
}

json_writer::~json_writer() = default;

std::string json_writer::encode(const std::string& json) const {
  avro_value_t v;
  avro_generic_value_new(impl_->iface, &v); // per record: the writer is shared by partitions
  try {
    set(v, nlohmann::json::parse(json), "record");
  } catch (...) {
    avro_value_decref(&v);
    throw;
  }
  size_t size = 0;
  avro_value_sizeof(&v, &size);
  std::string out(5 + size, '\0');
  const auto id = static_cast<uint32_t>(id_);
  out[1] = static_cast<char>(id >> 24), out[2] = static_cast<char>(id >> 16), out[3] = static_cast<char>(id >> 8),
  out[4] = static_cast<char>(id);
  avro_writer_t w = avro_writer_memory(out.data() + 5, static_cast<int64_t>(size));
  const int rc = avro_value_write(w, &v);
  avro_writer_free(w);
  avro_value_decref(&v);
  if (rc != 0)
    throw std::runtime_error(fmt::format("Avro encoding failed: {}", avro_strerror()));
  return out;
}

} // namespace inflow::avro
