"""Records the broker deleted before the node read them are counted, never silent."""

import time

from harness import Broker, Feeder, Node, wait_until_committed

SETS = ["kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]


def test_records_lost_to_retention_are_counted(model_path):
    broker = Broker({"transactions": 1, "fraud-alerts": 1, "transactions.dlq": 1})
    try:
        feeder = Feeder(broker.bootstrap)
        feeder.feed(1000, poison_every=0)
        node = Node(broker.bootstrap, model_path, sets=SETS)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 1)
        assert node.stop() == 0

        # While the node is down, write more than the development broker keeps
        # (about 5 MiB per partition): the oldest unread records are deleted.
        big = Feeder(broker.bootstrap)
        pad = b" " * 1500
        for i in range(6000):
            big.send(b'{"id":"b%d","card_id":"c","pad":"%s"}' % (i, pad), "legit", b"k")
        big.producer.flush(30)

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
