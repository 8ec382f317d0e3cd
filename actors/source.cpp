#include "actors/source.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace inflow::actors {

namespace {

using clock = std::chrono::steady_clock;

kafka::partition_list make_list(const std::string& topic, const std::vector<int32_t>& partitions) {
  kafka::partition_list list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (int32_t p : partitions)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  return list;
}

} // namespace

source::source(source_options options, spawn_fn spawn, pipeline_probe& probe, pipeline_health& health)
  : options_(std::move(options)), spawn_(std::move(spawn)), probe_(probe), health_(health) {
  // Eager, not cooperative-sticky: librdkafka before 2.6.1 loses its whole assignment when a
  // commit meets the second join of a cooperative rebalance (librdkafka #4059), which replays
  // every uncommitted record of the partitions it kept (docs/KAFKA.md). An eager rebalance
  // revokes everything, and we drain and commit inside the callback, before the rejoin.
  // Without the queued.* settings, librdkafka stalls fetching about once a second (KAFKA-NOTES).
  // A fetch response's buffer is freed only when the last record read from it is finished: at
  // 1 MiB a response (50 MiB by default) memory follows the records in flight, and a long drain's
  // RSS stays flat (bench/NOTES.md), at the same throughput. 100 ms, not 500, for an empty fetch
  // to wait: a partition resumed after backpressure waits for the fetch in flight (docs/KAFKA.md).
  kafka::properties defaults{{"partition.assignment.strategy", "roundrobin"},
                             {"auto.offset.reset", "earliest"},
                             {"queued.min.messages", "10000000"},
                             {"queued.max.messages.kbytes", "2097151"},
                             {"fetch.max.bytes", "1048576"},
                             {"fetch.wait.max.ms", "100"},
                             {"client.id", "inflow-" + options_.pipeline}};
  // At-least-once: we commit explicitly, and only finished records.
  kafka::properties forced{{"enable.auto.commit", "false"},
                           {"enable.auto.offset.store", "false"},
                           {"enable.partition.eof", "false"}};
  rd_kafka_conf_t* conf = kafka::make_conf(defaults, options_.kafka, forced);
  rd_kafka_conf_set_rebalance_cb(conf, &source::on_rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, &source::on_commit);
  rd_kafka_conf_set_error_cb(conf, &source::on_error);
  rd_kafka_conf_set_opaque(conf, this);
  rk_ = kafka::make_handle(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(rk_.get());
}

source::~source() {
  stop();
}

void source::start() {
  auto topics = make_list(options_.topic, {RD_KAFKA_PARTITION_UA});
  if (auto err = rd_kafka_subscribe(rk_.get(), topics.get()))
    throw std::runtime_error(std::string("cannot subscribe to ") + options_.topic + ": " + rd_kafka_err2str(err));
  thread_ = std::thread([this] {
    run();
    finished_.set_value();
  });
}

void source::request_stop(clock::time_point deadline) {
  int64_t unset = 0;
  stop_deadline_.compare_exchange_strong(unset, deadline.time_since_epoch().count());
  stopping_ = true;
}

bool source::stop() {
  request_stop(clock::now() + std::chrono::milliseconds(options_.drain_timeout_ms));
  if (!thread_.joinable())
    return clean_ && !abandoned_;
  // librdkafka may take seconds more to let go of an unreachable Kafka; past the deadline
  // (and a moment's grace) the thread is left to it and the caller told so.
  auto deadline = clock::time_point(clock::duration(stop_deadline_.load())) + std::chrono::milliseconds(500);
  if (finished_.get_future().wait_until(deadline) == std::future_status::timeout) {
    spdlog::warn("{}: librdkafka has not let go of the consumer by node.drain_timeout_ms; not waiting for it",
                 options_.pipeline);
    thread_.detach();
    abandoned_ = true;
    return false;
  }
  thread_.join();
  return clean_;
}

int source::remaining_ms(int64_t budget_ms) const {
  auto end = clock::now() + std::chrono::milliseconds(budget_ms);
  if (int64_t deadline = stop_deadline_.load())
    end = std::min(end, clock::time_point(clock::duration(deadline)));
  return static_cast<int>(
    std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(end - clock::now()).count()));
}

