// `inflow redrive`: dead letters back to the topic they came from, once their cause is fixed
// (a provider outage, an expired credential). Reads the dead-letter topic from where the last
// run stopped up to its end at the start of this run, writes each matching letter's key and
// value unchanged to its source topic, and commits how far it got only once Kafka has every
// record it wrote: a run that fails or is stopped can be started again and loses nothing.
#include "app/commands.hpp"
#include "app/common.hpp"
#include "kafka/client.hpp"
#include "kafka/producer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>

namespace inflow::app {

namespace {

class delivery_count : public kafka::delivery_listener {
public:
  void on_delivery(uint64_t, rd_kafka_resp_err_t error) override {
    if (error && failed.fetch_add(1) == 0)
      spdlog::error("redrive: a record was not written: {}", rd_kafka_err2str(error));
  }
  std::atomic<int64_t> failed{0};
};

std::optional<std::string> header_of(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_message_headers(m, &headers) || rd_kafka_header_get_last(headers, name, &value, &size))
    return std::nullopt;
  return std::string(static_cast<const char*>(value), size);
}

struct tally {
  int64_t read = 0, written = 0, other_class = 0, other_reason = 0, other_failure = 0, truncated = 0, no_source = 0;
  std::string skipped() const {
    return fmt::format("{} of another class, {} with another reason, {} of another model failure, {} cut to fit the "
                       "dead-letter topic, {} without a source topic",
                       other_class, other_reason, other_failure, truncated, no_source);
  }
};

} // namespace

