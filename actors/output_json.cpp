// The JSON of alerts and results. Both carry a deterministic id derived from
// the source position, so that a record replayed after a crash yields the same id.

#include "actors/outcome_sink.hpp"
#include "events/json_text.hpp"

#include <fmt/format.h>

namespace inflow::actors {

namespace {

/// `{"<id_name>":"topic/partition/offset","source":{...}` and the record's own id and key.
void open_with_source(std::string& out, const pipeline_context& ctx, const char* id_name, int32_t partition,
                      int64_t offset, const events::record_identity& identity, const char* record_id_name,
                      const char* key_name) {
  const auto& topic = ctx.config.source.topic;
  out += fmt::format(R"({{"{}":)", id_name);
  events::append_quoted(out, fmt::format("{}/{}/{}", topic, partition, offset));
  out += R"(,"source":{"topic":)";
  events::append_quoted(out, topic);
  out += fmt::format(R"(,"partition":{},"offset":{}}},"{}":)", partition, offset, record_id_name);
  events::append_quoted(out, identity.id);
  out += fmt::format(R"(,"{}":)", key_name);
  events::append_quoted(out, identity.key);
}

/// The model and version, the pipeline and the time; closes the object.
void close_with(std::string& out, const pipeline_context& ctx, const std::string& model, const std::string& version,
                int64_t now_ms) {
  out += R"(,"model":)";
  events::append_quoted(out, model);
  out += R"(,"model_version":)";
  events::append_quoted(out, version);
  out += R"(,"pipeline":)";
  events::append_quoted(out, ctx.config.name);
  out += fmt::format(R"(,"ts":{}}})", now_ms);
}

/// The answering version of the pipeline's model, or a fallback that names itself.
void close_with_model(std::string& out, const pipeline_context& ctx, const model_result& result, int64_t now_ms) {
  if (result.model.empty())
    close_with(out, ctx, ctx.config.model, ctx.versions[result.route].version, now_ms);
  else
    close_with(out, ctx, result.model, result.model_version, now_ms);
}

} // namespace

std::string make_alert_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                            const events::record_identity& identity, const model_result& result, int64_t now_ms) {
  std::string out;
  out.reserve(320);
  const auto& rule = ctx.config.alert;
  open_with_source(out, ctx, "alert_id", partition, offset, identity, rule.id_as.c_str(), rule.key_as.c_str());
  out += fmt::format(R"(,"score":{:.6f})", result.score);
  close_with_model(out, ctx, result, now_ms);
  return out;
}

std::string make_result_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                             const events::record_identity& identity, const model_result& result, int64_t now_ms) {
  std::string out;
  out.reserve(256 + result.text.size() + result.vector.size() * 12);
  open_with_source(out, ctx, "result_id", partition, offset, identity, "id", "key");
  const auto& task = ctx.model().task;
  if (task == "embedding") {
    out += R"(,"embedding":[)";
    for (size_t i = 0; i < result.vector.size(); ++i) {
      if (i)
        out += ',';
      fmt::format_to(std::back_inserter(out), "{}", result.vector[i]);
    }
    out += ']';
  } else if (task == "text_generation") {
    out += R"(,"text":)";
    events::append_quoted(out, result.text);
  } else {
    out += fmt::format(R"(,"score":{:.6f})", result.score);
  }
  close_with_model(out, ctx, result, now_ms);
  return out;
}

std::string make_shadow_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                             const shadow_book::pair& answers, bool shadow_alert, int64_t now_ms) {
  std::string out;
  out.reserve(384);
  const auto& live = answers.live;
  open_with_source(out, ctx, "shadow_id", partition, offset, live.identity, "id", "key");
  fmt::format_to(std::back_inserter(out), R"(,"score":{:.6f},"alert":{},"live":{{"model_version":)", answers.shadow,
                 shadow_alert);
  events::append_quoted(out, ctx.versions[live.route].version);
  fmt::format_to(std::back_inserter(out), R"(,"score":{:.6f},"alert":{}}},"agrees":{})", live.score, live.alert,
                 live.alert == shadow_alert);
  close_with(out, ctx, ctx.config.model, ctx.shadow->version, now_ms);
  return out;
}

} // namespace inflow::actors
