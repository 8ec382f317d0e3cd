#pragma once
// What several HTTP providers share: reading the credential, and reading a
// list of scores out of a JSON response.

#include "config/config.hpp"

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace inflow::gateways {

/// The credential of a model: `api_key` (usually `${ENV}`), else the content of
/// `api_key_file`, read again when the provider refuses it (a rotated key, an access
/// token renewed by another tool). Thread-safe; the secret is never printed.
class credential {
public:
  /// Throws std::runtime_error when `required` and neither is usable.
  credential(const config::model_config& cfg, bool required);
  std::string value() const;
  /// Reads api_key_file again; true when it now holds another value, worth a second try.
  bool refresh();

private:
  std::string file_; ///< empty: `api_key` was given, nothing to read again
  mutable std::mutex mutex_;
  std::string value_;
};

/// `n` scores from the JSON array at `pointer` (RFC 6901; "" is the document
/// itself). Each element is a number, a one-element array, or an object with a
/// numeric "score". nullopt with `error` set otherwise.
std::optional<std::vector<float>> scores_at(std::string_view json, const std::string& pointer, size_t n,
                                            std::string& error);

/// Rows as a JSON array of arrays: [[1,2],[3,4]].
std::string rows_json(const float* rows, size_t n, size_t width);

} // namespace inflow::gateways
