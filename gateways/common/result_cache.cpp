#include "gateways/common/result_cache.hpp"

#include "gateways/common/sigv4.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <map>

namespace inflow::gateways {

namespace {

constexpr char values_tag = 'v';
constexpr char text_tag = 't';
constexpr char saving_tag = 's'; ///< then two floats (call share, cost), then a tagged answer

bool producer_only(const std::string& key) {
  return key == "transactional.id" || key == "enable.idempotence";
}

} // namespace

std::string result_cache::encode(const entry& e) {
  std::string out(1, saving_tag);
  out.append(reinterpret_cast<const char*>(&e.call_share), sizeof(float));
  out.append(reinterpret_cast<const char*>(&e.cost_micro_usd), sizeof(float));
  out += e.values.empty() ? text_tag : values_tag;
  if (e.values.empty())
    out += e.text;
  else
    out.append(reinterpret_cast<const char*>(e.values.data()), e.values.size() * sizeof(float));
  return out;
}

std::optional<result_cache::entry> result_cache::decode(std::string_view value) {
  entry e;
  if (!value.empty() && value[0] == saving_tag) { // older entries have no savings: they count none
    if (value.size() < 1 + 2 * sizeof(float))
      return std::nullopt;
    std::memcpy(&e.call_share, value.data() + 1, sizeof(float));
    std::memcpy(&e.cost_micro_usd, value.data() + 1 + sizeof(float), sizeof(float));
    value.remove_prefix(1 + 2 * sizeof(float));
  }
  if (value.empty())
    return std::nullopt;
  auto body = value.substr(1);
  if (value[0] == text_tag) {
    e.text = std::string(body);
    return e;
  }
  if (value[0] != values_tag || body.empty() || body.size() % sizeof(float) != 0)
    return std::nullopt;
  e.values.resize(body.size() / sizeof(float));
  std::memcpy(e.values.data(), body.data(), body.size());
  return e;
}

result_cache::result_cache(const kafka::properties& kafka, std::string topic, size_t max_entries, std::string scope)
    : topic_(std::move(topic)), max_entries_(max_entries), scope_(std::move(scope)),
      producer_(kafka, kafka::properties{{"client.id", "inflow-cache"}}) {
  kafka::properties consumer_props;
  for (const auto& kv : kafka)
    if (!producer_only(kv.first) && kv.first != "group.id")
      consumer_props.push_back(kv);
  consumer_ = kafka::make_handle(
    RD_KAFKA_CONSUMER, kafka::make_conf({{"client.id", "inflow-cache"}}, consumer_props,
                                        {{"group.id", "inflow-cache"}, {"enable.auto.commit", "false"},
                                         {"enable.partition.eof", "false"}}));
  if (!kafka::missing_topics(consumer_.get(), {topic_}, 10'000).empty())
    throw std::runtime_error(fmt::format("cache topic {} does not exist; create it with cleanup.policy=compact",
                                         topic_));

  // Everything cached so far first: a replay right after the start must find it.
  auto all = kafka::topic_partitions(consumer_.get(), topic_, RD_KAFKA_OFFSET_BEGINNING, 10'000);
  std::map<int32_t, int64_t> ends;
  for (int i = 0; i < all->cnt; ++i) {
    int32_t p = all->elems[i].partition;
    int64_t low = 0, high = 0;
    if (!rd_kafka_query_watermark_offsets(consumer_.get(), topic_.c_str(), p, &low, &high, 10'000) && high > low)
      ends[p] = high;
  }
  rd_kafka_assign(consumer_.get(), all.get());
  auto started = std::chrono::steady_clock::now();
  auto deadline = started + std::chrono::minutes(5);
  while (!ends.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_.get(), 200);
    if (!m)
      continue;
    if (!m->err) {
      apply(m);
      if (auto it = ends.find(m->partition); it != ends.end() && m->offset + 1 >= it->second)
        ends.erase(it);
    }
    rd_kafka_message_destroy(m);
  }
  spdlog::info("cache {}: {} answer(s) loaded in {:.1f} s{}", topic_, size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
               ends.empty() ? "" : "; the rest follows while the node runs");
  follower_ = std::thread([this] { follow(); });
}

result_cache::~result_cache() {
  stopping_ = true;
  follower_.join();
  producer_.flush(5'000);
}

void result_cache::follow() {
  while (!stopping_) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_.get(), 200);
    if (!m)
      continue;
    if (!m->err)
      apply(m);
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer_.get());
}

void result_cache::apply(const rd_kafka_message_t* m) {
  if (!m->key)
    return;
  std::string key(static_cast<const char*>(m->key), m->key_len);
  std::lock_guard<std::mutex> guard(mutex_);
  if (!m->payload) { // a tombstone
    if (auto it = index_.find(key); it != index_.end()) {
      recency_.erase(it->second.second);
      index_.erase(it);
    }
    return;
  }
  if (auto e = decode({static_cast<const char*>(m->payload), m->len}))
    keep(key, std::move(*e));
}

std::string result_cache::key_of(const float* row, size_t width) const {
  return sigv4::sha256_hex(scope_ + '\0' + std::string(reinterpret_cast<const char*>(row), width * sizeof(float)));
}

std::string result_cache::key_of(const std::string& text) const {
  return sigv4::sha256_hex(scope_ + '\0' + text);
}

std::optional<result_cache::entry> result_cache::find(const std::string& key) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto it = index_.find(key);
  if (it == index_.end())
    return std::nullopt;
  recency_.splice(recency_.begin(), recency_, it->second.second);
  return it->second.first;
}

void result_cache::keep(const std::string& key, entry e) {
  if (auto it = index_.find(key); it != index_.end()) {
    it->second.first = std::move(e);
    recency_.splice(recency_.begin(), recency_, it->second.second);
    return;
  }
  recency_.push_front(key);
  index_.emplace(key, std::pair{std::move(e), recency_.begin()});
  while (index_.size() > max_entries_) {
    index_.erase(recency_.back());
    recency_.pop_back();
  }
}

rd_kafka_resp_err_t result_cache::store(const std::string& key, const entry& e,
                                        const std::shared_ptr<kafka::delivery_listener>& listener, uint64_t token) {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    keep(key, e);
  }
  return producer_.produce(topic_, key, encode(e), {}, listener, token);
}

size_t result_cache::size() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return index_.size();
}

} // namespace inflow::gateways
