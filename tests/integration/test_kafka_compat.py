"""Debian's librdkafka 2.0.2 (the library `inflow` links) against the Apache Kafka that
deploy/kafka runs: every compression codec, idempotence, transactions, cooperative-sticky
groups, commits and admin calls. What this finds is written up in docs/KAFKA.md."""

import time
import uuid

import confluent_kafka
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic

from harness import REAL_KAFKA, Broker

pytestmark = pytest.mark.skipif(not REAL_KAFKA, reason="checks Apache Kafka itself (INFLOW_TEST_BROKER=kafka)")


@pytest.fixture
def kafka():
    return Broker({"codecs": 1, "txn-in": 2, "txn-out": 2, "group": 6, "admin-probe": 1}).kafka


def consume(bootstrap, topic, partitions, count, **config):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", **config})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, deadline = [], time.time() + 30
    while len(out) < count and time.time() < deadline:
        out += [m for m in c.consume(1000, timeout=0.5) if not m.error()]
    # Anything beyond `count` would show up within a short extra wait.
    out += [m for m in c.consume(1000, timeout=1) if not m.error()]
    c.close()
    return out


def test_the_client_is_debians_librdkafka_2_0_2():
    assert confluent_kafka.libversion()[0] == "2.0.2"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_idempotent_produce_with_every_codec(kafka, codec):
    p = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "compression.codec": codec,
                  "linger.ms": 5})
    errors = []
    for i in range(2000):
        p.produce("codecs", b"%s-%d " % (codec.encode(), i) + b"x" * 200, key=b"k%d" % i,
                  on_delivery=lambda err, _: err and errors.append(err))
    assert p.flush(30) == 0 and not errors, errors
    got = [m.value() for m in consume(kafka.bootstrap, "codecs", 1, 2000)]
    assert got == [b"%s-%d " % (codec.encode(), i) + b"x" * 200 for i in range(2000)]


def test_transactions_commit_abort_and_send_offsets(kafka):
    bootstrap = kafka.bootstrap
    seed = Producer({"bootstrap.servers": bootstrap})
    for i in range(100):
        seed.produce("txn-in", b"in-%d" % i, partition=i % 2)
    seed.flush(10)

    # Read the input in a group; write outputs and the input offsets in one transaction.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-group", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe(["txn-in"])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "compat-txn"})
    producer.init_transactions(30)
    inputs, deadline = [], time.time() + 30
    while len(inputs) < 100 and time.time() < deadline:
        inputs += [m for m in consumer.consume(100, timeout=0.5) if not m.error()]
    assert len(inputs) == 100
    producer.begin_transaction()
    for m in inputs:
        producer.produce("txn-out", b"out-" + m.value(), partition=m.partition())
    offsets = [TopicPartition("txn-in", p, max(m.offset() for m in inputs if m.partition() == p) + 1) for p in (0, 1)]
    producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)

    # An aborted transaction is invisible to read_committed readers.
    producer.begin_transaction()
    for i in range(50):
        producer.produce("txn-out", b"aborted-%d" % i, partition=i % 2)
    producer.flush(10)
    producer.abort_transaction(30)

    committed = consumer.committed([TopicPartition("txn-in", p) for p in (0, 1)], timeout=10)
    assert sorted((t.partition, t.offset) for t in committed) == [(0, 50), (1, 50)]
    consumer.close()
    visible = consume(bootstrap, "txn-out", 2, 100, **{"isolation.level": "read_committed"})
    assert sorted(m.value() for m in visible) == sorted(b"out-in-%d" % i for i in range(100))
    everything = consume(bootstrap, "txn-out", 2, 150, **{"isolation.level": "read_uncommitted"})
    assert len(everything) == 150

    # A second producer with the same transactional.id fences the first.
    successor = Producer({"bootstrap.servers": bootstrap, "transactional.id": "compat-txn"})
    successor.init_transactions(30)
    producer.begin_transaction()
    producer.produce("txn-out", b"zombie", partition=0)
    with pytest.raises(KafkaException) as fenced:
        producer.commit_transaction(30)
    assert fenced.value.args[0].fatal() or "fenced" in str(fenced.value).lower()


def test_cooperative_sticky_group_and_commits(kafka):
    bootstrap = kafka.bootstrap
    assigned = {"a": set(), "b": set()}
    largest_revocation = {"a": 0, "b": 0}

    def member(name):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "coop", "enable.auto.commit": False,
                      "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 6000,
                      "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"})

        def on_assign(consumer, parts):
            assigned[name] |= {p.partition for p in parts}

        def on_revoke(consumer, parts):
            assigned[name] -= {p.partition for p in parts}
            largest_revocation[name] = max(largest_revocation[name], len(parts))

        c.subscribe(["group"], on_assign=on_assign, on_revoke=on_revoke)
        return c

    a = member("a")
    deadline = time.time() + 30
    while len(assigned["a"]) < 6:
        assert time.time() < deadline, assigned
        a.poll(0.1)
    b = member("b")
    while not (assigned["b"] and len(assigned["a"]) + len(assigned["b"]) == 6 and not assigned["a"] & assigned["b"]):
        assert time.time() < deadline, assigned
        a.poll(0.05)
        b.poll(0.05)
    # Incremental: the first member gave up only the partitions that moved (an eager
    # protocol revokes all six first).
    assert 0 < len(assigned["a"]) < 6
    assert largest_revocation["a"] == 6 - len(assigned["a"])

    a.commit(offsets=[TopicPartition("group", p, 7) for p in sorted(assigned["a"])], asynchronous=False)
    got = a.committed([TopicPartition("group", p) for p in sorted(assigned["a"])], timeout=10)
    assert {t.offset for t in got} == {7}
    b.close()
    while len(assigned["a"]) < 6:  # the leaver's partitions come back
        assert time.time() < deadline, assigned
        a.poll(0.1)
    a.close()


def test_admin_calls(kafka):
    admin = kafka.admin()
    name = f"admin-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, 2, config={"cleanup.policy": "compact"})])[name].result()
    admin.create_partitions([NewPartitions(name, 4)])[name].result()
    deadline = time.time() + 20
    while len(admin.list_topics(name, timeout=10).topics[name].partitions) != 4:
        assert time.time() < deadline
        time.sleep(0.2)
    config = admin.describe_configs([ConfigResource("topic", name)])
    [entries] = [f.result() for f in config.values()]
    assert entries["cleanup.policy"].value == "compact"
    broker_config = admin.describe_configs([ConfigResource("broker", "1")])
    [broker_entries] = [f.result() for f in broker_config.values()]
    assert broker_entries["auto.create.topics.enable"].value == "false"
    assert "1" in {str(b) for b in admin.list_topics(timeout=10).brokers}
    Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "listed"}).commit(
        offsets=[TopicPartition(name, 0, 1)], asynchronous=False)
    assert "listed" in {g.id for g in admin.list_groups(timeout=10)}
    admin.delete_topics([name], operation_timeout=30)[name].result()
