#pragma once
// What the text providers share: rough token estimates and JSON helpers.

#include "gateways/common/remote_gateway.hpp"

#include <nlohmann/json.hpp>

namespace inflow::gateways {

/// What the providers that generate text take besides the prompt.
struct text_options {
  std::string system_prompt;
  int64_t max_tokens{};
};

inline const config::option_block<text_options>& text_generation_options() {
  static const auto block =
    config::option_block<text_options>("models.*")
      .text("system_prompt", &text_options::system_prompt, "",
            "text_generation: instructions sent before each record's text.")
      .integer("max_tokens", &text_options::max_tokens, 256, 1, 1'000'000, "tokens",
               "text_generation: most tokens to generate per record.");
  return block;
}

/// About four bytes per token for English text (OpenAI's rule of thumb), rounded up per input
/// as each input is tokenized on its own, plus what the call may generate.
inline int64_t estimate_text_tokens(const call_input& in, int64_t max_output_tokens) {
  int64_t tokens = 0;
  for (size_t i = 0; i < in.n; ++i)
    tokens += (static_cast<int64_t>(in.texts[i].size()) + 3) / 4 + max_output_tokens;
  return tokens;
}

/// Parses a JSON body; nullopt with `error` set when it is not JSON.
inline std::optional<nlohmann::json> parse_json(const std::string& body, std::string& error) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    error = "response is not valid JSON";
    return std::nullopt;
  }
  return j;
}

/// Runs `read` on the parsed body, turning a JSON shape mismatch into `error`.
template <class Read>
std::optional<call_output> read_json(const std::string& body, std::string& error, Read&& read) {
  auto j = parse_json(body, error);
  if (!j)
    return std::nullopt;
  try {
    return read(*j);
  } catch (const nlohmann::json::exception& e) {
    error = std::string("unexpected response: ") + e.what();
    return std::nullopt;
  }
}

/// `n` embeddings of equal length, flattened, or an error.
inline bool flatten_embeddings(const std::vector<std::vector<float>>& vectors, size_t n, call_output& out,
                               std::string& error) {
  if (vectors.size() != n || vectors.empty() || vectors.front().empty()) {
    error = "response has " + std::to_string(vectors.size()) + " embeddings for " + std::to_string(n) + " inputs";
    return false;
  }
  out.width = vectors.front().size();
  for (const auto& v : vectors) {
    if (v.size() != out.width) {
      error = "embeddings of different lengths";
      return false;
    }
    out.values.insert(out.values.end(), v.begin(), v.end());
  }
  return true;
}

} // namespace inflow::gateways