std::map<int32_t, int64_t> source::partitions() const {
  std::lock_guard<std::mutex> guard(snapshot_mutex_);
  std::map<int32_t, int64_t> out;
  for (const auto& [p, shared] : snapshot_)
    out[p] = shared->in_flight.load();
  return out;
}

void source::on_commit(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    auto* self = static_cast<source*>(opaque); // the conf's opaque, as for every callback
    self->probe_.commit_failures.inc();
    // Served on the consumer thread (by poll): forget these offsets so that the
    // next commit, or the one on shutdown, sends them again.
    for (int i = 0; parts && i < parts->cnt; ++i)
      if (auto it = self->assigned_.find(parts->elems[i].partition); it != self->assigned_.end())
        it->second.committed = -1;
    spdlog::warn("{}: offset commit failed: {} (the next commit retries it)", self->options_.pipeline,
                 rd_kafka_err2str(err));
  }
}

void source::on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  // Served on the consumer thread (by poll). librdkafka reconnects by itself. A lost
  // connection makes us doubt Kafka is reachable; check_reachable settles the doubt.
  // (librdkafka's ALL_BROKERS_DOWN alone is not enough: it fires once, on one broker's
  // transition, and not at all when another broker was still connecting.)
  auto* self = static_cast<source*>(opaque);
  auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__TRANSPORT || code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
      code == RD_KAFKA_RESP_ERR__RESOLVE) {
    if (!self->doubt_since_)
      self->doubt_since_ = std::chrono::steady_clock::now();
    self->unreachable_reason_ = reason;
  }
  if (code != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) // reported by check_reachable instead
    spdlog::warn("{}: consumer: {}: {}", self->options_.pipeline, rd_kafka_err2name(code), reason);
}

std::string source::check_reachable() {
  if (!doubt_since_)
    return {};
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk_.get(), 0, nullptr, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_metadata_destroy(md);
    if (unreachable_reported_)
      spdlog::info("{}: Kafka is reachable again", options_.pipeline);
    doubt_since_.reset();
    unreachable_reported_ = false;
    return {};
  }
  if (!unreachable_reported_) {
    spdlog::error("{}: cannot reach Kafka: {}; retrying (check the brokers and kafka.bootstrap.servers)",
                  options_.pipeline, unreachable_reason_);
    unreachable_reported_ = true;
  }
  auto down = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - *doubt_since_);
  return fmt::format("cannot reach Kafka for {} s ({})", down.count(), unreachable_reason_);
}

void source::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque) {
  auto* self = static_cast<source*>(opaque);
  self->joined_ = true;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
    self->assign(parts);
  else
    self->revoke(parts, rd_kafka_assignment_lost(rk));
}

