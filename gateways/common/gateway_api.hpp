#pragma once
// The message interface of every gateway actor (no CAF needed to include it).
//
// A gateway handles:
//   score_request  -> replies later with one or more score_reply messages to
//                     the sender, together covering every id of the request.
// Rows from many senders are batched together; a request larger than the
// batch size is split, so replies may come in parts.

#include <cstdint>
#include <string>
#include <vector>

namespace inflow::gateways {

/// One model input per id: a row of features (classification, regression:
/// `rows` holds ids.size() rows of the model's input width, row-major) or a
/// text (embedding, text_generation: `texts` holds one per id).
struct score_request {
  std::vector<uint64_t> ids;
  std::vector<float> rows;
  std::vector<std::string> texts;
};

/// Results for `ids[i]`: `values[i*width, (i+1)*width)` (a score when width is
/// 1, an embedding otherwise) or `texts[i]`. When `error` is set, no id was scored.
struct score_reply {
  std::vector<uint64_t> ids;
  std::vector<float> values;
  std::string error;
  size_t width = 1;
  std::vector<std::string> texts;
  std::string model;         ///< the model that answered (a fallback says its own name)
  std::string model_version;
};

/// What a prepared model tells its callers.
struct model_info {
  std::string name;
  std::string version;
  std::vector<std::string> input; ///< feature expressions in row order, or one text template
  std::string task;               ///< classification, regression, embedding, text_generation
};

inline bool takes_text(const std::string& task) {
  return task == "embedding" || task == "text_generation";
}

} // namespace inflow::gateways
