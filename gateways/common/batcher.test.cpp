#include "gateways/common/batcher.hpp"

#include <catch2/catch.hpp>

using namespace inflow::gateways;

namespace {
score_request request(std::vector<uint64_t> ids, size_t width) {
  score_request r{ids, {}, {}};
  for (auto id : ids)
    for (size_t k = 0; k < width; ++k)
      r.rows.push_back(static_cast<float>(id * 10 + k));
  return r;
}
} // namespace

TEST_CASE("rows from several callers share one batch, oldest first") {
  batcher<int> b(4, 2);
  b.add(1, request({1, 2}, 2));
  CHECK_FALSE(b.full());
  b.add(2, request({7}, 2));
  CHECK(b.pending_rows() == 3);
  auto batch = b.take();
  CHECK(batch.size() == 3);
  REQUIRE(batch.parts.size() == 2);
  CHECK(batch.parts[0].caller == 1);
  CHECK(batch.parts[0].ids == std::vector<uint64_t>{1, 2});
  CHECK(batch.parts[1].ids == std::vector<uint64_t>{7});
  CHECK(batch.rows == std::vector<float>{10, 11, 20, 21, 70, 71});
  CHECK(b.empty());
}

TEST_CASE("a request larger than the batch is split across batches") {
  batcher<int> b(3, 1);
  b.add(1, request({1, 2, 3, 4, 5}, 1));
  b.add(2, request({9}, 1));
  REQUIRE(b.full());
  auto first = b.take();
  CHECK(first.parts.size() == 1);
  CHECK(first.parts[0].ids == std::vector<uint64_t>{1, 2, 3});
  auto second = b.take();
  REQUIRE(second.parts.size() == 2);
  CHECK(second.parts[0].ids == std::vector<uint64_t>{4, 5});
  CHECK(second.parts[1].ids == std::vector<uint64_t>{9});
  CHECK(second.rows == std::vector<float>{40, 50, 90});
  CHECK(b.empty());
}

TEST_CASE("text inputs are batched like rows") {
  batcher<int> b(2, 0);
  b.add(1, score_request{{1, 2, 3}, {}, {"a", "b", "c"}});
  auto first = b.take();
  CHECK(first.texts == std::vector<std::string>{"a", "b"});
  CHECK(first.size() == 2);
  CHECK(b.take().texts == std::vector<std::string>{"c"});
  CHECK_THROWS(b.add(1, score_request{{1}, {}, {}}));
}

TEST_CASE("batch results are split back per caller") {
  std::vector<batcher<int>::part> parts{{1, {10, 11}}, {2, {12}}};
  std::vector<float> values{1, 2, 3, 4, 5, 6}; // width 2
  std::vector<std::pair<int, score_reply>> sent;
  model_info model{"m", "v1", {}, "embedding"};
  score_reply whole;
  whole.values = values;
  whole.width = 2;
  split_results(parts, whole, model, [&](int caller, score_reply r) { sent.emplace_back(caller, r); });
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].second.ids == std::vector<uint64_t>{10, 11});
  CHECK(sent[0].second.values == std::vector<float>{1, 2, 3, 4});
  CHECK(sent[1].second.values == std::vector<float>{5, 6});
  CHECK(sent[1].second.width == 2);
  CHECK(sent[1].second.model_version == "v1");

  sent.clear();
  parts = {{1, {10, 11}}, {2, {12}}};
  split_results(parts, failed_reply({}, failure::failed, "HTTP 503"), model,
                [&](int caller, score_reply r) { sent.emplace_back(caller, r); });
  REQUIRE(sent.size() == 2);
  CHECK(sent[1].second.ids == std::vector<uint64_t>{12});
  CHECK(sent[1].second.failed == failure::failed);
  CHECK(sent[1].second.error == "HTTP 503");
  CHECK(sent[1].second.values.empty());
}