void source::assign(rd_kafka_topic_partition_list_t* parts) {
  // Ask where the group left off, so that records lost to retention can be counted.
  kafka::partition_list committed(rd_kafka_topic_partition_list_copy(parts));
  if (rd_kafka_committed(rk_.get(), committed.get(), 10'000))
    spdlog::warn("{}: could not read committed offsets", options_.pipeline);
  for (int i = 0; i < parts->cnt; ++i) {
    int32_t p = parts->elems[i].partition;
    auto shared = std::make_shared<partition_shared>();
    shared->partition = p;
    int64_t start = committed->elems[i].offset; // negative: no commit yet
    assigned_[p] = assigned{shared, spawn_(shared), false, start, start};
    std::lock_guard<std::mutex> guard(snapshot_mutex_);
    snapshot_[p] = shared;
  }
  spdlog::info("{}: assigned {} partition(s) of {}", options_.pipeline, parts->cnt, options_.topic);
  probe_.partitions_assigned.set(static_cast<int64_t>(assigned_.size()));
  if (cooperative()) {
    if (auto* error = rd_kafka_incremental_assign(rk_.get(), parts)) {
      spdlog::error("{}: assign failed: {}", options_.pipeline, rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  } else if (auto err = rd_kafka_assign(rk_.get(), parts)) {
    spdlog::error("{}: assign failed: {}", options_.pipeline, rd_kafka_err2str(err));
  }
  // librdkafka keeps a partition's pause across losing and regaining it; ours starts unpaused
  // (found on real Kafka: partitions paused when a broker died stayed paused for good).
  rd_kafka_resume_partitions(rk_.get(), parts);
}

void source::revoke(rd_kafka_topic_partition_list_t* parts, bool lost) {
  std::vector<int32_t> revoked;
  for (int i = 0; i < parts->cnt; ++i)
    if (assigned_.count(parts->elems[i].partition))
      revoked.push_back(parts->elems[i].partition);
  if (lost) {
    // Another member may own these already: committing could move its offsets.
    spdlog::warn("{}: {} partition(s) lost; abandoning their in-flight records uncommitted", options_.pipeline,
                 revoked.size());
    if (options_.transactions && !revoked.empty()) {
      drop(revoked); // before the abort: their outcomes must not reach the next transaction
      abort_transaction("partitions lost");
    }
  } else if (!revoked.empty()) {
    spdlog::info("{}: {} partition(s) revoked; draining", options_.pipeline, revoked.size());
    drain(revoked);
    commit(revoked, true);
  }
  drop(revoked);
  unassign(parts);
}

void source::drop(const std::vector<int32_t>& partitions) {
  for (int32_t p : partitions) {
    auto it = assigned_.find(p);
    if (it == assigned_.end())
      continue;
    if (it->second.paused)
      probe_.partitions_paused.add(-1);
    it->second.actor->stop();
    assigned_.erase(it);
    std::lock_guard<std::mutex> guard(snapshot_mutex_);
    snapshot_.erase(p);
  }
  probe_.partitions_assigned.set(static_cast<int64_t>(assigned_.size()));
}

void source::unassign(rd_kafka_topic_partition_list_t* parts) {
  if (cooperative()) {
    if (auto* error = rd_kafka_incremental_unassign(rk_.get(), parts)) {
      spdlog::error("{}: unassign failed: {}", options_.pipeline, rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(rk_.get(), nullptr);
  }
}

bool source::cooperative() const {
  const char* protocol = rd_kafka_rebalance_protocol(rk_.get()); // none while leaving the group
  return protocol && strcmp(protocol, "COOPERATIVE") == 0;
}

void source::run() {
  std::vector<rd_kafka_message_t*> polled;
  polled.reserve(4096);
  auto last_commit = clock::now(), last_lag = clock::now();
  const auto commit_every = std::chrono::milliseconds(options_.commit_interval_ms);
  while (!stopping_) {
    polled.clear();
    // Wait briefly for the first record, then take what is already there.
    for (auto* m = rd_kafka_consumer_poll(rk_.get(), 20); m; m = rd_kafka_consumer_poll(rk_.get(), 0)) {
      polled.push_back(m);
      if (polled.size() >= 4096)
        break;
    }
    dispatch(polled);
    apply_backpressure();
    if (committing_.valid() && committing_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
      settle_transaction();
    auto now = clock::now();
    if (now - last_commit >= commit_every) {
      commit(all_partitions(), false);
      last_commit = now;
    }
    if (now - last_lag >= std::chrono::seconds(1)) {
      update_lag();
      check_progress();
      last_lag = now;
    }
  }
  // Shutdown: finish what is in flight, commit it, then leave the group, all by the deadline.
  await_first_assignment();
  auto partitions = all_partitions();
  spdlog::info("{}: stopping; draining {} partition(s)", options_.pipeline, partitions.size());
  clean_ = drain(partitions) && commit(partitions, true);
  if (!close_consumer()) {
    spdlog::warn("{}: Kafka did not answer our leaving the group in time; the group notices within "
                 "session.timeout.ms",
                 options_.pipeline);
    clean_ = false;
    drop(all_partitions());
    if (!release_if_unsafe_to_destroy())
      rd_kafka_destroy_flags(rk_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE); // or it would close and wait
    return;
  }
  drop(all_partitions());
  release_if_unsafe_to_destroy();
}

// librdkafka 2.0.2 aborts the process when it destroys a cooperative-sticky consumer that has
// joined its group but not yet had its first assignment (librdkafka #4312, fixed in 2.2). Once the
// group's protocol is chosen that assignment is on its way: let it arrive, then leave as ever.
void source::await_first_assignment() {
  if (joined_ || !cooperative())
    return;
  std::vector<rd_kafka_message_t*> polled;
  while (!joined_ && remaining_ms(options_.drain_timeout_ms / 4) > 0)
    if (auto* m = rd_kafka_consumer_poll(rk_.get(), 50))
      polled.push_back(m);
  dispatch(polled);
}

// If the assignment never came (Kafka gone mid-join), the handle is never destroyed: its
// memory goes with the process, which is ending.
bool source::release_if_unsafe_to_destroy() {
  if (joined_)
    return false;
  for (const auto& [key, value] : options_.kafka)
    if (key == "partition.assignment.strategy" && value.find("cooperative-sticky") != std::string::npos) {
      (void)rk_.release();
      spdlog::debug("{}: consumer left undestroyed to the process's exit (librdkafka #4312)", options_.pipeline);
      return true;
    }
  return false;
}

bool source::close_consumer() {
  // librdkafka's own close waits for Kafka as long as it takes; this one stops at the deadline.
  kafka::queue queue(rd_kafka_queue_new(rk_.get()));
  if (auto* error = rd_kafka_consumer_close_queue(rk_.get(), queue.get())) {
    spdlog::warn("{}: consumer close: {}", options_.pipeline, rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return false;
  }
  while (!rd_kafka_consumer_closed(rk_.get())) {
    int ms = remaining_ms(options_.drain_timeout_ms);
    if (ms == 0)
      return false;
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue.get(), std::min(ms, 100));
    if (event && rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE) // the revoke, handled as ever
      on_rebalance(rk_.get(), rd_kafka_event_error(event), rd_kafka_event_topic_partition_list(event), this);
    if (event)
      rd_kafka_event_destroy(event);
  }
  return true;
}

void source::dispatch(std::vector<rd_kafka_message_t*>& polled) {
  std::map<int32_t, std::shared_ptr<record_batch>> batches;
  const int64_t polled_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  for (auto* m : polled) {
    if (m->err) {
      spdlog::warn("{}: consumer: {}", options_.pipeline, rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    auto it = assigned_.find(m->partition);
    if (it == assigned_.end()) {
      rd_kafka_message_destroy(m); // not ours any more; its owner will read it
      continue;
    }
    auto& batch = batches[m->partition];
    if (!batch) {
      batch = std::make_shared<record_batch>();
      batch->polled_ms = polled_ms;
    }
    batch->messages.push_back(m);
  }
  for (auto& [p, batch] : batches) {
    auto& a = assigned_[p];
    count_lost_records(p, a, batch->messages.front()->offset);
    if (a.first_offset < 0)
      a.first_offset = batch->messages.front()->offset;
    a.next_offset = batch->messages.back()->offset + 1;
    auto n = static_cast<int64_t>(batch->messages.size());
    a.shared->in_flight += n;
    probe_.consumed.inc(static_cast<uint64_t>(n));
    a.actor->deliver(std::move(batch));
  }
}

void source::count_lost_records(int32_t partition, assigned& a, int64_t first_offset) {
  // Gaps are normal (compaction, transaction markers); a gap that starts below
  // the broker's log start means records were deleted before we read them.
  // librdkafka resets such a position silently (it only logs), so count here.
  if (a.next_offset < 0 || first_offset <= a.next_offset)
    return;
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(rk_.get(), options_.topic.c_str(), partition, &lo, &hi) || lo <= a.next_offset)
    return;
  int64_t lost = std::min(first_offset, lo) - a.next_offset;
  probe_.lost_to_retention.inc(static_cast<uint64_t>(lost));
  spdlog::warn("{}: partition {}: offsets {}..{} were deleted by the broker before we read them ({} records lost "
               "to retention; see inflow_records_lost_to_retention_total)",
               options_.pipeline, partition, a.next_offset, a.next_offset + lost - 1, lost);
}

int64_t window_held(int64_t in_flight, int64_t committable, int64_t first_offset, int64_t next_offset) {
  int64_t oldest = committable >= 0 ? committable : first_offset;
  int64_t span = oldest >= 0 && next_offset > oldest ? next_offset - oldest : 0;
  return std::max(in_flight, span);
}

int64_t source::held(const assigned& a) {
  return window_held(a.shared->in_flight.load(), a.shared->committable.load(), a.first_offset, a.next_offset);
}

void source::apply_backpressure() {
  std::vector<int32_t> pause, resume;
  int64_t total = 0;
  const bool stopped = health_.stopped(); // a stopped pipeline takes no more records
  for (auto& [p, a] : assigned_) {
    total += a.shared->in_flight.load();
    int64_t n = held(a);
    if (!a.paused && (stopped || n >= options_.max_in_flight))
      pause.push_back(p);
    else if (a.paused && !stopped && n <= options_.max_in_flight * 3 / 4) // resume while work remains: refetching takes a while
      resume.push_back(p);
  }
  probe_.in_flight.set(total);
  if (!pause.empty()) {
    auto list = make_list(options_.topic, pause);
    rd_kafka_pause_partitions(rk_.get(), list.get());
    for (int32_t p : pause)
      assigned_[p].paused = true;
    probe_.partitions_paused.add(static_cast<int64_t>(pause.size()));
    probe_.pauses.inc(pause.size());
  }
  if (!resume.empty()) {
    auto list = make_list(options_.topic, resume);
    rd_kafka_resume_partitions(rk_.get(), list.get());
    // librdkafka 2.0.2 fetches a resumed partition again only at its next
    // wake-up, up to a second later; a seek to where we are wakes it now
    // (175 k -> 630 k records/s draining a backlog). -1: its timeout is buggy.
    for (int i = 0; i < list->cnt; ++i)
      list->elems[i].offset = assigned_[list->elems[i].partition].next_offset;
    if (auto* error = rd_kafka_seek_partitions(rk_.get(), list.get(), -1)) {
      spdlog::debug("{}: seek after resume: {}", options_.pipeline, rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
    for (int32_t p : resume)
      assigned_[p].paused = false;
    probe_.partitions_paused.add(-static_cast<int64_t>(resume.size()));
  }
}

bool source::drain(const std::vector<int32_t>& partitions) {
  if (committing_.valid())
    settle_transaction(); // its release lets the held records finish
  int budget = remaining_ms(options_.drain_timeout_ms);
  if (stop_deadline_.load())
    budget = budget * 3 / 4; // a quarter stays for the commit, leaving the group and the last writes
  auto deadline = clock::now() + std::chrono::milliseconds(budget);
  auto busy = [&] {
    int64_t n = 0;
    for (int32_t p : partitions)
      if (auto it = assigned_.find(p); it != assigned_.end())
        n += it->second.shared->in_flight.load();
    return n;
  };
  while (busy() > 0 && clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (auto left = busy()) {
    spdlog::warn("{}: {} record(s) still in flight after drain_timeout_ms={}; they stay uncommitted and will be "
                 "read again",
                 options_.pipeline, left, options_.drain_timeout_ms);
    return false;
  }
  return true;
}

bool source::commit(const std::vector<int32_t>& partitions, bool sync) {
  if (options_.transactions)
    return commit_transaction(sync); // every partition's offsets go with the transaction's outcomes
  kafka::partition_list list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  std::vector<std::pair<int32_t, int64_t>> advanced;
  for (int32_t p : partitions) {
    auto it = assigned_.find(p);
    if (it == assigned_.end())
      continue;
    int64_t offset = it->second.shared->committable.load();
    if (offset >= 0 && offset > it->second.committed) { // -1: nothing finished yet
      rd_kafka_topic_partition_list_add(list.get(), options_.topic.c_str(), p)->offset = offset;
      advanced.emplace_back(p, offset);
    }
  }
  if (advanced.empty())
    return true;
  probe_.commits.inc();
  rd_kafka_resp_err_t err;
  if (sync) {
    // rd_kafka_commit(sync) would wait for Kafka indefinitely; this waits until the deadline.
    kafka::queue queue(rd_kafka_queue_new(rk_.get()));
    err = rd_kafka_commit_queue(rk_.get(), list.get(), queue.get(), nullptr, nullptr);
    if (!err) {
      rd_kafka_event_t* result = rd_kafka_queue_poll(queue.get(), remaining_ms(options_.drain_timeout_ms));
      err = result ? rd_kafka_event_error(result) : RD_KAFKA_RESP_ERR__TIMED_OUT;
      if (result)
        rd_kafka_event_destroy(result);
    }
  } else {
    err = rd_kafka_commit(rk_.get(), list.get(), 1);
  }
  if (err) {
    probe_.commit_failures.inc();
    spdlog::warn("{}: offset commit failed: {}", options_.pipeline, rd_kafka_err2str(err));
    return false;
  }
  for (auto [p, offset] : advanced)
    assigned_[p].committed = offset;
  return true;
}

bool source::hold_all() {
  const int64_t epoch = ++hold_epoch_;
  for (auto& [p, a] : assigned_)
    a.actor->hold(epoch);
  auto deadline = clock::now() + std::chrono::milliseconds(options_.drain_timeout_ms);
  for (auto& [p, a] : assigned_)
    while (a.shared->held_epoch.load() != epoch) {
      if (clock::now() >= deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  return true;
}

void source::release_all() {
  for (auto& [p, a] : assigned_)
    a.actor->release();
}

bool source::commit_transaction(bool wait) {
  if (committing_.valid() && !wait &&
      committing_.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
    return true; // the last one is still on its way
  if (committing_.valid() && !settle_transaction())
    return false;
  // While every actor holds, the open transaction contains exactly the outcomes of the
  // records below each partition's issued_end: those offsets, and no others, commit with it.
  if (!hold_all()) {
    release_all();
    spdlog::warn("{}: a partition did not pause for the transaction within drain_timeout_ms={}; committing later",
                 options_.pipeline, options_.drain_timeout_ms);
    return false;
  }
  committing_offsets_.reset(rd_kafka_topic_partition_list_new(static_cast<int>(assigned_.size())));
  for (auto& [p, a] : assigned_)
    if (int64_t end = a.shared->issued_end.load(); end > a.committed)
      rd_kafka_topic_partition_list_add(committing_offsets_.get(), options_.topic.c_str(), p)->offset = end;
  if (committing_offsets_->cnt == 0) {
    release_all();
    return true;
  }
  auto* metadata = rd_kafka_consumer_group_metadata(rk_.get());
  if (!metadata) { // the consumer is leaving its group: its offsets can no longer be committed
    release_all();
    return false;
  }
  std::shared_ptr<rd_kafka_consumer_group_metadata_t> group(metadata, rd_kafka_consumer_group_metadata_destroy);
  probe_.commits.inc();
  // Kafka takes a few round trips; meanwhile this thread goes on consuming and the actors on
  // scoring, their writes waiting in order until the release.
  committing_ = std::async(std::launch::async, [this, group, timeout = remaining_ms(30'000)] {
    transaction_outcome outcome;
    outcome.end = options_.transactions->commit_transaction(committing_offsets_.get(), group.get(), timeout,
                                                            outcome.why);
    return outcome;
  });
  return !wait || settle_transaction();
}

bool source::settle_transaction() {
  auto outcome = committing_.get();
  switch (outcome.end) {
    case kafka::producer::transaction_end::committed:
      for (int i = 0; i < committing_offsets_->cnt; ++i)
        if (auto it = assigned_.find(committing_offsets_->elems[i].partition); it != assigned_.end())
          it->second.committed = committing_offsets_->elems[i].offset;
      consecutive_aborts_ = 0;
      release_all();
      return true;
    case kafka::producer::transaction_end::must_abort:
      probe_.commit_failures.inc();
      if (++consecutive_aborts_ >= 5)
        halt(fmt::format("Kafka refused {} transactions in a row (last: {}); check the output topics' limits "
                         "and ACLs, then restart",
                         consecutive_aborts_, outcome.why));
      abort_transaction(outcome.why);
      return false;
    case kafka::producer::transaction_end::fatal:
      probe_.commit_failures.inc();
      renew_transactions(outcome.why);
      return false;
  }
  return false;
}

void source::halt(const std::string& reason) {
  if (health_.stop(reason)) {
    probe_.stopped.set(1);
    spdlog::error("{}: pipeline stopped: {}", options_.pipeline, reason);
  }
}

void source::renew_transactions(const std::string& why) {
  // Fenced: Kafka ended our transaction for outlasting transaction.timeout.ms (a broker away
  // that long), or another producer took our transactional.id. A new producer cures the first;
  // fenced again soon after, it is the second, which only the operator can cure.
  const auto now = clock::now();
  if (renewed_at_ && now - *renewed_at_ < std::chrono::minutes(1)) {
    probe_.stopped.set(1);
    health_.fail("the transactional producer was fenced twice within a minute (" + why +
                 "); if another node fenced it, give every node of the group its own node.name");
    return;
  }
  renewed_at_ = now;
  if (committing_.valid())
    committing_.wait();
  committing_ = {};
  auto partitions = all_partitions();
  auto parts = make_list(options_.topic, partitions);
  drop(partitions); // no partition actor may write while the producer is replaced
  try {
    options_.transactions->renew_transactions(remaining_ms(30'000));
  } catch (const std::exception& e) {
    probe_.stopped.set(1);
    health_.fail(std::string("the transactional producer failed for good (") + why + ") and could not be replaced: " +
                 e.what());
    return;
  }
  spdlog::warn("{}: the transactional producer failed ({}); replaced it, reading again from the committed offsets",
               options_.pipeline, why);
  if (partitions.empty() || stopping_)
    return;
  unassign(parts.get());
  assign(parts.get()); // from the committed offsets
}

void source::abort_transaction(const std::string& why) {
  // Everything written since the last commit is rolled back: read it again from the committed offsets.
  if (committing_.valid())
    committing_.wait(); // whatever it did, what follows starts again from what is committed
  committing_ = {};
  hold_all();
  std::string abort_why;
  if (!options_.transactions->abort_transaction(remaining_ms(30'000), abort_why)) {
    renew_transactions("aborting a transaction failed: " + abort_why);
    return;
  }
  spdlog::warn("{}: transaction aborted ({}); reading again from the committed offsets", options_.pipeline, why);
  auto partitions = all_partitions();
  auto parts = make_list(options_.topic, partitions);
  drop(partitions);
  if (partitions.empty() || stopping_)
    return;
  unassign(parts.get());
  assign(parts.get()); // from the committed offsets
}

void source::check_progress() {
  auto now = std::chrono::steady_clock::now();
  std::string stalled = check_reachable();
  for (auto& [p, a] : assigned_) {
    int64_t mark = a.shared->committable.load();
    if (auto stuck = a.progress.stuck_for(held(a), mark, now); stuck >= std::chrono::milliseconds(options_.stall_timeout_ms))
      stalled += fmt::format("{}partition {} stuck at offset {} for {} s with {} record(s) held",
                             stalled.empty() ? "" : "; ", p, mark >= 0 ? mark : a.first_offset,
                             std::chrono::duration_cast<std::chrono::seconds>(stuck).count(), held(a));
  }
  health_.set_stalled(std::move(stalled));
}

std::vector<int32_t> source::all_partitions() const {
  std::vector<int32_t> out;
  for (const auto& [p, a] : assigned_)
    out.push_back(p);
  return out;
}

void source::update_lag() {
  int64_t total = 0;
  for (const auto& [p, a] : assigned_) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_get_watermark_offsets(rk_.get(), options_.topic.c_str(), p, &lo, &hi) || hi < 0)
      continue;
    int64_t done = std::max({a.shared->committable.load(), a.committed, lo});
    total += std::max<int64_t>(0, hi - done);
  }
  probe_.lag.set(total);
}

} // namespace inflow::actors
