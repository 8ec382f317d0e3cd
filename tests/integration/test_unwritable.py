"""Writes Kafka refuses for good never wedge a partition silently: a refused alert
becomes a dead letter, a dead letter is cut to every size limit, a dead letter refused
even so stops the pipeline (or is skipped, as configured) and says so on /readyz, and
a record stuck for ever holds back a bounded window, not the whole backlog.

Topic limits (`max.message.bytes`, `min.insync.replicas`) are Kafka's own: real Kafka only."""

import json
import re
import time

import pytest

from fault_server import FaultServer
from harness import (POISON, REAL_KAFKA, Broker, Feeder, Node, committed, headers, read_all, remote_sets,
                     wait_until, wait_until_committed)

pytestmark = pytest.mark.skipif(not REAL_KAFKA, reason="needs Apache Kafka's topic configs (INFLOW_TEST_BROKER=kafka)")

FAST = ["node.drain_timeout_ms=2000", "kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]


def topics(alert=None, dlq=None, partitions=4):
    return Broker({"transactions": partitions, "fraud-alerts": 2, "transactions.dlq": 1},
                  configs={"fraud-alerts": alert or {}, "transactions.dlq": dlq or {}})


def test_an_alert_topic_that_refuses_every_write_turns_alerts_into_dead_letters(model_path):
    broker = topics(alert={"max.message.bytes": "200"})  # every alert is larger
    feeder = Feeder(broker.bootstrap)
    feeder.feed(2000, poison_every=0)
    node = Node(broker.bootstrap, model_path, sets=FAST)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
    assert node.readyz()[0] == 200
    assert node.stop() == 0, node.stderr()
    assert not read_all(broker.bootstrap, "fraud-alerts", 2)
    dead = [headers(m) for m in read_all(broker.bootstrap, "transactions.dlq", 1)]
    assert len(dead) >= 30  # the fraud records (1 in 50), each exactly once
    assert len({(h["__connect.errors.partition"], h["__connect.errors.offset"]) for h in dead}) == len(dead)
    for h in dead:
        assert h["__connect.errors.exception.class.name"] == "inflow.errors.output_refused"
        assert h["__connect.errors.exception.message"].startswith("alert to fraud-alerts refused:")


def test_a_dead_letter_is_cut_to_the_topics_limit(model_path):
    broker = topics(dlq={"max.message.bytes": "4096"})
    feeder = Feeder(broker.bootstrap)
    feeder.send(POISON["inflow.errors.oversized"], "inflow.errors.oversized", b"big")
    feeder.feed(200, poison_every=0)
    node = Node(broker.bootstrap, model_path, sets=FAST)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
    assert node.stop() == 0, node.stderr()
    [dead] = read_all(broker.bootstrap, "transactions.dlq", 1)
    h = headers(dead)
    assert h["__connect.errors.exception.class.name"] == "inflow.errors.oversized"
    assert h["inflow.value.truncated_from_bytes"] == str(len(POISON["inflow.errors.oversized"]))
    size = len(dead.value()) + len(dead.key()) + sum(len(k) + len(v or b"") for k, v in dead.headers())
    assert 3000 < size < 4096
    assert POISON["inflow.errors.oversized"].startswith(dead.value())


def test_an_unwritable_dead_letter_stops_the_pipeline_and_says_why(model_path):
    broker = topics(dlq={"max.message.bytes": "64"}, partitions=1)  # below what the headers alone take
    feeder = Feeder(broker.bootstrap)
    feeder.feed(300, poison_every=0)
    feeder.send(b"", "inflow.errors.empty", b"poison")
    feeder.producer.flush(30)
    [poison_offset] = [o for (_, o), (kind, _) in feeder.landed.items() if kind == "inflow.errors.empty"]
    feeder.feed(20000, poison_every=0, seed=2)
    node = Node(broker.bootstrap, model_path, sets=[*FAST, "pipelines.fraud.max_in_flight=500"])
    wait_until(lambda: node.readyz()[0] == 503 and "stopped" in node.readyz()[1], node)
    status, body = node.readyz()
    reason = json.loads(body)["pipelines"]["fraud"]
    assert f"transactions partition 0 offset {poison_offset}" in reason and "on_unwritable: skip" in reason
    assert node.metric("inflow_pipeline_stopped") == 1
    time.sleep(2)  # what it holds stays bounded: it stopped taking records
    consumed = node.metric("inflow_records_consumed_total")
    assert consumed <= poison_offset + 1 + 500 + 4096
    time.sleep(2)
    assert node.metric("inflow_records_consumed_total") == consumed
    assert committed(broker.bootstrap, "inflow-fraud", "transactions", 1)[0] <= poison_offset
    assert node.stop() == 75, node.stderr()  # the stopped record is not finished: it will be read again
    assert "pipeline stopped" in node.stderr()


def test_on_unwritable_skip_counts_and_commits_past(model_path):
    broker = topics(dlq={"max.message.bytes": "64"})
    feeder = Feeder(broker.bootstrap)
    feeder.feed(4000, poison_every=400)  # 10 poison records, none of whose dead letters fit
    node = Node(broker.bootstrap, model_path, sets=[*FAST, "pipelines.fraud.on_unwritable=skip"])
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
    assert node.metric("inflow_records_unwritable_total") == 10
    assert node.readyz()[0] == 200
    assert node.stop() == 0, node.stderr()
    assert node.stderr().count("skipped as on_unwritable=skip says") == 10


def test_a_record_stuck_for_ever_holds_back_a_bounded_window_and_is_reported(model_path):
    # The provider never answers its first call (50 records) and answers every later one:
    # the records after the stuck ones finish, the stuck ones never do.
    broker = topics(partitions=1)
    feeder = Feeder(broker.bootstrap)
    feeder.feed(30000, poison_every=0)
    provider = FaultServer()
    provider.script = [("hang", 600)]
    try:
        node = Node(broker.bootstrap, model_path, sets=remote_sets(provider.url, model_path, [
            *FAST, "models.fraud.batch.max_batch=50", "models.fraud.timeout_ms=600000",
            "pipelines.fraud.max_in_flight=1000", "pipelines.fraud.stall_timeout_ms=3000"]))
        wait_until(lambda: node.readyz()[0] == 503 and "stuck at offset" in node.readyz()[1], node)
        wait_until(lambda: node.metric("inflow_partitions_paused") == 1, node)
        consumed = node.metric("inflow_records_consumed_total")
        assert node.metric("inflow_records_in_flight") < 1000  # counting those alone would never pause it
        assert 1000 <= consumed <= 1000 + 4096, consumed
        time.sleep(2)
        assert node.metric("inflow_records_consumed_total") == consumed
        # Read once the partition is paused: a slow start may be reported stuck a moment earlier.
        stuck = int(re.search(r"partition 0 stuck at offset (\d+)", node.readyz()[1]).group(1))
        assert stuck < 1000  # the first calls' records: one of them hangs
        assert committed(broker.bootstrap, "inflow-fraud", "transactions", 1)[0] <= stuck
        # A call that never returns does not hold up SIGTERM; the exit says its records were not finished.
        assert node.stop() == 75, node.stderr()
        assert "will be read again on the next start" in node.stderr()
    finally:
        provider.stop()
