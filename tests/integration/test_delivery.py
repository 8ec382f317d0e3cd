"""The three delivery promises, checked from outside on the output topics:
`ordered` keeps every partition's outcomes in offset order against a remote model whose
calls finish out of order (and `at_least_once`, on the same model, is shown not to), and
`exactly_once` gives each input offset exactly one committed alert across node SIGKILLs,
a rebalance and the broker's SIGKILL and restart, read as a `read_committed` consumer reads it.

Every record alerts here (`score >= 0`), so the alert topic accounts for every input offset."""

import collections
import json
import signal
import time
import warnings

import pytest
from confluent_kafka import Consumer, TopicPartition

from fault_server import FaultServer
from harness import (REAL_KAFKA, Broker, Kafka, Node, Topics, generate, remote_sets, shared_kafka, wait_until,
                     wait_until_committed)

PARTITIONS = 4
TOPICS = {"transactions": PARTITIONS, "fraud-alerts": PARTITIONS, "transactions.dlq": 1}
EVERY_RECORD_ALERTS = ["pipelines.fraud.alert.when=score >= 0", "pipelines.fraud.commit_interval_ms=200",
                       "kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]
EXACTLY_ONCE = [*EVERY_RECORD_ALERTS, "pipelines.fraud.delivery=exactly_once"]
needs_kafka = pytest.mark.skipif(not REAL_KAFKA, reason="transactions need Apache Kafka (INFLOW_TEST_BROKER=kafka)")


def committed_alerts(bootstrap):
    """Every alert a read_committed reader sees, in each alert partition's order: a list of
    (alert partition, key, source partition, source offset)."""
    # The log's ends, open transactions included (read_committed would say the last stable offsets):
    # a crashed node's open transaction is aborted within transaction.timeout.ms and the broker's
    # cleanup interval; until then everything after it waits, as it does for every reader.
    watermarks = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks",
                           "isolation.level": "read_uncommitted"})
    ends = {p: watermarks.get_watermark_offsets(TopicPartition("fraud-alerts", p), timeout=10)[1]
            for p in range(PARTITIONS)}
    watermarks.close()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "fetch.max.bytes": 64 * 1024 * 1024})
    parts = [TopicPartition("fraud-alerts", p, 0) for p in range(PARTITIONS)]
    c.assign(parts)
    out, deadline = [], time.time() + 180
    while time.time() < deadline:
        for m in c.consume(10000, timeout=0.5):
            if not m.error():
                source = json.loads(m.value())["source"]
                out.append((m.partition(), m.key(), source["partition"], source["offset"]))
        # Transaction markers and aborted records take offsets too: done when every position is at its end.
        if all(tp.offset >= ends[tp.partition] for tp in c.position(parts)):
            break
    c.close()
    return out


def out_of_order(alerts):
    """How many times a source partition's offset went backwards within an alert partition."""
    last, backwards = {}, 0
    for partition, _, source_partition, offset in alerts:
        if offset < last.get((partition, source_partition), -1):
            backwards += 1
        last[(partition, source_partition)] = offset
    return backwards


def run_against_jittery_model(model_path, delivery):
    broker = Broker(TOPICS)
    provider = FaultServer()
    provider.jitter = 0.05
    try:
        gen = generate(broker.bootstrap, 20_000)
        assert gen.wait(timeout=120) == 0, gen.stderr.read()
        sets = remote_sets(provider.url, model_path, ["models.fraud.batch.max_batch=20",
                                                      "models.fraud.batch.max_linger_ms=1",
                                                      f"pipelines.fraud.delivery={delivery}", *EVERY_RECORD_ALERTS])
        node = Node(broker.bootstrap, model_path, sets=sets)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", PARTITIONS, timeout=180)
        assert node.stop() == 0, node.stderr()
        return committed_alerts(broker.bootstrap)
    finally:
        provider.stop()
        broker.stop()


def test_ordered_keeps_offset_order_when_model_calls_finish_out_of_order(model_path):
    # The same model and input without `ordered` reorders: the check below can fail.
    unordered = run_against_jittery_model(model_path, "at_least_once")
    assert out_of_order(unordered) > 0, "the model's calls never finished out of order: the test proves nothing"
    ordered = run_against_jittery_model(model_path, "ordered")
    assert len({(a[2], a[3]) for a in ordered}) == 20_000
    assert out_of_order(ordered) == 0
    last_per_key = {}
    for _, key, _, offset in ordered:
        assert offset > last_per_key.get(key, -1), f"key {key}: an older outcome after a newer one"
        last_per_key[key] = offset


