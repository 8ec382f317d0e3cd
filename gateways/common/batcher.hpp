#pragma once
// Micro-batching across callers: requests from many partitions are packed
// into batches of at most max_batch rows. Owned by one gateway actor.

#include "gateways/common/gateway_api.hpp"

#include <cstddef>
#include <deque>
#include <stdexcept>
#include <utility>
#include <vector>

namespace inflow::gateways {

template <class Caller>
class batcher {
public:
  /// The rows of one caller inside a batch.
  struct part {
    Caller caller;
    std::vector<uint64_t> ids;
  };
  struct batch {
    std::vector<float> rows;
    std::vector<part> parts;
    size_t size() const { return rows.size() / width_; }
    size_t width_ = 1;
  };

  batcher(size_t max_batch, size_t width) : max_batch_(max_batch), width_(width) {
    if (max_batch_ == 0 || width_ == 0)
      throw std::invalid_argument("batch size and row width must be positive");
  }

  /// Queues a request; throws std::invalid_argument if its rows do not match its ids.
  void add(Caller caller, score_request&& request) {
    if (request.rows.size() != request.ids.size() * width_)
      throw std::invalid_argument("request rows do not match ids times model input width");
    pending_rows_ += request.ids.size();
    queue_.push_back({std::move(caller), std::move(request), 0});
  }

  size_t pending_rows() const { return pending_rows_; }
  bool empty() const { return pending_rows_ == 0; }
  bool full() const { return pending_rows_ >= max_batch_; }

  /// Takes up to max_batch rows, oldest first; a request may be split.
  batch take() {
    batch out;
    out.width_ = width_;
    size_t room = max_batch_;
    while (room > 0 && !queue_.empty()) {
      auto& front = queue_.front();
      size_t left = front.request.ids.size() - front.next;
      size_t n = std::min(left, room);
      auto first = front.request.ids.begin() + static_cast<std::ptrdiff_t>(front.next);
      out.parts.push_back({front.caller, std::vector<uint64_t>(first, first + static_cast<std::ptrdiff_t>(n))});
      auto row0 = front.request.rows.begin() + static_cast<std::ptrdiff_t>(front.next * width_);
      out.rows.insert(out.rows.end(), row0, row0 + static_cast<std::ptrdiff_t>(n * width_));
      front.next += n;
      room -= n;
      pending_rows_ -= n;
      if (front.next == front.request.ids.size())
        queue_.pop_front();
    }
    return out;
  }

private:
  struct entry {
    Caller caller;
    score_request request;
    size_t next; ///< first id not yet taken
  };
  size_t max_batch_;
  size_t width_;
  size_t pending_rows_ = 0;
  std::deque<entry> queue_;
};

} // namespace inflow::gateways
