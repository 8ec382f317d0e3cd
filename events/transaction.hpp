#pragma once
// A card transaction: the event schema documented in docs/EVENTS.md.

#include <cstdint>
#include <string>

namespace inflow::events {

struct transaction {
  std::string id;
  std::string card_id;
  int64_t ts = 0; ///< epoch milliseconds
  double amount = 0;
  std::string currency;
  std::string merchant_id;
  int32_t mcc = 0;
  std::string country;
  std::string channel; ///< pos, online, atm, contactless
  bool card_present = true;
  double distance_km = 0;
  double secs_since_last = 0;
  int32_t tx_last_hour = 0;
  double amount_avg_30d = 0;
};

std::string to_json(const transaction& tx);
std::string to_msgpack(const transaction& tx);

} // namespace inflow::events