int run_redrive(const redrive_options& o) {
  kafka::properties props{{"bootstrap.servers", o.bootstrap}};
  auto consumer = kafka::make_handle(
    RD_KAFKA_CONSUMER, kafka::make_conf({{"client.id", "inflow-redrive"}}, props,
                                        {{"group.id", o.group}, {"enable.auto.commit", "false"},
                                         {"enable.partition.eof", "false"}, {"auto.offset.reset", "earliest"}}));
  std::optional<kafka::producer> producer;
  if (!o.dry_run)
    producer.emplace(props, kafka::properties{{"client.id", "inflow-redrive"}});

  // Where to start (the group's last commit) and where to stop (the end as of now), per partition.
  kafka::partition_list assignment;
  try {
    assignment = kafka::topic_partitions(consumer.get(), o.from, RD_KAFKA_OFFSET_INVALID, 10'000);
  } catch (const std::runtime_error& e) {
    fmt::print(stderr, "redrive: {}\n", e.what());
    return unavailable;
  }
  if (auto e = rd_kafka_committed(consumer.get(), assignment.get(), 10'000)) {
    fmt::print(stderr, "redrive: cannot read group {}'s offsets: {}\n", o.group, rd_kafka_err2str(e));
    return unavailable;
  }
  std::map<int32_t, int64_t> next, end; // next offset to read, first offset not to read
  int64_t total = 0;
  for (int i = 0; i < assignment->cnt; ++i) {
    auto& p = assignment->elems[i];
    int64_t low = 0, high = 0;
    if (auto e = rd_kafka_query_watermark_offsets(consumer.get(), o.from.c_str(), p.partition, &low, &high, 10'000)) {
      fmt::print(stderr, "redrive: cannot read the end of {}[{}]: {}\n", o.from, p.partition, rd_kafka_err2str(e));
      return unavailable;
    }
    next[p.partition] = p.offset >= 0 ? std::max(p.offset, low) : low;
    end[p.partition] = high;
    p.offset = next[p.partition];
    total += std::max<int64_t>(0, high - next[p.partition]);
  }
  rd_kafka_assign(consumer.get(), assignment.get());

  auto listener = std::make_shared<delivery_count>();
  tally t;
  auto unfinished = [&] {
    for (const auto& [p, offset] : next)
      if (offset < end[p])
        return true;
    return false;
  };
  auto last_progress = std::chrono::steady_clock::now();
  bool stopped = false;
  while (unfinished() && !(stopped = wait_for_stop(std::chrono::milliseconds(0)))) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 200);
    if (!m)
      continue;
    if (m->err) {
      spdlog::warn("redrive: {}", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->offset >= end[m->partition]) { // written after this run started: the next run's
      rd_kafka_message_destroy(m);
      continue;
    }
    ++t.read;
    auto cls = header_of(m, "__connect.errors.exception.class.name").value_or("");
    auto why = header_of(m, "__connect.errors.exception.message").value_or("");
    auto source = o.to.empty() ? header_of(m, "__connect.errors.topic").value_or("") : o.to;
    if (o.error_class != "any" && cls != o.error_class)
      ++t.other_class;
    else if (!o.reason.empty() && why.find(o.reason) == std::string::npos)
      ++t.other_reason;
    else if (!o.failures.empty() && std::find(o.failures.begin(), o.failures.end(),
                                              header_of(m, "inflow.model.failure").value_or("")) == o.failures.end())
      ++t.other_failure;
    else if (header_of(m, "inflow.value.truncated_from_bytes") || header_of(m, "inflow.key.truncated_from_bytes"))
      ++t.truncated; // not the record any more: writing it back would score something else
    else if (source.empty())
      ++t.no_source;
    else {
      ++t.written;
      if (producer) {
        std::string_view key(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
        std::string_view value(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
        std::vector<kafka::header> headers{{"inflow.redriven_from", fmt::format("{}/{}/{}", o.from, m->partition, m->offset)}};
        if (auto e = producer->produce(source, key, value, headers, listener, static_cast<uint64_t>(t.read))) {
          fmt::print(stderr, "redrive: cannot write to {}: {}; nothing committed, run again once fixed\n", source,
                     rd_kafka_err2str(e));
          rd_kafka_message_destroy(m);
          return unavailable;
        }
      }
    }
    next[m->partition] = m->offset + 1;
    rd_kafka_message_destroy(m);
    if (std::chrono::steady_clock::now() - last_progress >= std::chrono::seconds(1)) {
      last_progress = std::chrono::steady_clock::now();
      fmt::print(stderr, "redrive: read {} of {}, {} {}\n", t.read, total, o.dry_run ? "would write" : "wrote",
                 t.written);
    }
  }
  // A stop that ended the reading does not end this wait: only one made during it does.
  auto give_up = [&] {
    if (!wait_for_stop(std::chrono::milliseconds(0)))
      return false;
    return stopped = true;
  };
  auto waiting = [](int left) {
    fmt::print(stderr, "redrive: waiting for Kafka to acknowledge {} record(s) (Ctrl-C gives up)\n", left);
  };
  if (producer && (!producer->flush_all(give_up, waiting) || listener->failed.load() > 0)) {
    fmt::print(stderr, "redrive: {} record(s) were not acknowledged; nothing committed, run again (records already "
                       "written will then be written twice)\n",
               listener->failed.load() + rd_kafka_outq_len(producer->raw()));
    return tempfail;
  }
  if (!o.dry_run) {
    kafka::partition_list done(rd_kafka_topic_partition_list_new(static_cast<int>(next.size())));
    for (const auto& [p, offset] : next)
      rd_kafka_topic_partition_list_add(done.get(), o.from.c_str(), p)->offset = offset;
    if (auto e = rd_kafka_commit(consumer.get(), done.get(), 0)) {
      fmt::print(stderr, "redrive: records written, but group {}'s offsets not committed: {}; a new run writes "
                         "them again\n",
                 o.group, rd_kafka_err2str(e));
      return tempfail;
    }
  }
  fmt::print("redrive: {} {} of {} dead letter(s) from {} to {}; skipped {}{}\n", o.dry_run ? "would write" : "wrote",
             t.written, t.read, o.from, o.to.empty() ? "their source topics" : o.to, t.skipped(),
             stopped ? " (stopped early: run again for the rest)" : "");
  rd_kafka_consumer_close(consumer.get());
  return stopped ? tempfail : ok;
}

} // namespace inflow::app
