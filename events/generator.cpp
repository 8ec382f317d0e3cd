#include "events/generator.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>

namespace inflow::events {

namespace {

struct country_info {
  const char* code;
  const char* currency;
  double weight;
};

constexpr std::array<country_info, 8> countries{{{"DE", "EUR", 0.30},
                                                  {"FR", "EUR", 0.18},
                                                  {"NL", "EUR", 0.12},
                                                  {"ES", "EUR", 0.10},
                                                  {"IT", "EUR", 0.10},
                                                  {"GB", "GBP", 0.10},
                                                  {"US", "USD", 0.07},
                                                  {"PL", "PLN", 0.03}}};

constexpr std::array<int32_t, 7> everyday_mcc{5411, 5812, 5541, 5311, 5912, 4111, 5999};
constexpr std::array<int32_t, 3> risky_mcc{4829, 7995, 5967}; // money transfer, gambling, direct marketing

const country_info& pick_country(double u) {
  for (const auto& c : countries) {
    if (u < c.weight)
      return c;
    u -= c.weight;
  }
  return countries.front();
}

const char* currency_of(const std::string& country) {
  for (const auto& c : countries)
    if (country == c.code)
      return c.currency;
  return "EUR";
}

} // namespace

generator::generator(uint64_t seed, double fraud_rate, int cards)
  : rng_(seed), fraud_rate_(fraud_rate), seed_(seed) {
  std::lognormal_distribution<double> avg(std::log(45.0), 0.7);
  cards_.reserve(static_cast<size_t>(cards));
  for (int i = 0; i < cards; ++i)
    cards_.push_back({fmt::format("card-{:06d}", i), pick_country(uniform()).code, avg(rng_)});
}

double generator::uniform() {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

labeled_transaction generator::next(int64_t now_ms) {
  const auto& c = cards_[std::uniform_int_distribution<size_t>(0, cards_.size() - 1)(rng_)];
  labeled_transaction out;
  auto& tx = out.tx;
  tx.id = fmt::format("tx-{:x}-{:010d}", seed_ & 0xffffff, seq_++);
  tx.card_id = c.id;
  tx.ts = now_ms;
  tx.country = c.country;
  tx.currency = currency_of(c.country);
  tx.merchant_id = fmt::format("m-{:05d}", std::uniform_int_distribution<int>(0, 49999)(rng_));
  tx.amount_avg_30d = c.avg_amount * (0.85 + 0.3 * uniform());
  return uniform() < fraud_rate_ ? fraud(c, std::move(out)) : legit(c, std::move(out));
}

labeled_transaction generator::legit(const card& c, labeled_transaction out) {
  auto& tx = out.tx;
  std::lognormal_distribution<double> spread(0.0, 0.6);
  std::exponential_distribution<double> near(1.0 / 8.0), idle(1.0 / 20000.0);
  double u = uniform();
  if (shifted_)
    u = u < 0.3 ? u : 0.75 + (u - 0.3) / 0.7 * 0.22; // most of pos and contactless move online
  tx.channel = u < 0.55 ? "pos" : u < 0.75 ? "contactless" : u < 0.97 ? "online" : "atm";
  tx.card_present = tx.channel != "online";
  tx.mcc = tx.channel == "atm" ? 6011 : everyday_mcc[static_cast<size_t>(uniform() * everyday_mcc.size())];
  tx.amount = c.avg_amount * spread(rng_) * (shifted_ ? 3.0 : 1.0);
  tx.distance_km = tx.card_present ? near(rng_) : 5.0 * near(rng_);
  tx.secs_since_last = idle(rng_);
  double v = uniform();
  tx.tx_last_hour = v < 0.7 ? 0 : v < 0.9 ? 1 : v < 0.98 ? 2 : 3 + static_cast<int32_t>(uniform() * 3);
  // Look-alikes: honest customers who travel, buy big or gamble a little.
  double look = uniform();
  if (look < 0.03) {
    tx.amount = c.avg_amount * (4.0 + 10.0 * uniform());
    tx.mcc = uniform() < 0.5 ? 5732 : 4511; // electronics, airlines
  } else if (look < 0.06) {
    tx.country = pick_country(uniform()).code;
    tx.distance_km = 300.0 + 4000.0 * uniform();
    tx.secs_since_last = 3600.0 * (3.0 + 20.0 * uniform());
  } else if (look < 0.075) {
    tx.mcc = risky_mcc[static_cast<size_t>(uniform() * risky_mcc.size())];
    tx.amount = c.avg_amount * (1.0 + 4.0 * uniform());
  } else if (look < 0.095) { // app stores and subscriptions: small, online, frequent
    tx.channel = "online";
    tx.card_present = false;
    tx.mcc = 5815;
    tx.amount = 0.99 + 9.0 * uniform();
    tx.tx_last_hour = 2 + static_cast<int32_t>(uniform() * 8);
    tx.secs_since_last = 20.0 + 900.0 * uniform();
  }
  return out;
}

labeled_transaction generator::fraud(const card& c, labeled_transaction out) {
  auto& tx = out.tx;
  std::exponential_distribution<double> far(1.0 / 1500.0);
  if (uniform() < 0.2) { // a stolen card used like its owner would: no signal to find
    out = legit(c, std::move(out));
    out.fraud = true;
    return out;
  }
  out.fraud = true;
  switch (static_cast<int>(uniform() * 4)) {
    case 0: // card testing: bursts of tiny online charges
      tx.channel = "online";
      tx.mcc = uniform() < 0.5 ? 5999 : 5815;
      tx.amount = 0.5 + 4.5 * uniform();
      tx.tx_last_hour = 4 + static_cast<int32_t>(uniform() * 30);
      tx.secs_since_last = 2.0 + 120.0 * uniform();
      tx.distance_km = far(rng_);
      break;
    case 1: // account takeover: large spends far above the usual
      tx.channel = uniform() < 0.7 ? "online" : "pos";
      tx.mcc = uniform() < 0.5 ? 5732 : 5944;
      tx.amount = c.avg_amount * (3.0 + 20.0 * uniform());
      tx.tx_last_hour = 1 + static_cast<int32_t>(uniform() * 4);
      tx.secs_since_last = 60.0 + 3000.0 * uniform();
      tx.distance_km = far(rng_);
      break;
    case 2: // impossible travel: card present abroad minutes after the last use
      tx.channel = uniform() < 0.5 ? "atm" : "pos";
      tx.mcc = tx.channel == "atm" ? 6011 : 5311;
      tx.amount = c.avg_amount * (1.0 + 5.0 * uniform());
      tx.country = pick_country(uniform()).code;
      tx.distance_km = 1500.0 + 7500.0 * uniform();
      tx.secs_since_last = 60.0 + 3600.0 * uniform();
      tx.tx_last_hour = static_cast<int32_t>(uniform() * 3);
      break;
    default: // risky merchants: money transfer, gambling
      tx.channel = "online";
      tx.mcc = risky_mcc[static_cast<size_t>(uniform() * risky_mcc.size())];
      tx.amount = c.avg_amount * (2.0 + 8.0 * uniform());
      tx.tx_last_hour = 1 + static_cast<int32_t>(uniform() * 6);
      tx.secs_since_last = 30.0 + 1800.0 * uniform();
      tx.distance_km = far(rng_);
      break;
  }
  tx.card_present = tx.channel != "online";
  return out;
}

} // namespace inflow::events
