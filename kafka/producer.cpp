#include "kafka/producer.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <stdexcept>

namespace inflow::kafka {

namespace {

struct pending_delivery {
  std::shared_ptr<delivery_listener> listener;
  uint64_t token;
};

} // namespace

producer::producer(const properties& user, const properties& overrides) {
  // 1 ms: an alert waits at most that long for others to share its request. 10 s (as Kafka
  // Streams): a crashed node's open transaction blocks readers and its partitions' next owner
  // that long, unless the node comes back first and aborts it (exactly_once).
  properties defaults{{"acks", "all"},
                      {"linger.ms", "1"},
                      {"queue.buffering.max.messages", "1000000"},
                      {"transaction.timeout.ms", "10000"}};
  properties producer_props;
  for (const auto& kv : user)
    if (!is_consumer_only(kv.first))
      producer_props.push_back(kv);
  producer_props.insert(producer_props.end(), overrides.begin(), overrides.end());
  // Idempotence keeps retries from duplicating or reordering records.
  rd_kafka_conf_t* conf = make_conf(defaults, producer_props, {{"enable.idempotence", "true"}});
  rd_kafka_conf_set_dr_msg_cb(conf, &producer::on_delivery_report);
  conf_.reset(rd_kafka_conf_dup(conf)); // for renew_transactions
  open(conf);
}

void producer::open(rd_kafka_conf_t* conf) {
  rk_ = make_handle(RD_KAFKA_PRODUCER, conf);
  stop_ = false;
  delivery_thread_ = std::thread([this] {
    while (!stop_.load(std::memory_order_relaxed))
      rd_kafka_poll(rk_.get(), 50);
  });
}

void producer::close() {
  // Owners flush within their own deadlines first; what is left now is given up (and reported
  // to its listeners as purged), so that closing never waits for an unreachable Kafka.
  if (int left = rd_kafka_outq_len(rk_.get()); left > 0) {
    spdlog::warn("producer closed with {} records not acknowledged", left);
    rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  }
  stop_ = true;
  delivery_thread_.join();
  rd_kafka_poll(rk_.get(), 0);
  rk_.reset();
}

producer::~producer() {
  close();
}

void producer::on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  std::unique_ptr<pending_delivery> pending(static_cast<pending_delivery*>(msg->_private));
  if (pending && pending->listener)
    pending->listener->on_delivery(pending->token, msg->err);
}

rd_kafka_resp_err_t producer::produce(const std::string& topic, std::string_view key, std::string_view value,
                                      const std::vector<header>& headers, std::shared_ptr<delivery_listener> listener,
                                      uint64_t token, int64_t timestamp_ms) {
  auto pending = std::make_unique<pending_delivery>(pending_delivery{std::move(listener), token});
  for (int attempt = 0;; ++attempt) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size());
      for (const auto& h : headers)
        rd_kafka_header_add(hdrs, h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                            static_cast<ssize_t>(h.value.size()));
    }
    auto err = rd_kafka_producev(rk_.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                                 RD_KAFKA_V_KEY(key.data(), key.size()),
                                 RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                 RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE(pending.get()),
                                 RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      pending.release(); // owned by the delivery report now
      return err;
    }
    if (hdrs)
      rd_kafka_headers_destroy(hdrs);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      return err;
    // Backpressure from librdkafka: wait for deliveries to make room.
    if (attempt == 0)
      spdlog::debug("producer queue full, waiting for room");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

size_t producer::max_message_bytes() const {
  char value[32];
  size_t size = sizeof(value);
  if (rd_kafka_conf_get(rd_kafka_conf(rk_.get()), "message.max.bytes", value, &size) != RD_KAFKA_CONF_OK)
    return 1'000'000; // librdkafka's default
  return static_cast<size_t>(std::stoull(value));
}

rd_kafka_resp_err_t producer::fatal_error(std::string* reason) const {
  char text[512];
  auto err = rd_kafka_fatal_error(rk_.get(), text, sizeof(text));
  if (err && reason)
    *reason = text;
  return err;
}

bool producer::flush(int timeout_ms) {
  return rd_kafka_flush(rk_.get(), timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

bool producer::flush_all(const std::function<bool()>& give_up, const std::function<void(int left)>& waiting) {
  for (int second = 1; !flush(1000); ++second) {
    if (give_up())
      return false;
    if (second % 5 == 0)
      waiting(rd_kafka_outq_len(rk_.get()));
  }
  return true;
}

namespace {

/// Takes ownership of a librdkafka error; returns its text (empty for none).
std::string consume_error(rd_kafka_error_t* error) {
  if (!error)
    return {};
  std::string text = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  return text;
}

} // namespace

void producer::begin_transactions(int timeout_ms) {
  if (auto why = consume_error(rd_kafka_init_transactions(rk_.get(), timeout_ms)); !why.empty())
    throw std::runtime_error("cannot start Kafka transactions: " + why);
  if (auto why = consume_error(rd_kafka_begin_transaction(rk_.get())); !why.empty())
    throw std::runtime_error("cannot begin a Kafka transaction: " + why);
}

void producer::renew_transactions(int timeout_ms) {
  close();
  open(rd_kafka_conf_dup(conf_.get()));
  begin_transactions(timeout_ms);
}

producer::transaction_end producer::commit_transaction(const rd_kafka_topic_partition_list_t* offsets,
                                                       const rd_kafka_consumer_group_metadata_t* metadata,
                                                       int timeout_ms, std::string& why) {
  // A retriable error (a timeout, a coordinator moving) may be retried as is; librdkafka says which.
  auto retrying = [](auto call) {
    rd_kafka_error_t* error = call();
    for (int attempt = 1; error && rd_kafka_error_is_retriable(error) && attempt < 5; ++attempt) {
      rd_kafka_error_destroy(error);
      error = call();
    }
    return error;
  };
  rd_kafka_error_t* error =
    retrying([&] { return rd_kafka_send_offsets_to_transaction(rk_.get(), offsets, metadata, timeout_ms); });
  if (!error)
    error = retrying([&] { return rd_kafka_commit_transaction(rk_.get(), timeout_ms); });
  if (!error) {
    why = consume_error(rd_kafka_begin_transaction(rk_.get()));
    return why.empty() ? transaction_end::committed : transaction_end::fatal;
  }
  const bool fatal = rd_kafka_error_is_fatal(error);
  why = consume_error(error);
  return fatal ? transaction_end::fatal : transaction_end::must_abort;
}

bool producer::abort_transaction(int timeout_ms, std::string& why) {
  why = consume_error(rd_kafka_abort_transaction(rk_.get(), timeout_ms));
  if (why.empty())
    why = consume_error(rd_kafka_begin_transaction(rk_.get()));
  return why.empty();
}

} // namespace inflow::kafka
