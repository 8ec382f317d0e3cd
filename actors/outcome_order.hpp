#pragma once
// The reorder buffer of `ordered` and `exactly_once` delivery: a partition's
// outcomes go out in offset order, whichever order the model answers in, and
// records finish in offset order too. Owned by one partition actor; CAF-free.
//
//   consumed -> waiting until decided and every earlier record is issued
//            -> issued until every write is acknowledged -> finished
//
// A write that fails and must be written again rewinds: that record and every
// later issued one go back to waiting and are written again, in order, once no
// write is outstanding, so a key's last outcome is always its newest.

#include <cstdint>
#include <deque>

namespace inflow::actors {

class outcome_order {
public:
  /// A record was consumed (offsets increase).
  void consumed(int64_t offset) {
    waiting_.push_back(offset);
    last_consumed_ = offset;
  }

  /// Issues, in offset order, every waiting record that `decided(offset)` says has its
  /// outcome, stopping at the first undecided one. While held, only records that
  /// `writes(offset)` says write nothing go out (they put nothing in a transaction).
  template <class Decided, class Writes, class Issue>
  void issue_ready(Decided decided, Writes writes, Issue issue) {
    while (!waiting_.empty() && decided(waiting_.front()) && (holds_ == 0 || !writes(waiting_.front()))) {
      int64_t offset = waiting_.front();
      waiting_.pop_front();
      issued_.push_back(offset);
      issue(offset);
    }
  }

  /// Finishes, in offset order, the issued records whose writes `written(offset)` says are
  /// all acknowledged, stopping at the first that is not.
  template <class Written, class Finish>
  void finish_ready(Written written, Finish finish) {
    while (!issued_.empty() && written(issued_.front())) {
      int64_t offset = issued_.front();
      issued_.pop_front();
      finish(offset);
    }
  }

  /// `offset`'s write must be written again: it and every later issued record wait again.
  void rewind(int64_t offset) {
    while (!issued_.empty() && issued_.back() >= offset) {
      waiting_.push_front(issued_.back());
      issued_.pop_back();
    }
  }

  /// Issue nothing until as many release() calls (a commit in progress, a rewind).
  void hold() { ++holds_; }
  void release() {
    if (holds_ > 0)
      --holds_;
  }
  bool held() const { return holds_ > 0; }

  /// The first offset not issued yet (what a transaction may commit), or -1 before any record.
  int64_t issued_end() const {
    if (!waiting_.empty())
      return waiting_.front();
    return last_consumed_ < 0 ? -1 : last_consumed_ + 1;
  }

private:
  std::deque<int64_t> waiting_; ///< consumed, not issued; increasing
  std::deque<int64_t> issued_;  ///< issued, not finished; increasing
  int64_t last_consumed_ = -1;
  int holds_ = 0;
};

} // namespace inflow::actors