def check_exactly_once(bootstrap, total):
    ends = wait_until_committed(bootstrap, "inflow-fraud", "transactions", PARTITIONS, timeout=180)
    assert sum(ends.values()) == total
    counts = collections.Counter((a[2], a[3]) for a in committed_alerts(bootstrap))
    missing = [(p, o) for p in range(PARTITIONS) for o in range(ends[p]) if (p, o) not in counts]
    repeated = {k: n for k, n in counts.items() if n > 1}
    assert not missing, f"{len(missing)} records without a committed alert, first {missing[:5]}"
    assert not repeated, f"{len(repeated)} records with more than one committed alert, e.g. {list(repeated.items())[:5]}"


@needs_kafka
def test_exactly_once_across_two_sigkills(model_path):
    bootstrap = Topics(shared_kafka(), TOPICS).bootstrap
    gen = generate(bootstrap, 200_000, rate=40_000)
    for _ in range(2):
        node = Node(bootstrap, model_path, sets=EXACTLY_ONCE)
        deadline = time.time() + 60
        while node.metric("inflow_records_alerted_total") < 30_000:  # mid-stream, transactions open
            assert time.time() < deadline, node.describe()
            time.sleep(0.05)
        assert node.stop(signal.SIGKILL) == -signal.SIGKILL
    assert gen.wait(timeout=300) == 0, gen.stderr.read()
    last = Node(bootstrap, model_path, sets=EXACTLY_ONCE)  # the same transactional id: it fences the dead one
    check_exactly_once(bootstrap, 200_000)
    assert last.stop() == 0, last.stderr()


@needs_kafka
def test_exactly_once_when_a_member_joins_and_another_is_killed(model_path):
    bootstrap = Topics(shared_kafka(), TOPICS).bootstrap
    gen = generate(bootstrap, 200_000, rate=20_000)
    first = Node(bootstrap, model_path, sets=[*EXACTLY_ONCE, "node.name=first"])
    time.sleep(3)
    second = Node(bootstrap, model_path, sets=[*EXACTLY_ONCE, "node.name=second"])  # a rebalance under load
    time.sleep(3)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # its open transaction times out; second takes over
    assert gen.wait(timeout=300) == 0, gen.stderr.read()
    try:
        check_exactly_once(bootstrap, 200_000)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{first.describe()}\n{second.describe()}") from None
    assert second.stop() == 0, second.stderr()


@needs_kafka
def test_exactly_once_across_the_brokers_sigkill_and_restart(model_path, tmp_path):
    kafka = Kafka(args=["--dir", str(tmp_path / "kafka")])  # its own broker: this one dies
    try:
        bootstrap = Topics(kafka, TOPICS).bootstrap
        gen = generate(bootstrap, 100_000, rate=10_000)
        node = Node(bootstrap, model_path, sets=EXACTLY_ONCE)
        wait_until(lambda: node.metric("inflow_records_alerted_total") >= 20_000, node)
        kafka.kill_broker(1)  # transactions open, a commit perhaps on its way
        assert kafka.proc.wait(timeout=30) != 0
        wait_until(lambda: node.readyz()[0] == 503, node)
        time.sleep(12)  # past transaction.timeout.ms (10 s): the restarted coordinator aborts and fences
        kafka = Kafka(args=["--dir", str(tmp_path / "kafka")])
        assert kafka.bootstrap == bootstrap  # the same ports, kept with the data
        assert gen.wait(timeout=300) == 0, gen.stderr.read()
        try:
            check_exactly_once(bootstrap, 100_000)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{node.describe()}") from None
        assert node.proc.poll() is None, "the node did not ride out the broker's restart:\n" + node.stderr()
        if "transactional producer failed" not in node.stderr():
            # Whether the kill caught a transaction open depends on timing (a loaded host may be between
            # two): the checks above still hold, they prove less. Said, not failed.
            warnings.warn("the broker's outage fenced nothing this time: the fencing path was not exercised")
        assert node.stop() == 0, node.stderr()
    finally:
        kafka.stop()


@needs_kafka
def test_a_fenced_transactional_producer_stops_the_node_with_70(model_path):
    bootstrap = Topics(shared_kafka(), TOPICS).bootstrap
    gen = generate(bootstrap, 100_000, rate=10_000)
    first = Node(bootstrap, model_path, sets=EXACTLY_ONCE)
    time.sleep(2)
    second = Node(bootstrap, model_path, sets=EXACTLY_ONCE)  # the same node.name: the same transactional id fences the first
    assert first.proc.wait(timeout=60) == 70, first.stderr()
    assert "give every node of the group its own node.name" in first.stderr()
    assert gen.wait(timeout=120) == 0, gen.stderr.read()
    check_exactly_once(bootstrap, 100_000)  # the survivor finishes, still exactly once
    assert second.stop() == 0, second.stderr()
