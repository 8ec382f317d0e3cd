#pragma once
// Avro records in Confluent's wire format (a zero byte, the writer's schema id in four bytes
// big-endian, then the Avro binary encoding), read as the schema the pipeline expects: each
// writer's schema is fetched from the registry once, and resolved against the expected one by
// Avro's rules (fields matched by name or alias, added fields take their defaults, removed ones
// are skipped, int widens to long, float and double), so that producers can evolve their schema.

#include "avro/registry.hpp"
#include "events/decoder.hpp"

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace inflow::avro {

/// The schema a pipeline reads with and the writers' schemas met so far, resolved against it;
/// shared by the pipeline's partitions.
class schemas {
public:
  /// The expected schema: the subject's latest version now. Throws registry_error, or
  /// std::runtime_error when that schema is not an Avro record.
  schemas(std::shared_ptr<const registry> registry, std::string subject);
  /// The expected schema given as JSON (tests, a pinned schema); the registry only for writers'.
  schemas(std::shared_ptr<const registry> registry, const std::string& subject, const std::string& expected_json);
  ~schemas();

  struct writer; ///< a writer's schema resolved against the expected one
  /// Throws registry_error (not_found: no such id), or std::runtime_error when the writer's
  /// schema cannot be read as the expected one. A schema not met yet is fetched on a thread of
  /// its own, once for all partitions; a caller waits for it at most answer_wait and otherwise
  /// fails (to ask again later), so a registry that does not answer holds no caller for its
  /// timeout. For a second after the registry failed, a schema not fetched yet fails at once.
  /// (The destructor waits for a fetch still on its way: at most the registry's timeout.)
  std::shared_ptr<writer> writer_of(int id);
  static constexpr std::chrono::milliseconds answer_wait{50};

  const std::string& subject() const { return subject_; }
  int expected_id() const { return expected_id_; }

private:
  friend class record_reader;
  std::shared_ptr<const registry> registry_;
  std::string subject_;
  int expected_id_ = 0;
  struct expected;
  std::unique_ptr<expected> expected_;
  std::mutex mutex_;
  std::map<int, std::shared_ptr<writer>> writers_;
  std::map<int, std::shared_future<std::string>> fetching_; ///< a writer's schema JSON, on its way
  std::chrono::steady_clock::time_point retry_at_{}; ///< no fetch before, after a failed one
  std::string last_failure_;
};

/// One partition's reader: its own Avro values, reused from record to record.
class record_reader : public events::format_reader {
public:
  explicit record_reader(std::shared_ptr<schemas> schemas);
  ~record_reader() override;
  std::optional<events::decode_failure> read(std::string_view bytes, const std::vector<std::vector<std::string>>& paths,
                                             std::vector<events::field_value>& values) override;

private:
  struct values_of;
  std::shared_ptr<schemas> schemas_;
  std::map<int, std::unique_ptr<values_of>> by_writer_;
};

} // namespace inflow::avro
