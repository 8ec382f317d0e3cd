"""SIGKILL mid-stream, then a restart: no record without an outcome, and
duplicates only within the in-flight bound."""

import json
import signal
import threading
import time

from harness import POISON, Feeder, Node, committed, headers, read_all, wait_until_committed

MAX_IN_FLIGHT = 500
PARTITIONS = 4
# The development broker rebalances a group only once a phantom member's
# session has timed out: keep that short so members come and go quickly.
SETS = [f"pipelines.fraud.max_in_flight={MAX_IN_FLIGHT}", "kafka.session.timeout.ms=6000",
        "kafka.heartbeat.interval.ms=500"]


def alert_sources(bootstrap, topic):
    return [(a["source"]["partition"], a["source"]["offset"])
            for a in (json.loads(m.value()) for m in read_all(bootstrap, topic, 2))]


def dlq_sources(bootstrap, topic):
    return [(int(h["__connect.errors.partition"]), int(h["__connect.errors.offset"]))
            for h in (headers(m) for m in read_all(bootstrap, topic, 1))]


def reference_alerts(broker, model_path):
    """The alerts of a clean run over the same records, in another group."""
    reference = Node(broker.bootstrap, model_path, group="reference",
                     sets=["pipelines.fraud.alert.topic=ref-alerts", "pipelines.fraud.dead_letter_topic=ref-dlq"])
    wait_until_committed(broker.bootstrap, "reference", "transactions", PARTITIONS)
    assert reference.stop() == 0
    return alert_sources(broker.bootstrap, "ref-alerts")


def test_sigkill_mid_stream_then_restart(broker, model_path):
    feeder = Feeder(broker.bootstrap)
    feeding = threading.Thread(target=feeder.feed, args=(40000,), kwargs=dict(rate=10000, seed=3, poison_every=200))
    node = Node(broker.bootstrap, model_path, sets=SETS)
    feeding.start()
    deadline = time.time() + 60
    while node.metric("inflow_records_consumed_total") < 8000:
        assert time.time() < deadline, node.stderr()
        time.sleep(0.05)
    assert node.stop(signal.SIGKILL) == -signal.SIGKILL
    feeding.join()

    restarted = Node(broker.bootstrap, model_path, sets=SETS)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", PARTITIONS)
    assert restarted.stop() == 0, restarted.stderr()

    expected_alerts = reference_alerts(broker, model_path)
    assert len(set(expected_alerts)) == len(expected_alerts) > 0
    alerts = alert_sources(broker.bootstrap, "fraud-alerts")
    assert set(alerts) == set(expected_alerts), "a record lost its alert"
    poison = {k for k, (kind, _) in feeder.landed.items() if kind in POISON}
    dead = dlq_sources(broker.bootstrap, "transactions.dlq")
    assert set(dead) == poison, "a poison record lost its dead letter"

    duplicates = (len(alerts) - len(set(alerts))) + (len(dead) - len(set(dead)))
    assert duplicates <= PARTITIONS * MAX_IN_FLIGHT


def test_a_leaving_node_drains_and_commits_its_partitions(broker, model_path):
    # Both members join before any record exists: the development broker turns a
    # join into lost partitions for the members already there (their sessions
    # expire while it holds their JoinGroup), which would replay uncommitted work.
    first = Node(broker.bootstrap, model_path, sets=SETS)
    second = Node(broker.bootstrap, model_path, sets=SETS)
    deadline = time.time() + 60
    while not (first.metric("inflow_partitions_assigned") and second.metric("inflow_partitions_assigned")):
        assert time.time() < deadline, first.stderr() + second.stderr()
        time.sleep(0.2)

    feeder = Feeder(broker.bootstrap)
    feeding = threading.Thread(target=feeder.feed, args=(40000,), kwargs=dict(rate=8000, seed=4, poison_every=300))
    feeding.start()
    while second.metric("inflow_records_consumed_total") < 3000:
        assert time.time() < deadline, second.stderr()
        time.sleep(0.05)
    # The leaving node drains and commits its partitions before it goes.
    owned = [int(p) for p in json.loads(second.get("/api/status")[1])["pipelines"]["fraud"]["partitions"]]
    consumed_by_second = second.metric("inflow_records_consumed_total")
    assert second.stop() == 0, second.stderr()
    done = committed(broker.bootstrap, "inflow-fraud", "transactions", PARTITIONS)
    assert sum(done[p] for p in owned) >= consumed_by_second
    assert "revoked; draining" in second.stderr()
    feeding.join()
    # Whether the development broker hands those partitions to the other member
    # in time is its own business (its group coordinator is not Kafka's); a
    # fresh member finishes the work, and nothing may be missing at the end.
    assert first.stop() == 0, first.stderr()
    last = Node(broker.bootstrap, model_path, sets=SETS)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", PARTITIONS)
    assert last.stop() == 0

    alerts = alert_sources(broker.bootstrap, "fraud-alerts")
    assert set(alerts) == set(reference_alerts(broker, model_path))
    dead = dlq_sources(broker.bootstrap, "transactions.dlq")
    assert set(dead) == {k for k, (kind, _) in feeder.landed.items() if kind in POISON}
