#pragma once
// Micro-batching across callers: requests from many partitions are packed
// into batches of at most max_batch inputs, and inputs that do not fill one
// wait at most `linger` for more. Every place a batch is formed (the gateways,
// the cluster's per-model routing) uses it; the owner runs the timer it asks for.
// Owned by one actor.

#include "gateways/common/gateway_api.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace inflow::gateways {

template <class Caller>
class batcher {
public:
  /// The inputs of one caller inside a batch.
  struct part {
    Caller caller;
    std::vector<uint64_t> ids;
  };
  struct batch {
    std::vector<float> rows;        ///< feature rows, or empty for text inputs
    std::vector<std::string> texts; ///< text inputs, or empty for feature rows
    std::vector<part> parts;
    std::string traceparent; ///< of the first request in it that has one: the call carries it
    size_t n = 0; ///< inputs in the batch
    size_t size() const { return n; }
  };

  /// `width` is the feature count of a row; 0 means the inputs are texts.
  batcher(size_t max_batch, size_t width, std::chrono::milliseconds linger = std::chrono::milliseconds(0))
    : max_batch_(max_batch), width_(width), linger_(linger) {
    if (max_batch_ == 0)
      throw std::invalid_argument("batch size must be positive");
  }

  /// Queues a request; throws std::invalid_argument if its inputs do not match its ids.
  void add(Caller caller, score_request&& request) {
    bool text = width_ == 0;
    if (request.rows.size() != request.ids.size() * width_ ||
        request.texts.size() != (text ? request.ids.size() : 0))
      throw std::invalid_argument(text ? "request needs one text per id"
                                       : "request rows do not match ids times model input width");
    pending_rows_ += request.ids.size();
    queue_.push_back({std::move(caller), std::move(request), 0});
  }

  /// After adding and taking the full batches: a timer to start now, `linger()` from now, with
  /// this generation; nothing when no input waits or a timer is already on its way.
  std::optional<uint64_t> arm_linger() {
    if (empty() || linger_armed_)
      return std::nullopt;
    linger_armed_ = true;
    return ++linger_generation_;
  }
  /// A linger timer fired: whether it is the current one, whose waiting inputs are now due.
  bool linger_due(uint64_t generation) {
    if (generation != linger_generation_ || !linger_armed_)
      return false;
    linger_armed_ = false;
    return true;
  }
  std::chrono::milliseconds linger() const { return linger_; }

  size_t pending_rows() const { return pending_rows_; }
  bool empty() const { return pending_rows_ == 0; }
  bool full() const { return pending_rows_ >= max_batch_; }

  size_t max_batch() const { return max_batch_; }

  /// Takes up to max_batch inputs (or `most`, if fewer), oldest first; a request may be split.
  batch take(size_t most = SIZE_MAX) {
    batch out;
    size_t room = std::min(max_batch_, most);
    while (room > 0 && !queue_.empty()) {
      auto& front = queue_.front();
      size_t left = front.request.ids.size() - front.next;
      size_t n = std::min(left, room);
      auto first = static_cast<std::ptrdiff_t>(front.next);
      auto count = static_cast<std::ptrdiff_t>(n);
      out.parts.push_back({front.caller, {front.request.ids.begin() + first, front.request.ids.begin() + first + count}});
      if (out.traceparent.empty())
        out.traceparent = front.request.traceparent;
      if (width_ == 0) {
        auto t0 = front.request.texts.begin() + first;
        out.texts.insert(out.texts.end(), std::make_move_iterator(t0), std::make_move_iterator(t0 + count));
      } else {
        auto row0 = front.request.rows.begin() + first * static_cast<std::ptrdiff_t>(width_);
        out.rows.insert(out.rows.end(), row0, row0 + count * static_cast<std::ptrdiff_t>(width_));
      }
      out.n += n;
      front.next += n;
      room -= n;
      pending_rows_ -= n;
      if (front.next == front.request.ids.size())
        queue_.pop_front();
    }
    return out;
  }

  /// Appends `more` to `into`: inputs taken later ride in the same call.
  static void append(batch& into, batch&& more) {
    into.rows.insert(into.rows.end(), more.rows.begin(), more.rows.end());
    into.texts.insert(into.texts.end(), std::make_move_iterator(more.texts.begin()),
                      std::make_move_iterator(more.texts.end()));
    into.parts.insert(into.parts.end(), std::make_move_iterator(more.parts.begin()),
                      std::make_move_iterator(more.parts.end()));
    if (into.traceparent.empty())
      into.traceparent = std::move(more.traceparent);
    into.n += more.n;
  }

  /// Cuts a batch in two (the first half takes the odd input): bisecting a call the provider
  /// refused finds the input it refuses.
  static std::pair<batch, batch> halve(batch&& b, size_t width) {
    const size_t first = (b.n + 1) / 2;
    return cut(std::move(b), first, width);
  }

  /// Cuts a batch after its first `cut` inputs, a part split where it straddles the cut.
  static std::pair<batch, batch> cut(batch&& b, size_t cut, size_t width) {
    std::pair<batch, batch> out;
    size_t at = 0;
    for (auto& p : b.parts) {
      const size_t k = p.ids.size();
      if (at < cut && at + k > cut) {
        const auto first = static_cast<std::ptrdiff_t>(cut - at);
        out.second.parts.push_back({p.caller, {p.ids.begin() + first, p.ids.end()}});
        p.ids.resize(cut - at);
        out.first.parts.push_back(std::move(p));
      } else {
        (at < cut ? out.first : out.second).parts.push_back(std::move(p));
      }
      at += k;
    }
    out.first.n = cut;
    out.second.n = b.n - cut;
    out.first.traceparent = out.second.traceparent = b.traceparent;
    if (width == 0) {
      out.second.texts.assign(std::make_move_iterator(b.texts.begin() + static_cast<std::ptrdiff_t>(cut)),
                              std::make_move_iterator(b.texts.end()));
      b.texts.resize(cut);
      out.first.texts = std::move(b.texts);
    } else {
      out.second.rows.assign(b.rows.begin() + static_cast<std::ptrdiff_t>(cut * width), b.rows.end());
      b.rows.resize(cut * width);
      out.first.rows = std::move(b.rows);
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
  std::chrono::milliseconds linger_;
  bool linger_armed_ = false;
  uint64_t linger_generation_ = 0;
  size_t pending_rows_ = 0;
  std::deque<entry> queue_;
};

/// Cuts `whole`, the reply to a whole batch (its ids left empty), into one reply per part, in
/// part order, each in the name of `model`.
template <class Part, class Send>
void split_results(std::vector<Part>& parts, score_reply whole, const model_info& model, Send&& send) {
  const auto width = static_cast<std::ptrdiff_t>(whole.width);
  std::ptrdiff_t next = 0;
  for (auto& part : parts) {
    score_reply reply;
    reply.failed = whole.failed;
    reply.error = whole.error;
    reply.width = whole.width;
    reply.model = model.name;
    reply.model_version = model.version;
    const auto k = static_cast<std::ptrdiff_t>(part.ids.size());
    if (!whole.values.empty())
      reply.values.assign(whole.values.begin() + next * width, whole.values.begin() + (next + k) * width);
    if (!whole.texts.empty())
      reply.texts.assign(std::make_move_iterator(whole.texts.begin() + next),
                         std::make_move_iterator(whole.texts.begin() + next + k));
    next += k;
    reply.ids = std::move(part.ids);
    send(part.caller, std::move(reply));
  }
}

} // namespace inflow::gateways
