#include "events/use_cases.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <random>
#include <stdexcept>

namespace inflow::events {

namespace {

struct machine {
  double wear = 0;       ///< 1: it fails
  double wear_per_hour;  ///< its own pace
  double hours_since_service = 0;
};

} // namespace

const std::vector<std::string>& telemetry_features() {
  static const std::vector<std::string> f{"temperature", "vibration", "pressure", "rpm", "load", "hours_since_service"};
  return f;
}

sample_source telemetry_source(uint64_t seed, int machines) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  auto fleet = std::make_shared<std::vector<machine>>();
  std::uniform_real_distribution<double> pace(1.0 / 900, 1.0 / 150), start(0, 0.9);
  for (int i = 0; i < machines; ++i) {
    double p = pace(*rng);
    fleet->push_back({start(*rng), p, start(*rng) / p});
  }
  auto seq = std::make_shared<uint64_t>(0);
  return [rng, fleet, seq, seed](int64_t now_ms) {
    const auto i = static_cast<size_t>(*seq % fleet->size());
    auto& m = (*fleet)[i];
    std::normal_distribution<double> noise(0, 1);
    std::uniform_real_distribution<double> load_of(0.3, 1.0);
    m.wear += m.wear_per_hour * std::max(0.2, 1 + 0.3 * noise(*rng));
    m.hours_since_service += 1;
    const double w = std::min(m.wear, 1.0), load = load_of(*rng);
    const double hours_left = std::clamp((1 - w) / m.wear_per_hour, 0.0, 500.0);
    sample s;
    s.key = fmt::format("machine-{:04d}", i);
    s.label = static_cast<float>(hours_left);
    s.json = fmt::format(
      R"({{"id":"tel-{:x}-{:010d}","machine_id":"{}","ts":{},"temperature":{:.2f},"vibration":{:.3f},)"
      R"("pressure":{:.1f},"rpm":{:.0f},"load":{:.2f},"hours_since_service":{:.0f}}})",
      seed & 0xffffff, (*seq)++, s.key, now_ms, 60 + 12 * load + 30 * w * w + 2 * noise(*rng),
      0.5 + 3 * w * w * w + 0.1 * noise(*rng), 100 - 15 * w + 3 * noise(*rng), 1500 - 200 * w + 20 * noise(*rng), load,
      m.hours_since_service);
    if (m.wear >= 1) // it failed: serviced, as new
      m = {0, m.wear_per_hour, 0};
    return s;
  };
}

namespace {

constexpr std::array<const char*, 5> categories{"electronics", "fashion", "grocery", "travel", "books"};

struct shopper {
  double price_sensitivity; ///< 0..1: how much a discount sways them
  size_t favourite;         ///< the category they buy
};

} // namespace

const std::vector<std::string>& offer_features() {
  static const std::vector<std::string> f{
    "discount_pct", "page_views_24h", "cart_value", "days_since_purchase", "is_mobile", "past_purchases_in_category",
    "offer_category == electronics", "offer_category == fashion", "offer_category == grocery",
    "offer_category == travel"};
  return f;
}

sample_source offer_source(uint64_t seed, int users) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  auto people = std::make_shared<std::vector<shopper>>();
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < users; ++i)
    people->push_back({u(*rng), static_cast<size_t>(u(*rng) * categories.size()) % categories.size()});
  auto seq = std::make_shared<uint64_t>(0);
  return [rng, people, seq, seed](int64_t now_ms) {
    std::uniform_real_distribution<double> u(0, 1);
    const auto user = static_cast<size_t>(u(*rng) * static_cast<double>(people->size())) % people->size();
    const auto& p = (*people)[user];
    const size_t category = u(*rng) < 0.4 ? p.favourite : static_cast<size_t>(u(*rng) * categories.size()) % categories.size();
    const int discount = 5 * static_cast<int>(u(*rng) * 7); // 0..30 %
    const int views = static_cast<int>(std::floor(-std::log(1 - u(*rng)) * 6));
    const int past = category == p.favourite ? 2 + static_cast<int>(u(*rng) * 6) : static_cast<int>(u(*rng) * 2);
    const double cart = std::round(std::max(0.0, -std::log(1 - u(*rng)) * 40) * 100) / 100;
    const int days = static_cast<int>(u(*rng) * 60);
    const bool mobile = u(*rng) < 0.6;
    // Who takes an offer: discounts for the price-sensitive, their own category, an active visit.
    const double logit = -3.0 + 0.12 * discount * p.price_sensitivity + 0.35 * past + 0.08 * views +
                         0.004 * cart - 0.02 * days;
    sample s;
    s.key = fmt::format("user-{:05d}", user);
    s.label = u(*rng) < 1 / (1 + std::exp(-logit)) ? 1.f : 0.f;
    s.json = fmt::format(R"({{"id":"visit-{:x}-{:010d}","user_id":"{}","ts":{},"offer_category":"{}",)"
                         R"("discount_pct":{},"page_views_24h":{},"cart_value":{:.2f},"days_since_purchase":{},)"
                         R"("is_mobile":{},"past_purchases_in_category":{}}})",
                         seed & 0xffffff, (*seq)++, s.key, now_ms, categories[category], discount, views, cart, days,
                         mobile, past);
    return s;
  };
}

namespace {

/// Per topic, ways customers put it (the generator's only vocabulary of the topic).
const std::array<std::vector<const char*>, 5> phrasings{{
  {"I lost my card somewhere in town, can you block it?", "My wallet was stolen with my card in it",
   "I can't find my card anywhere since yesterday"},
  {"There is a charge on my statement I don't recognise", "I was billed twice for the same purchase",
   "A merchant charged me but I never received the goods"},
  {"I'm travelling to Japan next week, will my card work there?", "Going abroad soon, do I need to tell you?",
   "My card was declined at a shop while I was on holiday abroad"},
  {"I'd like a higher credit limit please", "Can you raise my spending limit for a big purchase?",
   "My limit is too low, how do I increase it?"},
  {"I forgot my PIN", "My PIN is blocked after three wrong tries", "How can I change the PIN of my card?"},
}};

} // namespace

const std::vector<std::string>& support_topics() {
  static const std::vector<std::string> t{"lost_card", "dispute", "travel", "limit", "pin"};
  return t;
}

sample_source message_source(uint64_t seed, int customers) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  auto seq = std::make_shared<uint64_t>(0);
  return [rng, seq, seed, customers](int64_t now_ms) {
    std::uniform_int_distribution<size_t> topic_of(0, phrasings.size() - 1);
    std::uniform_int_distribution<int> customer(0, customers - 1);
    const auto topic = topic_of(*rng);
    const auto& ways = phrasings[topic];
    const auto* text = ways[std::uniform_int_distribution<size_t>(0, ways.size() - 1)(*rng)];
    sample s;
    s.key = fmt::format("customer-{:05d}", customer(*rng));
    s.label = static_cast<float>(topic);
    s.json = fmt::format(R"({{"message_id":"msg-{:x}-{:08d}","customer_id":"{}","ts":{},"channel":"app","message":"{}"}})",
                         seed & 0xffffff, (*seq)++, s.key, now_ms, text);
    return s;
  };
}

sample_source source_for(const std::string& use_case, uint64_t seed) {
  if (use_case == "maintenance")
    return telemetry_source(seed);
  if (use_case == "personalization")
    return offer_source(seed);
  if (use_case == "support")
    return message_source(seed);
  throw std::invalid_argument("unknown use case '" + use_case + "' (maintenance, personalization or support)");
}

} // namespace inflow::events
