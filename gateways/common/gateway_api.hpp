#pragma once
// The one call protocol of a model, whether the model runs in this process or on another node
// (no CAF needed to include it; cluster/wire.hpp encodes these same types).
//
// A gateway handles:
//   score_request  -> replies later with one or more score_reply messages to
//                     the sender, together covering every id of the request.
// Rows from many senders are batched together; a request larger than the
// batch size is split, so replies may come in parts.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace inflow::gateways {

/// One model input per id: a row of features (classification, regression:
/// `rows` holds ids.size() rows of the model's input width, row-major) or a
/// text (embedding, text_generation: `texts` holds one per id).
struct score_request {
  std::vector<uint64_t> ids;
  std::vector<float> rows;
  std::vector<std::string> texts;
  std::string traceparent; ///< W3C trace context of the first traced input (a call carries one), or empty
};

/// Why a reply scored none of its ids. Callers decide by this, never by the message's words.
enum class failure : uint8_t {
  none,
  rejected,     ///< the model refuses these inputs (a 4xx, too large to send): they fail again as they are
  failed,       ///< the model could not answer (down, timing out, answering nonsense) after its retries
  unauthorized, ///< the provider refuses the credential
  deadline,     ///< the inputs waited longer than the model's deadline_ms
  unreachable,  ///< no node hosting the model answered in time
};
constexpr failure last_failure = failure::unreachable;

constexpr std::string_view to_string(failure f) {
  switch (f) {
    case failure::none: return "none";
    case failure::rejected: return "rejected";
    case failure::failed: return "failed";
    case failure::unauthorized: return "unauthorized";
    case failure::deadline: return "deadline";
    case failure::unreachable: return "unreachable";
  }
  return "unknown";
}

/// Results for `ids[i]`: `values[i*width, (i+1)*width)` (a score when width is
/// 1, an embedding otherwise) or `texts[i]`; or, when `failed` is set, none, and `error` says why.
struct score_reply {
  std::vector<uint64_t> ids;
  std::vector<float> values;
  uint32_t width = 1;
  std::vector<std::string> texts;
  failure failed = failure::none;
  std::string error;
  std::string model;         ///< the model that answered (a fallback says its own name)
  std::string model_version;

  bool ok() const { return failed == failure::none; }
  /// Holds what it says it does: a result per id, or a failure and none.
  bool well_formed() const {
    if (!ok())
      return values.empty() && texts.empty();
    if (!texts.empty())
      return texts.size() == ids.size() && values.empty();
    return width > 0 && values.size() % width == 0 && values.size() / width == ids.size();
  }
};

/// A reply scoring none of `ids`, and saying why.
inline score_reply failed_reply(std::vector<uint64_t> ids, failure kind, std::string why, std::string model = {}) {
  score_reply r;
  r.ids = std::move(ids);
  r.failed = kind;
  r.error = std::move(why);
  r.model = std::move(model);
  return r;
}

/// The ids a relay (the cluster's routing and serving actors) gives the inputs it passes on, so
/// that each result finds its way back: the relay's call number above, the input's index below.
namespace relay_id {
constexpr int index_bits = 24;
constexpr size_t max_inputs = size_t(1) << index_bits; ///< above config's largest max_batch
constexpr uint64_t make(uint64_t call, size_t index) { return call << index_bits | index; }
constexpr uint64_t call_of(uint64_t id) { return id >> index_bits; }
constexpr size_t index_of(uint64_t id) { return static_cast<size_t>(id & (max_inputs - 1)); }
} // namespace relay_id

/// What a prepared model tells its callers.
struct model_info {
  std::string name;
  std::string version;
  std::vector<std::string> input; ///< feature expressions in row order, or one text template
  std::string task;               ///< classification, regression, embedding, text_generation
  /// A call's traceparent reaches a provider (its own HTTP call, or its fallback's). An in-process
  /// model has nowhere to send one, so callers need not look for it in their records' headers.
  bool carries_trace = true;
};

inline bool takes_text(const std::string& task) {
  return task == "embedding" || task == "text_generation";
}

} // namespace inflow::gateways
