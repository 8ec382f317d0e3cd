#include "events/trace.hpp"

#include <catch2/catch.hpp>

using namespace inflow::events;

TEST_CASE("a valid traceparent is read, and its children keep the trace", "[trace]") {
  auto parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  REQUIRE(parent);
  CHECK(parent->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(parent->parent_id == "00f067aa0ba902b7");
  CHECK(parent->flags == "01");
  auto span = record_span_id(*parent, 3, 42);
  CHECK(span != 0);
  CHECK(span == record_span_id(*parent, 3, 42)); // the same record names the same span
  CHECK(span != record_span_id(*parent, 3, 43));
  auto child = child_traceparent(*parent, span);
  auto back = parse_traceparent(child);
  REQUIRE(back);
  CHECK(back->trace_id == parent->trace_id);
  CHECK(back->parent_id != parent->parent_id);
  CHECK(back->flags == "01");
  CHECK(child_traceparent(*parent, 0xab) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000ab-01");
}

TEST_CASE("an invalid traceparent is ignored", "[trace]") {
  for (const char* bad : {"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",        // short
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",          // zero trace
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",          // zero parent
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",          // upper case
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",          // version ff
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",    // 00 has no more
                          "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})         // separator
    CHECK_FALSE(parse_traceparent(bad));
  // A later version may append fields.
  CHECK(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"));
}
