#include "gateways/kserve/protocol.hpp"
#include "events/json_text.hpp"

#include <fmt/format.h>
#include <simdjson.h>

namespace inflow::gateways::kserve {

namespace {

void append_numbers(std::string& out, const float* values, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (i)
      out += ',';
    fmt::format_to(std::back_inserter(out), "{}", values[i]);
  }
}

/// Appends every number of a (possibly nested) JSON array to `out`.
bool flatten(simdjson::dom::element e, std::vector<float>& out) {
  if (e.is_array()) {
    for (auto item : e.get_array())
      if (!flatten(item, out))
        return false;
    return true;
  }
  double v;
  if (e.get_double().get(v) == simdjson::SUCCESS) {
    out.push_back(static_cast<float>(v));
    return true;
  }
  int64_t i;
  if (e.get_int64().get(i) == simdjson::SUCCESS) {
    out.push_back(static_cast<float>(i));
    return true;
  }
  return false;
}

thread_local simdjson::dom::parser parser;

} // namespace

std::string encode_infer_request(const std::string& id, const float* rows, size_t n, size_t width) {
  std::string out;
  out.reserve(64 + n * width * 8);
  out += R"({"id":)";
  events::append_quoted(out, id);
  fmt::format_to(std::back_inserter(out), R"(,"inputs":[{{"name":"input-0","shape":[{},{}],"datatype":"FP32","data":[)", n,
                 width);
  append_numbers(out, rows, n * width);
  out += "]}]}";
  return out;
}

std::optional<infer_request> decode_infer_request(std::string_view body, std::string& error) {
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    error = fmt::format("request is not valid JSON: {}", simdjson::error_message(err));
    return std::nullopt;
  }
  infer_request out;
  std::string_view id;
  if (doc["id"].get_string().get(id) == simdjson::SUCCESS)
    out.id = std::string(id);
  simdjson::dom::array inputs;
  if (doc["inputs"].get_array().get(inputs) || inputs.size() != 1) {
    error = "request needs exactly one entry in \"inputs\"";
    return std::nullopt;
  }
  auto input = inputs.at(0);
  simdjson::dom::array shape;
  if (input["shape"].get_array().get(shape) || shape.size() < 1 || shape.size() > 2) {
    error = "input \"shape\" must be [rows, features] or [features]";
    return std::nullopt;
  }
  std::vector<int64_t> dims;
  for (auto d : shape) {
    int64_t v;
    if (d.get_int64().get(v) || v < 0) {
      error = "input \"shape\" must hold non-negative integers";
      return std::nullopt;
    }
    dims.push_back(v);
  }
  out.n = dims.size() == 2 ? static_cast<size_t>(dims[0]) : 1;
  out.width = static_cast<size_t>(dims.back());
  simdjson::dom::element data;
  if (input["data"].get(data) || !flatten(data, out.rows)) {
    error = "input \"data\" must be an array of numbers";
    return std::nullopt;
  }
  // Divided, not multiplied: a shape like [2^60, 16] must not wrap around to the data's size.
  if (out.width == 0 || out.rows.size() % out.width != 0 || out.rows.size() / out.width != out.n) {
    error = fmt::format("input \"data\" has {} numbers, shape says [{}, {}]", out.rows.size(), out.n, out.width);
    return std::nullopt;
  }
  return out;
}

std::string encode_infer_response(const std::string& model, const std::string& version, const std::string& id,
                                  const std::vector<float>& scores) {
  std::string out = R"({"model_name":)";
  events::append_quoted(out, model);
  out += R"(,"model_version":)";
  events::append_quoted(out, version);
  out += R"(,"id":)";
  events::append_quoted(out, id);
  fmt::format_to(std::back_inserter(out), R"(,"outputs":[{{"name":"output-0","shape":[{}],"datatype":"FP32","data":[)",
                 scores.size());
  append_numbers(out, scores.data(), scores.size());
  out += "]}]}";
  return out;
}

std::optional<std::vector<float>> decode_infer_response(std::string_view body, size_t expected_rows,
                                                        std::string& error) {
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    error = fmt::format("response is not valid JSON: {}", simdjson::error_message(err));
    return std::nullopt;
  }
  simdjson::dom::array outputs;
  if (doc["outputs"].get_array().get(outputs) || outputs.size() == 0) {
    std::string_view message;
    error = doc["error"].get_string().get(message) == simdjson::SUCCESS
              ? fmt::format("model server: {}", message)
              : std::string("response has no \"outputs\"");
    return std::nullopt;
  }
  std::vector<float> scores;
  simdjson::dom::element data;
  if (outputs.at(0)["data"].get(data) || !flatten(data, scores)) {
    error = "output \"data\" must be an array of numbers";
    return std::nullopt;
  }
  if (scores.size() != expected_rows) {
    error = fmt::format("response has {} scores for {} rows", scores.size(), expected_rows);
    return std::nullopt;
  }
  return scores;
}

} // namespace inflow::gateways::kserve
