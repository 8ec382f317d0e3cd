"""A provider down for two minutes under `on_failure: block`: the node holds its records,
says which model fails, dead-letters nothing, and scores them all once the provider is back.
Apart from test_gateway_faults: it mostly waits, so it runs beside other modules."""

# ctest: mostly waits (a two-minute outage).
import json
import time

from harness import Feeder, Node, read_all, remote_sets, wait_until_committed

RECORDS = 300


OUTAGE_SECONDS = 120


def test_a_two_minute_outage_under_block_dead_letters_nothing(broker, model_path, provider):
    provider.down_until = time.time() + 3600  # down until told otherwise
    feeder = Feeder(broker.bootstrap)
    feeder.feed(RECORDS, seed=13, fraud_every=10, poison_every=0)
    node = Node(broker.bootstrap, model_path, sets=remote_sets(provider.url, model_path, [
        "models.fraud.on_failure=block", "models.fraud.batch.max_batch=50", "models.fraud.retry.initial_backoff_ms=10",
        "models.fraud.retry.max_backoff_ms=1000", "models.fraud.breaker.failure_threshold=3",
        "models.fraud.breaker.open_ms=500"]))
    try:
        node.wait_for_stderr(r"holding its records until the provider answers again")
        started = time.time()
        # While it lasts: records held (none dead-lettered), and /readyz says which model fails.
        deadline = started + 30
        while time.time() < deadline and "model fraud: its last" not in node.readyz()[1]:
            time.sleep(0.2)
        status, body = node.readyz()
        assert status == 503 and "model fraud: its last" in body, body
        time.sleep(max(0.0, started + OUTAGE_SECONDS - time.time()))
        metrics = node.metrics()
        assert metrics['inflow_gateway_held_rows{model="fraud"}'] > 0
        assert metrics.get('inflow_records_dead_lettered_total{pipeline="fraud"}', 0) == 0
        provider.down_until = 0  # the provider is back
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
        node.wait_for_stderr(r"the provider answers again; no records held")
        assert node.metrics()['inflow_gateway_held_rows{model="fraud"}'] == 0
    finally:
        assert node.stop() == 0, node.stderr()
    assert not read_all(broker.bootstrap, "transactions.dlq", 1)
    alerts = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2)]
    assert {(a["source"]["partition"], a["source"]["offset"]) for a in alerts} == feeder.scored_as_fraud()

