"""Records the broker deleted before the node read them are counted, never silent."""

import time

from confluent_kafka import Consumer, TopicPartition

from harness import Broker, Feeder, Node, wait_until_committed

SETS = ["kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]


def test_records_lost_to_retention_are_counted(model_path):
    # Kafka keeps 1 MiB of this topic (the smallest segment it allows); the development
    # broker keeps about 5 MiB of every partition.
    broker = Broker({"transactions": 1, "fraud-alerts": 1, "transactions.dlq": 1},
                    configs={"transactions": {"retention.bytes": "1048576", "segment.bytes": "1048576"}})
    try:
        feeder = Feeder(broker.bootstrap)
        feeder.feed(1000, poison_every=0)
        node = Node(broker.bootstrap, model_path, sets=SETS)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 1)
        assert node.stop() == 0

        # While the node is down, write more than the broker keeps: the oldest unread
        # records are deleted.
        big = Feeder(broker.bootstrap)
        pad = b" " * 1500
        for i in range(6000):
            big.send(b'{"id":"b%d","card_id":"c","pad":"%s"}' % (i, pad), "legit", b"k")
        big.producer.flush(30)
        wait_for_stable_log_start(broker.bootstrap, above=1000)

        node = Node(broker.bootstrap, model_path, sets=SETS)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 1)
        lost = node.metric("inflow_records_lost_to_retention_total")
        consumed = node.metric("inflow_records_consumed_total")
        assert node.stop() == 0
        assert lost > 0
        assert lost + consumed == 6000, (lost, consumed)
        assert "lost to retention" in node.stderr()
    finally:
        broker.stop()


def wait_for_stable_log_start(bootstrap, above, timeout=30):
    """Until the broker has deleted records past offset `above` and stopped deleting."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        start = c.get_watermark_offsets(TopicPartition("transactions", 0), timeout=10)[0]
        if start > above and start == last:
            break
        last = start
        time.sleep(1.5)
    c.close()
    assert last is not None and last > above, f"the broker kept everything from offset {last}"
