#include "actors/outcome_sink.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <map>

using namespace inflow;
using namespace inflow::actors;
using write_kind = outcome_sink::write_kind;

namespace {

/// The producer, gateway and clock of a partition, played by the test: writes are recorded and
/// acknowledged (or refused) when the test says, timers fire when the test fires them.
struct fake_outside : outcome_sink::outside {
  struct written {
    std::string topic, key, value;
    std::vector<kafka::header> headers;
    uint64_t token;
    std::string header(const std::string& name) const {
      for (const auto& h : headers)
        if (h.name == name)
          return h.value;
      return "";
    }
  };
  std::vector<written> writes;
  std::map<std::string, rd_kafka_resp_err_t> refuse_at_once; ///< topic -> error produce() returns
  std::vector<gateways::score_request> requests;
  std::vector<size_t> routes; ///< per request: the version asked (config.routes, then the shadow)
  std::vector<std::pair<std::chrono::milliseconds, uint64_t>> retries;
  std::vector<std::chrono::milliseconds> rewinds;
  int64_t clock_ms = 1'000'000;

  rd_kafka_resp_err_t produce(const std::string& topic, std::string_view key, std::string_view value,
                              const std::vector<kafka::header>& headers, uint64_t token) override {
    if (auto refused = refuse_at_once.find(topic); refused != refuse_at_once.end())
      return refused->second;
    writes.push_back({topic, std::string(key), std::string(value), headers, token});
    return RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  std::string producer_failure() override { return "fenced by a newer instance"; }
  void call_model(size_t route, gateways::score_request request) override {
    routes.push_back(route);
    requests.push_back(std::move(request));
  }
  rd_kafka_resp_err_t produce_shadow(const std::string& topic, std::string_view key, std::string_view value,
                                     uint64_t token) override {
    return produce(topic, key, value, {}, token);
  }
  void retry_after(std::chrono::milliseconds delay, uint64_t token) override { retries.emplace_back(delay, token); }
  void rewind_after(std::chrono::milliseconds delay) override { rewinds.push_back(delay); }
  void retry_schemas_after(std::chrono::milliseconds delay) override { schema_retries.push_back(delay); }
  int64_t now_ms() override { return clock_ms; }
  std::vector<std::chrono::milliseconds> schema_retries;
};

/// A source format whose writer's schemas come from a registry: the records are the test's JSON,
/// and while `*away` the registry does not answer.
struct registry_reader : events::format_reader {
  std::shared_ptr<bool> away;
  std::unique_ptr<events::decoder> json;
  std::optional<events::decode_failure> read(std::string_view bytes, const std::vector<std::vector<std::string>>& paths,
                                             std::vector<events::field_value>& values) override {
    if (*away)
      return events::decode_failure{events::record_error::schema_unavailable, "registry: connection refused"};
    if (!json) {
      std::vector<std::string> fields;
      for (const auto& parts : paths) {
        std::string field;
        for (const auto& part : parts)
          field += (field.empty() ? "" : ".") + part;
        fields.push_back(field);
      }
      json = std::make_unique<events::decoder>(config::wire_format::json, fields, config::decoder_limits{});
    }
    return json->decode(bytes, values);
  }
};

/// One partition's sink, fed with records whose value is `{"id", "card_id", "amount"}` JSON.
struct partition {
  metrics::registry registry;
  pipeline_probe probe{registry, "fraud"};
  recent_alerts alerts, dead_letters;
  pipeline_health health;
  // Records as librdkafka hands them over, in zeroed room large enough for its private part
  // (rd_kafka_message_timestamp reads it: 0 means no timestamp, so the sink uses its clock).
  std::vector<std::unique_ptr<std::array<std::byte, 1024>>> storage;
  std::vector<std::string> payloads;
  fake_outside out;
  std::shared_ptr<partition_shared> shared = std::make_shared<partition_shared>();
  std::optional<outcome_sink> sink;

  /// `registry_away`: the source is read through a registry_reader that does not answer while it is true.
  explicit partition(config::delivery delivery, bool with_results = false, bool skip_unwritable = false,
                     std::shared_ptr<bool> registry_away = nullptr) {
    auto cfg = config::pipeline_defaults();
    cfg.name = "fraud";
    cfg.source.topic = "transactions";
    cfg.alert = {config::alert_rule::comparison::greater_equal, 0.5, "alerts"};
    cfg.output_topic = with_results ? "results" : "";
    cfg.dead_letter_topic = "dead-letters";
    cfg.skip_unwritable = skip_unwritable;
    cfg.delivery = delivery;
    cfg.model = "fraud-model";
    cfg.routes = {{"fraud-model", "", 1}};
    if (registry_away)
      cfg.source.format = config::wire_format::avro;
    pipeline_context ctx{
      cfg, events::feature_map({"amount"}), {gateways::model_info{"fraud-model", "1", {"amount"}, "classification"}},
      probe, alerts, dead_letters, health, 1 << 20};
    if (registry_away)
      ctx.make_reader = [registry_away] {
        auto reader = std::make_unique<registry_reader>();
        reader->away = registry_away;
        return reader;
      };
    shared->partition = 3;
    sink.emplace(std::make_shared<const pipeline_context>(std::move(ctx)), shared, out);
  }

