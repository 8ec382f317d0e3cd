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

TEST_CASE("observing many values at once counts as observing each") {
  histogram one_by_one({1, 2, 3, 4}), all_at_once({1, 2, 3, 4});
  std::vector<double> values{0.5, 1.5, 1.7, 2.5, 3.5, 9, 9, 0};
  for (double v : values)
    one_by_one.observe(v);
  all_at_once.observe_all(values);
  all_at_once.observe_all({});
  auto a = one_by_one.read(), b = all_at_once.read();
  CHECK(a.counts == b.counts);
  CHECK(a.count == b.count);
  CHECK(a.sum == Approx(b.sum));
  CHECK(b.count == values.size());
}
