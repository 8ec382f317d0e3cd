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

/// `rows` holds ids.size() rows of the model's input width, row-major.
struct score_request {
  std::vector<uint64_t> ids;
  std::vector<float> rows;
};

/// `scores[i]` belongs to `ids[i]`; when `error` is set, no id was scored.
struct score_reply {
  std::vector<uint64_t> ids;
  std::vector<float> scores;
  std::string error;
};

/// What a prepared model tells its callers.
struct model_info {
  std::string name;
  std::string version;
  std::vector<std::string> input; ///< feature expressions, in row order
};

} // namespace inflow::gateways