  /// Consumes records at `offsets` (their values: `values`, or valid JSON).
  void consume(const std::vector<int64_t>& offsets, std::vector<std::string> values = {}) {
    auto batch = std::shared_ptr<record_batch>(new record_batch, [](record_batch* b) {
      b->messages.clear(); // the messages are this test's, not librdkafka's
      delete b;
    });
    payloads.reserve(1000);
    for (size_t i = 0; i < offsets.size(); ++i) {
      payloads.push_back(i < values.size() ? values[i]
                                           : R"({"id":"tx)" + std::to_string(offsets[i]) +
                                               R"(","card_id":"card7","amount":)" + std::to_string(offsets[i]) +
                                               "}");
      storage.push_back(std::make_unique<std::array<std::byte, 1024>>());
      auto* m = new (storage.back()->data()) rd_kafka_message_t{};
      m->payload = payloads.back().data();
      m->len = payloads.back().size();
      m->key = const_cast<char*>("card7");
      m->key_len = 5;
      m->offset = offsets[i];
      batch->messages.push_back(m);
    }
    shared->in_flight += static_cast<int64_t>(offsets.size());
    sink->on_batch(batch);
  }

  /// The model answers `offsets` with `scores`.
  void answer(const std::vector<int64_t>& offsets, const std::vector<float>& scores) {
    gateways::score_reply reply;
    for (auto o : offsets)
      reply.ids.push_back(static_cast<uint64_t>(o));
    reply.values = scores;
    reply.width = 1;
    reply.model = "fraud-model";
    sink->on_scores(reply);
  }

  void ack(size_t write, rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR) {
    sink->on_ack(out.writes.at(write).token, error);
  }
  void ack_all_from(size_t first) {
    for (size_t i = first; i < out.writes.size(); ++i)
      ack(i);
  }

  int64_t committable() const { return shared->committable.load(); }
  std::vector<int64_t> written_offsets(const std::string& topic) const {
    std::vector<int64_t> offsets;
    for (const auto& w : out.writes)
      if (w.topic == topic)
        offsets.push_back(outcome_sink::offset_of(w.token));
    return offsets;
  }
};

} // namespace

TEST_CASE("a record finishes when every write of its outcome is acknowledged") {
  partition p(config::delivery::at_least_once, /*with_results=*/true);
  p.consume({10, 11, 12}, {R"({"id":"a","card_id":"c","amount":1})", "not json", R"({"id":"b","card_id":"c","amount":2})"});
  // The bad record is a dead letter at once; the others go to the model.
  REQUIRE(p.out.requests.size() == 1);
  CHECK(p.out.requests[0].ids == std::vector<uint64_t>{10, 12});
  REQUIRE(p.out.writes.size() == 1);
  CHECK(p.out.writes[0].topic == "dead-letters");
  CHECK(p.out.writes[0].value == "not json");
  CHECK(p.out.writes[0].header("__connect.errors.offset") == "11");
  CHECK(p.out.writes[0].header("__connect.errors.partition") == "3");
  CHECK(p.committable() == -1); // nothing finished yet

  p.answer({10, 12}, {0.9f, 0.1f});
  CHECK(p.written_offsets("alerts") == std::vector<int64_t>{10}); // only 0.9 passes score >= 0.5
  CHECK(p.written_offsets("results") == std::vector<int64_t>{10, 12});
  p.ack(0); // the dead letter
  CHECK(p.committable() == -1); // 10 is not finished: the commit offset stops before it
  p.ack_all_from(1);
  CHECK(p.committable() == 13);
  CHECK(p.shared->in_flight.load() == 0);
  CHECK(p.probe.dead_lettered.value() == 1);
  CHECK(p.probe.alerted.value() == 1);
  CHECK(p.probe.results.value() == 2);
}