TEST_CASE("a request whose rows do not match its ids is refused") {
  batcher<int> b(8, 3);
  auto r = request({1, 2}, 2);
  CHECK_THROWS_AS(b.add(1, std::move(r)), std::invalid_argument);
  CHECK(b.empty());
}

TEST_CASE("a batch halves down to single inputs, parts cut where they straddle") {
  batcher<int> b(8, 2);
  b.add(1, request({1, 2}, 2));
  b.add(2, request({3, 4, 5}, 2));
  auto [first, second] = batcher<int>::halve(b.take(), 2);
  CHECK(first.size() == 3);
  CHECK(second.size() == 2);
  REQUIRE(first.parts.size() == 2);
  CHECK(first.parts[1].caller == 2);
  CHECK(first.parts[1].ids == std::vector<uint64_t>{3});
  REQUIRE(second.parts.size() == 1);
  CHECK(second.parts[0].caller == 2);
  CHECK(second.parts[0].ids == std::vector<uint64_t>{4, 5});
  CHECK(first.rows == std::vector<float>{10, 11, 20, 21, 30, 31});
  CHECK(second.rows == std::vector<float>{40, 41, 50, 51});
  auto [one, two] = batcher<int>::halve(std::move(second), 2);
  CHECK(one.parts[0].ids == std::vector<uint64_t>{4});
  CHECK(two.rows == std::vector<float>{50, 51});

  batcher<int> text(4, 0);
  text.add(7, {{1, 2, 3}, {}, {"a", "b", "c"}});
  auto [t1, t2] = batcher<int>::halve(text.take(), 0);
  CHECK(t1.texts == std::vector<std::string>{"a", "b"});
  CHECK(t2.texts == std::vector<std::string>{"c"});
}

TEST_CASE("a batch cuts after any input, to the size a call may carry") {
  batcher<int> b(8, 1);
  b.add(1, request({1, 2, 3, 4, 5}, 1));
  auto [call, over] = batcher<int>::cut(b.take(), 1, 1);
  CHECK(call.parts[0].ids == std::vector<uint64_t>{1});
  CHECK(over.parts[0].ids == std::vector<uint64_t>{2, 3, 4, 5});
  CHECK(over.rows == std::vector<float>{20, 30, 40, 50});
  auto [all, none] = batcher<int>::cut(std::move(over), 4, 1);
  CHECK(all.size() == 4);
  CHECK(none.size() == 0);
  CHECK(none.parts.empty());
}

TEST_CASE("inputs that do not fill a batch ask for one linger timer at a time") {
  batcher<int> b(4, 1, std::chrono::milliseconds(5));
  CHECK_FALSE(b.arm_linger()); // nothing waits
  b.add(1, score_request{{1}, {0.5f}});
  auto first = b.arm_linger();
  REQUIRE(first);
  CHECK(b.linger() == std::chrono::milliseconds(5));
  b.add(2, score_request{{2}, {0.5f}});
  CHECK_FALSE(b.arm_linger()); // one is on its way
  CHECK(b.linger_due(*first));
  CHECK(b.take().size() == 2);
  CHECK_FALSE(b.linger_due(*first)); // fired once
  b.add(3, score_request{{3}, {0.5f}});
  auto second = b.arm_linger();
  REQUIRE(second);
  CHECK(*second != *first);
  CHECK_FALSE(b.linger_due(*first)); // a stale timer flushes nothing
  CHECK(b.linger_due(*second));
}

TEST_CASE("a batch carries the trace context of its first traced request, and so do its halves") {
  batcher<int> b(8, 1);
  b.add(1, score_request{{1}, {0.5f}, {}, ""});
  b.add(2, score_request{{2}, {0.5f}, {}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
  b.add(3, score_request{{3}, {0.5f}, {}, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
  auto batch = b.take();
  CHECK(batch.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto [first, second] = batcher<int>::halve(std::move(batch), 1);
  CHECK(first.traceparent == second.traceparent);
  CHECK(second.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}
