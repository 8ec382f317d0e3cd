#include "config/options.hpp"

#include <algorithm>
#include <cctype>

namespace inflow::config {

const raw_value* raw_section::find(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? nullptr : &it->second;
}

bool raw_section::has(const std::string& key) const {
  const raw_value* v = find(key);
  return v && v->type != raw_value::kind::null;
}

raw_section raw_section::section(const std::string& key) const {
  const raw_value* v = find(key);
  if (v && v->type == raw_value::kind::map)
    return *v->map;
  return raw_section{join(key), v ? v->line : line, {}};
}

int raw_section::line_of(const std::string& key) const {
  const raw_value* v = find(key);
  return v ? v->line : line;
}

bool is_topic_name(const std::string& name) {
  return !name.empty() && name.size() <= 249 && name != "." && name != ".." &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
         });
}

std::vector<std::string> parse_list_literal(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  auto flush = [&] {
    auto first = item.find_first_not_of(' ');
    if (first != std::string::npos)
      out.push_back(item.substr(first, item.find_last_not_of(' ') - first + 1));
    item.clear();
  };
  for (char c : text) {
    if (c == '[' || c == ']')
      continue;
    if (c == ',')
      flush();
    else
      item += c;
  }
  flush();
  return out;
}

std::string reference_table(const std::vector<option>& options) {
  std::string out = "| key | type | default | range | description |\n|---|---|---|---|---|\n";
  for (const auto& o : options)
    out += fmt::format("| `{}.{}` | {} | {} | {} | {} |\n", o.section, o.key, o.type,
                       o.default_value ? (o.default_value->empty() ? std::string() : fmt::format("`{}`", *o.default_value))
                                       : std::string("required"),
                       o.range, o.description);
  return out;
}

} // namespace inflow::config