TEST_CASE("the commit offset stays at one unfinished record however far the window spans") {
  partition p(config::delivery::at_least_once);
  p.consume({0});
  p.answer({0}, {0.9f}); // its alert is written, never acknowledged
  for (int64_t first = 1; first < 5001; first += 500) {
    std::vector<int64_t> offsets;
    for (int64_t o = first; o < first + 500; ++o)
      offsets.push_back(o);
    p.consume(offsets);
    p.answer(offsets, std::vector<float>(offsets.size(), 0.1f)); // no alert: finished at once
  }
  CHECK(p.shared->in_flight.load() == 1); // one record unfinished...
  CHECK(p.committable() == -1);           // ...holds the whole span back, and the source pauses on it
  CHECK(window_held(p.shared->in_flight.load(), p.committable(), 0, 5001) == 5001);
  p.ack(0);
  CHECK(p.committable() == 5001);
}

TEST_CASE("a retriable write failure is written again with growing backoff, the same outcome each time") {
  partition p(config::delivery::at_least_once);
  p.consume({5});
  p.answer({5}, {0.7f});
  REQUIRE(p.out.writes.size() == 1);
  const auto first_alert = p.out.writes[0].value;
  p.ack(0, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
  REQUIRE(p.out.retries.size() == 1);
  CHECK(p.out.retries[0].first == std::chrono::milliseconds(100));
  p.out.clock_ms += 100;
  p.sink->retry(p.out.retries[0].second);
  p.ack(1, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  REQUIRE(p.out.retries.size() == 2);
  CHECK(p.out.retries[1].first == std::chrono::milliseconds(200));
  p.sink->retry(p.out.retries[1].second);
  REQUIRE(p.out.writes.size() == 3);
  CHECK(p.out.writes[2].value == first_alert); // the alert's id and time do not change on retry
  CHECK(p.committable() == -1);
  p.ack(2);
  CHECK(p.committable() == 6);
  CHECK(p.probe.produce_retries.value() == 2);
  CHECK_FALSE(p.health.stopped());
}

TEST_CASE("an alert Kafka refuses for good becomes a dead letter saying why") {
  for (bool at_once : {false, true}) { // refused by the broker, or not even queued
    partition p(config::delivery::at_least_once);
    if (at_once)
      p.out.refuse_at_once["alerts"] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    p.consume({8});
    p.answer({8}, {0.8f});
    if (!at_once)
      p.ack(0, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    REQUIRE(p.written_offsets("dead-letters") == std::vector<int64_t>{8});
    const auto& letter = p.out.writes.back();
    CHECK(letter.header("__connect.errors.exception.class.name") == "inflow.errors.output_refused");
    CHECK(letter.header("__connect.errors.exception.message").find("alert to alerts refused") == 0);
    CHECK(p.committable() == -1);
    p.ack(p.out.writes.size() - 1);
    CHECK(p.committable() == 9);
    CHECK_FALSE(p.health.stopped());
  }
}

TEST_CASE("a dead letter Kafka refuses for good stops the pipeline, or is skipped when on_unwritable says so") {
  SECTION("stop (the default)") {
    partition p(config::delivery::at_least_once);
    p.consume({20, 21}, {"bad", "bad"});
    p.ack(0, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    p.ack(1);
    CHECK(p.health.stopped());
    CHECK(p.probe.stopped.value() == 1);
    const auto problem = p.health.problem();
    CHECK(problem.find("transactions partition 3 offset 20") != std::string::npos);
    CHECK(problem.find("on_unwritable: skip") != std::string::npos);
    CHECK(p.committable() == -1); // nothing past the unwritable record is committed
  }
  SECTION("skip") {
    partition p(config::delivery::at_least_once, false, /*skip_unwritable=*/true);
    p.consume({20, 21}, {"bad", "bad"});
    p.ack(0, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    p.ack(1);
    CHECK_FALSE(p.health.stopped());
    CHECK(p.probe.unwritable.value() == 1);
    CHECK(p.probe.dead_lettered.value() == 1);
    CHECK(p.committable() == 22);
  }
}

TEST_CASE("a fatal producer error stops the pipeline with the producer's reason") {
  partition p(config::delivery::at_least_once);
  p.consume({1});
  p.answer({1}, {0.9f});
  p.ack(0, RD_KAFKA_RESP_ERR__FATAL);
  CHECK(p.health.stopped());
  CHECK(p.health.problem().find("fenced by a newer instance") != std::string::npos);
  CHECK(p.out.retries.empty());
  CHECK(p.committable() == -1);
}

TEST_CASE("under exactly_once a fatal producer error leaves the record to be read again, the pipeline running") {
  partition p(config::delivery::exactly_once);
  p.consume({1});
  p.answer({1}, {0.9f});
  p.ack(0, RD_KAFKA_RESP_ERR__FENCED); // the source replaces the producer and re-reads from the commit
  CHECK_FALSE(p.health.stopped());
  CHECK(p.out.retries.empty());
  CHECK(p.committable() == -1);
}

TEST_CASE("a model error dead-letters the records it covers") {
  partition p(config::delivery::at_least_once);
  p.consume({0, 1});
  auto reply = gateways::failed_reply({0, 1}, gateways::failure::unauthorized, "HTTP 401 from the provider");
  p.sink->on_scores(reply);
  REQUIRE(p.written_offsets("dead-letters") == std::vector<int64_t>{0, 1});
  CHECK(p.out.writes[0].header("__connect.errors.exception.class.name") == "inflow.errors.model_failed");
  CHECK(p.out.writes[0].header("__connect.errors.exception.message") == "HTTP 401 from the provider");
  CHECK(p.out.writes[0].header("inflow.model.failure") == "unauthorized");
}

TEST_CASE("ordered delivery writes a partition's outcomes in offset order whatever order the model answers in") {
  partition p(config::delivery::ordered, /*with_results=*/true);
  p.consume({0, 1, 2, 3});
  p.answer({3}, {0.1f});
  p.answer({1, 2}, {0.1f, 0.1f});
  CHECK(p.out.writes.empty()); // 0 is undecided: nothing may overtake it
  p.answer({0}, {0.1f});
  CHECK(p.written_offsets("results") == std::vector<int64_t>{0, 1, 2, 3});
  p.ack(2);
  p.ack(3);
  CHECK(p.committable() == -1); // finished in offset order, too
  p.ack(0);
  p.ack(1);
  CHECK(p.committable() == 4);
}

TEST_CASE("ordered delivery writes a failed write and every later one again, in order") {
  partition p(config::delivery::ordered, /*with_results=*/true);
  p.consume({0, 1, 2});
  p.answer({0, 1, 2}, {0.1f, 0.1f, 0.1f});
  REQUIRE(p.written_offsets("results") == std::vector<int64_t>{0, 1, 2});
  p.ack(0);
  p.ack(1, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT); // 2 may already be written: it must be written after 1 again
  REQUIRE(p.out.rewinds.size() == 1);
  p.consume({3});
  p.answer({3}, {0.1f});
  CHECK(p.out.writes.size() == 3); // held while rewinding
  p.sink->rewind();                // 2's write is still outstanding: the rewind waits for it
  CHECK(p.out.writes.size() == 3);
  REQUIRE(p.out.rewinds.size() == 2);
  p.ack(2);
  p.sink->rewind();
  CHECK(p.written_offsets("results") == std::vector<int64_t>{0, 1, 2, 1, 2, 3});
  CHECK(p.committable() == 1);
  p.ack_all_from(3);
  CHECK(p.committable() == 4);
}

TEST_CASE("exactly_once: a hold stops issuing writes and says how far they are issued") {
  partition p(config::delivery::exactly_once, /*with_results=*/true);
  p.consume({0, 1});
  p.answer({0}, {0.1f});
  p.sink->hold(7);
  CHECK(p.shared->held_epoch.load() == 7);
  CHECK(p.shared->issued_end.load() == 1); // 0 is issued; 1 is not decided
  p.answer({1}, {0.1f});
  CHECK(p.written_offsets("results") == std::vector<int64_t>{0});
  p.sink->release();
  CHECK(p.written_offsets("results") == std::vector<int64_t>{0, 1});
}

TEST_CASE("records whose schema the registry does not give are held, not dead-lettered, until it answers") {
  auto away = std::make_shared<bool>(true);
  partition p(config::delivery::at_least_once, false, false, away);
  p.consume({0, 1});
  CHECK(p.out.requests.empty());
  CHECK(p.out.writes.empty()); // no dead letter
  REQUIRE(p.out.schema_retries.size() == 1);
  CHECK(p.out.schema_retries[0] == std::chrono::milliseconds(250));
  p.sink->retry_schemas(); // still away: the pause doubles
  REQUIRE(p.out.schema_retries.size() == 2);
  CHECK(p.out.schema_retries[1] == std::chrono::milliseconds(500));
  p.consume({2}); // behind held records, a record waits its turn
  CHECK(p.out.requests.empty());
  CHECK(p.committable() < 0);

  *away = false;
  p.sink->retry_schemas();
  CHECK(p.out.schema_retries.size() == 2); // nothing held: no more timers
  REQUIRE(p.out.requests.size() == 1);
  CHECK(p.out.requests[0].ids == std::vector<uint64_t>{0, 1, 2});
  p.answer({0, 1, 2}, {0.1f, 0.2f, 0.3f});
  CHECK(p.committable() == 3);
  CHECK(p.written_offsets("dead-letters").empty());

  p.consume({3}); // the registry answers: records go straight on
  CHECK(p.out.requests.size() == 2);
}
