#include "gateways/common/provider_support.hpp"

#include <fmt/format.h>
#include <simdjson.h>

namespace inflow::gateways {

std::optional<std::vector<float>> scores_at(std::string_view json, const std::string& pointer, size_t n,
                                            std::string& error) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(json.data(), json.size()).get(doc)) {
    error = fmt::format("response is not valid JSON: {}", simdjson::error_message(err));
    return std::nullopt;
  }
  simdjson::dom::array list;
  if (doc.at_pointer(pointer).get_array().get(list)) {
    error = fmt::format("response has no array at '{}'", pointer);
    return std::nullopt;
  }
  std::vector<float> out;
  for (auto item : list) {
    double v;
    simdjson::dom::element e = item;
    if (e.is_array() && e.get_array().size() == 1)
      e = e.get_array().at(0);
    else if (e.is_object() && item["score"].get(e) != simdjson::SUCCESS)
      e = item; // no "score": reported below as not a score
    if (e.get_double().get(v) != simdjson::SUCCESS) {
      int64_t i;
      if (e.get_int64().get(i) != simdjson::SUCCESS) {
        error = fmt::format("response element {} at '{}' is not a score", out.size(), pointer);
        return std::nullopt;
      }
      v = static_cast<double>(i);
    }
    out.push_back(static_cast<float>(v));
  }
  if (out.size() != n) {
    error = fmt::format("response has {} scores for {} rows", out.size(), n);
    return std::nullopt;
  }
  return out;
}

std::string rows_json(const float* rows, size_t n, size_t width) {
  std::string out = "[";
  for (size_t r = 0; r < n; ++r) {
    out += r ? ",[" : "[";
    for (size_t k = 0; k < width; ++k) {
      if (k)
        out += ',';
      fmt::format_to(std::back_inserter(out), "{}", rows[r * width + k]);
    }
    out += ']';
  }
  out += ']';
  return out;
}

} // namespace inflow::gateways
