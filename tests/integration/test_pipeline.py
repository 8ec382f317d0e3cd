"""Every input record ends in exactly one outcome: alert, no alert or dead letter."""

import json

from harness import POISON, Feeder, Node, headers, read_all, wait_until_committed

RECORDS = 20000


def test_every_record_accounted_for_exactly_once(broker, model_path):
    feeder = Feeder(broker.bootstrap)
    feeder.feed(RECORDS)
    assert len(feeder.landed) == RECORDS

    # A small in-flight window against a 20k backlog: partitions must pause and resume.
    node = Node(broker.bootstrap, model_path, sets=["pipelines.fraud.max_in_flight=200"])
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
    assert node.metric("inflow_partition_pauses_total") > 0
    assert node.metric("inflow_records_in_flight") == 0
    status, body = node.get("/readyz")
    assert status == 200
    consumed = node.metric("inflow_records_consumed_total")
    alerted = node.metric("inflow_records_alerted_total")
    no_alert = node.metric("inflow_records_no_alert_total")
    dead = node.metric("inflow_records_dead_lettered_total")
    assert consumed == RECORDS
    assert alerted + no_alert + dead == RECORDS
    status_json = json.loads(node.get("/api/status")[1])
    assert status_json["pipelines"]["fraud"]["consumed"] == RECORDS
    assert node.stop() == 0, node.stderr()

    poison = {k for k, (kind, _) in feeder.landed.items() if kind in POISON}
    fraud = {k for k, (kind, _) in feeder.landed.items() if kind == "fraud"}
    legit = {k for k, (kind, _) in feeder.landed.items() if kind == "legit"}

    # Alerts: unique, deterministic ids, only for scored records.
    alerts = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2)]
    assert len(alerts) == alerted
    sources = [(a["source"]["partition"], a["source"]["offset"]) for a in alerts]
    assert len(set(sources)) == len(sources), "an alert was written twice"
    assert not set(sources) & poison
    for a in alerts:
        p, o = a["source"]["partition"], a["source"]["offset"]
        assert a["alert_id"] == f"transactions/{p}/{o}"
        assert a["source"]["topic"] == "transactions"
        assert a["score"] >= 0.9
        assert a["model"] == "fraud" and a["model_version"].startswith("fraud-")
        assert json.loads(feeder.landed[(p, o)][1])["id"] == a["tx_id"]
    # The model really scores: fraud-like records alert, ordinary ones rarely.
    assert len(set(sources) & fraud) > 0.8 * len(fraud)
    assert len(set(sources) & legit) < 0.01 * len(legit)

    # Dead letters: exactly the poison records, unchanged, with Connect-style headers.
    dlq = read_all(broker.bootstrap, "transactions.dlq", 1)
    assert len(dlq) == len(poison) == dead
    seen = set()
    for m in dlq:
        h = headers(m)
        key = (int(h["__connect.errors.partition"]), int(h["__connect.errors.offset"]))
        assert h["__connect.errors.topic"] == "transactions"
        kind, value = feeder.landed[key]
        assert h["__connect.errors.exception.class.name"] == kind
        assert h["__connect.errors.exception.message"]
        assert (m.value() or b"") == value
        seen.add(key)
    assert seen == poison


def test_msgpack_records_are_scored(broker, model_path):
    import msgpack_encode
    feeder = Feeder(broker.bootstrap)
    for i in range(500):
        feeder.send(msgpack_encode.transaction(i, fraud=(i % 10 == 0)), "fraud" if i % 10 == 0 else "legit", b"k")
    feeder.send(b"\xc1", "inflow.errors.invalid_msgpack", b"k")
    feeder.producer.flush(10)
    node = Node(broker.bootstrap, model_path, sets=["pipelines.fraud.source.format=msgpack"])
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
    assert node.metric("inflow_records_scored_total") == 500
    assert node.metric("inflow_records_dead_lettered_total") == 1
    assert node.metric("inflow_records_alerted_total") >= 40
    assert node.stop() == 0


def test_a_record_too_big_for_the_dead_letter_topic_is_truncated_not_stuck(broker, model_path):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4_000_000})
    huge = b'{"pad":"' + b"x" * 2_000_000 + b'"}'
    p.produce("transactions", huge, key=b"big", partition=0)
    p.flush(10)
    node = Node(broker.bootstrap, model_path)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
    assert node.stop() == 0
    [dead] = read_all(broker.bootstrap, "transactions.dlq", 1)
    h = headers(dead)
    assert h["__connect.errors.exception.class.name"] == "inflow.errors.oversized"
    assert h["inflow.value.truncated_from_bytes"] == str(len(huge))
    assert huge.startswith(dead.value()) and len(dead.value()) < 1_000_000
