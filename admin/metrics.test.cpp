#include "admin/metrics.hpp"

#include <catch2/catch.hpp>

using namespace inflow::metrics;

TEST_CASE("metrics render in the Prometheus text format") {
  registry r;
  r.get_counter("inflow_things_total", "Things.", label("pipeline", "a\"b")).inc(3);
  r.get_gauge("inflow_level", "Level.").set(-2);
  auto& h = r.get_histogram("inflow_seconds", "Time.", label("p", "x"), {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  auto text = r.render();
  CHECK_THAT(text, Catch::Contains("# TYPE inflow_things_total counter\ninflow_things_total{pipeline=\"a\\\"b\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("inflow_level -2\n"));
  CHECK_THAT(text, Catch::Contains("inflow_seconds_bucket{p=\"x\",le=\"0.1\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("inflow_seconds_bucket{p=\"x\",le=\"1\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("inflow_seconds_bucket{p=\"x\",le=\"+Inf\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("inflow_seconds_count{p=\"x\"} 3\n"));
  // The same name and labels give the same series.
  r.get_counter("inflow_things_total", "Things.", label("pipeline", "a\"b")).inc();
  CHECK_THAT(r.render(), Catch::Contains("} 4\n"));
}

TEST_CASE("histogram quantiles interpolate within buckets") {
  histogram h({1, 2, 3, 4});
  for (int i = 0; i < 100; ++i)
    h.observe(1.5); // all in (1, 2]
  auto s = h.read();
  CHECK(s.quantile(0.5) > 1.0);
  CHECK(s.quantile(0.5) <= 2.0);
  CHECK(s.quantile(0.99) <= 2.0);
  auto before = h.read();
  h.observe(3.5);
  auto delta = h.read().minus(before);
  CHECK(delta.count == 1);
  CHECK(delta.quantile(0.5) > 3.0);
}
