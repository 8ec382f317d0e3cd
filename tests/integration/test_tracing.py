"""W3C trace context across the pipe: a record's `traceparent` reaches its alert, its dead letter
and the model call made for it, each naming the record's own span (a child of the record's)."""

import json
import os
import random
import re

from confluent_kafka import Producer

from fault_server import FaultServer
from harness import Node, headers, read_all, remote_sets, transaction, wait_until, wait_until_committed

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REFUSED = "0af7651916cd43dd8448eb211c80319c"
CHILD = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(01)$")


def send(producer, tx_id, amount, traceparent=None):
    tx = json.loads(transaction(random.Random(tx_id), 0, False))
    tx.update(id=tx_id, amount=amount)
    producer.produce("transactions", json.dumps(tx).encode(), key=tx_id.encode(),
                     headers=[("traceparent", traceparent.encode())] if traceparent else None)


def test_a_records_traceparent_reaches_its_outputs_and_the_provider(broker, model_path):
    provider = FaultServer()  # scores min(1, amount / 1000); the example alerts from 0.9
    provider.refuse_amount = 777.77
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        send(producer, "traced", 950, f"00-{TRACE}-00f067aa0ba902b7-01")
        send(producer, "refused", 777.77, f"00-{REFUSED}-b7ad6b7169203331-01")
        send(producer, "untraced", 960)
        send(producer, "malformed", 970, f"00-{TRACE.upper()}-00f067aa0ba902b7-01")
        producer.flush(10)
        # One record a call, so that each call carries its record's context.
        node = Node(broker.bootstrap, model_path, sets=remote_sets(provider.url, model_path,
                                                                   ["models.fraud.batch.max_batch=1"]))
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
        assert node.stop() == 0, node.stderr()
    finally:
        provider.stop()
    alerts = {json.loads(m.value())["tx_id"]: headers(m) for m in read_all(broker.bootstrap, "fraud-alerts", 2)}
    assert set(alerts) == {"traced", "untraced", "malformed"}
    assert "traceparent" not in alerts["untraced"] and "traceparent" not in alerts["malformed"]
    traced = CHILD.match(alerts["traced"]["traceparent"])
    assert traced and traced.group(1) == TRACE and traced.group(2) not in ("00f067aa0ba902b7", "0" * 16)
    dead = read_all(broker.bootstrap, "transactions.dlq", 1)
    assert [json.loads(m.value())["id"] for m in dead] == ["refused"]
    refused = CHILD.match(headers(dead[0])["traceparent"])
    assert refused and refused.group(1) == REFUSED
    # The provider saw each traced record's call under the record's span, and the others with none.
    sent = [t for t in provider.traceparents if t]
    assert alerts["traced"]["traceparent"] in sent
    assert headers(dead[0])["traceparent"] in sent
    assert len(provider.traceparents) - len(sent) == 2  # untraced, malformed


def test_an_embedded_model_traces_outputs_and_its_remote_shadow_gets_the_context(broker, model_path):
    # An in-process model makes no call to carry the context; its outputs still carry it, and so do
    # the calls of a remote shadow scoring copies of its records.
    shadow = FaultServer()
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        send(producer, "untraced", 20)
        send(producer, "traced", 30, f"00-{TRACE}-00f067aa0ba902b7-01")
        producer.flush(10)
        meta = json.load(open(os.path.join(os.path.dirname(model_path), "model.meta.json")))
        node = Node(broker.bootstrap, model_path, sets=[
            "pipelines.fraud.output.topic=ref-alerts",  # results, on a topic the fixture made
            "models.fraud.versions.live={}", "models.fraud.shadow=remote",
            "models.fraud.versions.remote.provider=kserve", "models.fraud.versions.remote.path=~",
            f"models.fraud.versions.remote.endpoint={shadow.url}",
            f"models.fraud.versions.remote.input={json.dumps(meta['features'])}"])
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
        wait_until(lambda: node.metrics().get('inflow_shadow_compared_total{pipeline="fraud",version="live",'
                                              'shadow="remote"}', 0) == 2, node)
        assert node.stop() == 0, node.stderr()
    finally:
        shadow.stop()
    results = {json.loads(m.value())["id"]: headers(m) for m in read_all(broker.bootstrap, "ref-alerts", 2)}
    assert set(results) == {"traced", "untraced"} and "traceparent" not in results["untraced"]
    traced = CHILD.match(results["traced"]["traceparent"])
    assert traced and traced.group(1) == TRACE
    assert results["traced"]["traceparent"] in shadow.traceparents
