#include "events/transaction.hpp"
#include "events/json_text.hpp"

#include <fmt/format.h>
#include <msgpack.hpp>

namespace inflow::events {

std::string to_json(const transaction& tx) {
  return fmt::format(
    R"({{"id":{},"card_id":{},"ts":{},"amount":{:.2f},"currency":{},"merchant_id":{},)"
    R"("mcc":{},"country":{},"channel":{},"card_present":{},"distance_km":{:.1f},)"
    R"("secs_since_last":{:.0f},"tx_last_hour":{},"amount_avg_30d":{:.2f}}})",
    json_quoted(tx.id), json_quoted(tx.card_id), tx.ts, tx.amount, json_quoted(tx.currency),
    json_quoted(tx.merchant_id), tx.mcc, json_quoted(tx.country), json_quoted(tx.channel), tx.card_present,
    tx.distance_km, tx.secs_since_last, tx.tx_last_hour, tx.amount_avg_30d);
}

std::string to_msgpack(const transaction& tx) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(14);
  auto kv = [&](const char* key, const auto& value) {
    pk.pack(key);
    pk.pack(value);
  };
  kv("id", tx.id);
  kv("card_id", tx.card_id);
  kv("ts", tx.ts);
  kv("amount", tx.amount);
  kv("currency", tx.currency);
  kv("merchant_id", tx.merchant_id);
  kv("mcc", tx.mcc);
  kv("country", tx.country);
  kv("channel", tx.channel);
  kv("card_present", tx.card_present);
  kv("distance_km", tx.distance_km);
  kv("secs_since_last", tx.secs_since_last);
  kv("tx_last_hour", tx.tx_last_hour);
  kv("amount_avg_30d", tx.amount_avg_30d);
  return {buf.data(), buf.size()};
}

} // namespace inflow::events
