#pragma once
// What several HTTP providers share: their credential, and reading a list of
// scores out of a JSON response.

#include "config/config.hpp"
#include "gateways/common/credential.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace inflow::gateways {

/// `n` scores from the JSON array at `pointer` (RFC 6901; "" is the document
/// itself). Each element is a number, a one-element array, or an object with a
/// numeric "score". nullopt with `error` set otherwise.
std::optional<std::vector<float>> scores_at(std::string_view json, const std::string& pointer, size_t n,
                                            std::string& error);

/// Rows as a JSON array of arrays: [[1,2],[3,4]].
std::string rows_json(const float* rows, size_t n, size_t width);

} // namespace inflow::gateways
