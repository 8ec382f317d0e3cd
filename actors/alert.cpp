#include "actors/partition_actor.hpp"
#include "events/json_text.hpp"

#include <fmt/format.h>

namespace inflow::actors {

namespace {

void append_model(std::string& out, const pipeline_context& ctx, const model_result& result) {
  out += R"(,"model":)";
  events::append_quoted(out, result.model.empty() ? ctx.model.name : result.model);
  out += R"(,"model_version":)";
  events::append_quoted(out, result.model.empty() ? ctx.model.version : result.model_version);
}

} // namespace

std::string make_alert_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                            const events::record_identity& identity, const model_result& result, int64_t now_ms) {
  const auto& topic = ctx.config.source.topic;
  std::string out;
  out.reserve(320);
  out += R"({"alert_id":)";
  events::append_quoted(out, fmt::format("{}/{}/{}", topic, partition, offset));
  out += R"(,"source":{"topic":)";
  events::append_quoted(out, topic);
  out += fmt::format(R"(,"partition":{},"offset":{}}},"tx_id":)", partition, offset);
  events::append_quoted(out, identity.id);
  out += R"(,"card_id":)";
  events::append_quoted(out, identity.key);
  out += fmt::format(R"(,"score":{:.6f})", result.score);
  append_model(out, ctx, result);
  out += R"(,"pipeline":)";
  events::append_quoted(out, ctx.config.name);
  out += fmt::format(R"(,"ts":{}}})", now_ms);
  return out;
}

std::string make_result_json(const pipeline_context& ctx, int32_t partition, int64_t offset,
                             const events::record_identity& identity, const model_result& result, int64_t now_ms) {
  const auto& topic = ctx.config.source.topic;
  std::string out;
  out.reserve(256 + result.text.size() + result.vector.size() * 12);
  out += R"({"result_id":)";
  events::append_quoted(out, fmt::format("{}/{}/{}", topic, partition, offset));
  out += R"(,"source":{"topic":)";
  events::append_quoted(out, topic);
  out += fmt::format(R"(,"partition":{},"offset":{}}},"id":)", partition, offset);
  events::append_quoted(out, identity.id);
  out += R"(,"key":)";
  events::append_quoted(out, identity.key);
  const auto& task = ctx.model.task;
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
  append_model(out, ctx, result);
  out += R"(,"pipeline":)";
  events::append_quoted(out, ctx.config.name);
  out += fmt::format(R"(,"ts":{}}})", now_ms);
  return out;
}

} // namespace inflow::actors
