"""Delivery under faults only a real broker has: a million records with the node
SIGKILLed twice, the broker itself SIGKILLed and restarted on its data, a broker of
three stopped, and group members leaving and joining under load.

Every record alerts here (`score >= 0`), so the alert topic accounts for every input
offset: a missing one is a lost record, a repeated one a duplicate."""

# ctest: runs alone (its duplicate bounds and SIGTERM follow the node's rate and time).
import collections
import json
import signal
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from harness import (INFLOW, REAL_KAFKA, Kafka, Node, Topics, end_offsets, generate, shared_kafka, wait_until,
                     wait_until_committed)

pytestmark = pytest.mark.skipif(not REAL_KAFKA, reason="needs Apache Kafka (INFLOW_TEST_BROKER=kafka)")

PARTITIONS = 4
MAX_IN_FLIGHT = 1000
COMMIT_INTERVAL_MS = 500
POLL_BATCH = 4096  # the most records a node takes from librdkafka at once (actors/source.cpp)
EVERY_RECORD_ALERTS = ["pipelines.fraud.alert.when=score >= 0", f"pipelines.fraud.max_in_flight={MAX_IN_FLIGHT}",
                       f"pipelines.fraud.commit_interval_ms={COMMIT_INTERVAL_MS}",
                       "kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]
TOPICS = {"transactions": PARTITIONS, "fraud-alerts": PARTITIONS, "transactions.dlq": 1}


def alert_counts(bootstrap, expected):
    """How many alerts each input (partition, offset) got, reading all `expected` alerts."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}",
                  "enable.auto.commit": False, "fetch.max.bytes": 64 * 1024 * 1024})
    c.assign([TopicPartition("fraud-alerts", p, 0) for p in range(PARTITIONS)])
    counts = collections.Counter()
    read, deadline = 0, time.time() + 180
    while read < expected and time.time() < deadline:
        for m in c.consume(10000, timeout=1):
            if not m.error():
                source = json.loads(m.value())["source"]
                counts[(source["partition"], source["offset"])] += 1
                read += 1
    c.close()
    assert read == expected, f"read {read} of {expected} alerts"
    return counts


def check_every_record_alerted(bootstrap, *nodes):
    """Returns the number of duplicate alerts; fails on any record without one (with the
    running nodes' last log lines)."""
    try:
        ends = wait_until_committed(bootstrap, "inflow-fraud", "transactions", PARTITIONS, timeout=180)
    except AssertionError as e:
        raise AssertionError(f"{e}\n" + "\n".join(n.describe() for n in nodes)) from None
    written = sum(end_offsets(bootstrap, "fraud-alerts", PARTITIONS).values())
    counts = alert_counts(bootstrap, written)
    missing = [(p, o) for p in range(PARTITIONS) for o in range(ends[p]) if (p, o) not in counts]
    assert not missing, f"{len(missing)} records without an alert, first {missing[:5]}"
    return written - sum(ends.values())


class RateWatch:
    """Samples a node's consumed count, for the fastest rate it ran at over one second."""

    def __init__(self, node):
        self.node, self.samples, self.fastest = node, collections.deque(), 0.0

    def consumed(self):
        n = self.node.metric("inflow_records_consumed_total")
        now = time.time()
        self.samples.append((now, n))
        while self.samples and now - self.samples[0][0] > 1.0:
            t0, n0 = self.samples.popleft()
            self.fastest = max(self.fastest, (n - n0) / (now - t0))
        return n


def wait_for_consumed(node, count, watch=None, timeout=120):
    deadline = time.time() + timeout
    while (watch.consumed() if watch else node.metric("inflow_records_consumed_total")) < count:
        assert time.time() < deadline, node.stderr()
        time.sleep(0.05)


def complete_metadata(admin, timeout=30):
    """The source topic's partitions once the broker asked knows them all (a new topic reaches
    each broker's metadata a moment apart)."""
    deadline = time.time() + timeout
    while True:
        partitions = admin.list_topics("transactions", timeout=10).topics["transactions"].partitions
        if len(partitions) == PARTITIONS and all(m.leader >= 0 for m in partitions.values()):
            return partitions
        assert time.time() < deadline, f"metadata of transactions never complete: {partitions}"
        time.sleep(0.2)


def duplicate_bound(rate):
    """The README's bound on what one crash replays: what the node finished in the last
    two commit intervals, plus every partition's window (max_in_flight and one poll)."""
    return int(rate * 2 * COMMIT_INTERVAL_MS / 1000) + PARTITIONS * (MAX_IN_FLIGHT + POLL_BATCH)


def test_a_million_records_with_the_node_sigkilled_twice(model_path):
    bootstrap = Topics(shared_kafka(), TOPICS).bootstrap
    gen = generate(bootstrap, 1_000_000, rate=100_000)
    bound = 0
    for kill_after in (250_000, 250_000):
        node = Node(bootstrap, model_path, sets=EVERY_RECORD_ALERTS)
        watch = RateWatch(node)
        wait_for_consumed(node, kill_after, watch)
        assert node.stop(signal.SIGKILL) == -signal.SIGKILL
        bound += duplicate_bound(watch.fastest)
    assert gen.wait(timeout=300) == 0, gen.stderr.read()
    last = Node(bootstrap, model_path, sets=EVERY_RECORD_ALERTS)
    duplicates = check_every_record_alerted(bootstrap, last)
    assert last.stop() == 0, last.stderr()
    print(f"duplicates after two SIGKILLs: {duplicates} (bound {bound})")
    assert duplicates <= bound


def test_the_broker_sigkilled_and_restarted_on_its_data(model_path, tmp_path):
    kafka = Kafka(args=["--dir", str(tmp_path / "kafka")])
    try:
        bootstrap = Topics(kafka, TOPICS).bootstrap
        gen = generate(bootstrap, 100_000, rate=10_000)
        node = Node(bootstrap, model_path, sets=EVERY_RECORD_ALERTS)
        wait_for_consumed(node, 20_000)
        kafka.kill_broker(1)
        assert kafka.proc.wait(timeout=30) != 0  # deploy/kafka has no broker left
        wait_until(lambda: node.readyz()[0] == 503 and "cannot reach Kafka" in node.readyz()[1], node)
        kafka = Kafka(args=["--dir", str(tmp_path / "kafka")])
        assert kafka.bootstrap == bootstrap  # the same ports, kept with the data
        wait_until(lambda: node.readyz()[0] == 200, node)
        assert gen.wait(timeout=300) == 0, gen.stderr.read()
        duplicates = check_every_record_alerted(bootstrap, node)
        assert node.proc.poll() is None, "the node did not ride out the broker's restart:\n" + node.stderr()
        assert node.stop() == 0, node.stderr()
        print(f"duplicates across the broker's restart: {duplicates}")
    finally:
        kafka.stop()


def test_sigterm_with_kafka_gone_exits_within_drain_timeout(model_path, tmp_path):
    kafka = Kafka(args=["--dir", str(tmp_path / "kafka")])
    try:
        bootstrap = Topics(kafka, TOPICS).bootstrap
        gen = generate(bootstrap, 50_000, rate=10_000)
        node = Node(bootstrap, model_path, sets=[*EVERY_RECORD_ALERTS, "node.drain_timeout_ms=3000"])
        wait_for_consumed(node, 10_000)
        kafka.kill_broker(1)
        wait_until(lambda: node.readyz()[0] == 503, node)
        started = time.time()
        # Nothing can be committed: the exit says so (75), and it comes within the drain budget.
        assert node.stop() == 75, node.stderr()
        assert time.time() - started < 3 + 5, f"SIGTERM took {time.time() - started:.1f} s\n{node.stderr()}"
        assert "will be read again on the next start" in node.stderr()
        gen.kill()
    finally:
        kafka.stop()


def test_three_brokers_one_stopped_mid_stream(model_path):
    kafka = Kafka(brokers=3)
    try:
        bootstrap = Topics(kafka, TOPICS).bootstrap
        admin = kafka.admin()
        partitions = complete_metadata(admin)
        leaders = {p: m.leader for p, m in partitions.items()}
        assert all(len(m.replicas) == 3 for m in partitions.values())
        gen = generate(bootstrap, 200_000, rate=20_000)
        node = Node(bootstrap, model_path, sets=EVERY_RECORD_ALERTS)
        wait_for_consumed(node, 40_000)
        # Stop the leader of partition 0 without warning: its partitions get new leaders
        # from the remaining two, which still make min.insync.replicas=2.
        victim = leaders[0]
        kafka.kill_broker(victim)
        deadline = time.time() + 60
        while True:
            partition = admin.list_topics("transactions", timeout=10).topics["transactions"].partitions.get(0)
            moved = partition.leader if partition else -1
            if moved not in (victim, -1):
                break
            assert time.time() < deadline, "partition 0 never got a new leader"
            time.sleep(0.2)
        assert gen.wait(timeout=300) == 0, gen.stderr.read()
        duplicates = check_every_record_alerted(bootstrap, node)
        assert node.stop() == 0, node.stderr()
        print(f"partition 0's leader moved from broker {victim} to {moved}; duplicates: {duplicates}")
    finally:
        kafka.stop()


def test_members_leave_and_join_under_load(model_path):
    """Leaving and joining members drain what they hand over: one alert per record."""
    bootstrap = Topics(shared_kafka(), TOPICS).bootstrap
    sets = EVERY_RECORD_ALERTS
    first = Node(bootstrap, model_path, sets=sets)
    second = Node(bootstrap, model_path, sets=sets)
    gen = generate(bootstrap, 200_000, rate=20_000)
    wait_for_consumed(second, 10_000)
    assert second.stop() == 0, second.stderr()
    third = Node(bootstrap, model_path, sets=sets)
    wait_for_consumed(third, 10_000)
    assert gen.wait(timeout=300) == 0, gen.stderr.read()
    duplicates = check_every_record_alerted(bootstrap, first, third)
    assert first.stop() == 0, first.stderr()
    assert third.stop() == 0, third.stderr()
    assert duplicates == 0
