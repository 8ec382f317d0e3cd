#pragma once
// Synthetic card transactions with the fraud patterns seen in practice.

#include "events/transaction.hpp"

#include <cstdint>
#include <random>
#include <vector>

namespace inflow::events {

struct labeled_transaction {
  transaction tx;
  bool fraud = false;
};

/// Deterministic for a given seed: the same seed yields the same stream.
/// Fraud follows four patterns: card testing (bursts of tiny online charges),
/// account takeover (large spends far above the card's average), impossible
/// travel (card present far from home minutes after the last use) and risky
/// merchants (money transfer, gambling, gift cards); ordinary traffic carries
/// look-alikes (big purchases, travel) so the task is not trivial.
class generator {
public:
  explicit generator(uint64_t seed, double fraud_rate = 0.01, int cards = 20000);

  labeled_transaction next(int64_t now_ms);
  /// From now on, ordinary customers spend about three times as much, mostly online: the stream
  /// a model was not trained on (drift).
  void shift() { shifted_ = true; }

private:
  struct card {
    std::string id;
    std::string country;
    double avg_amount;
  };
  double uniform();
  labeled_transaction legit(const card& c, labeled_transaction out);
  labeled_transaction fraud(const card& c, labeled_transaction out);

  std::mt19937_64 rng_;
  double fraud_rate_;
  std::vector<card> cards_;
  uint64_t seq_ = 0;
  uint64_t seed_;
  bool shifted_ = false;
};

} // namespace inflow::events
