"""Avro with a schema registry on real Kafka: records in Confluent's wire format, their writers'
schemas fetched from the registry and resolved against the one the pipeline expects, through
schema changes (a field the pipeline expects missing, with a default; an int it reads as long; a
field it does not know); nested fields by path; alerts and results in Avro; and records that are
not what they claim go to the dead-letter topic saying why."""

import io
import json
import random
import subprocess
import time

import avro.io
import avro.schema
import pytest
from confluent_kafka import Producer

from harness import (EXAMPLE, INFLOW, Broker, Node, committed, headers, read_all, transaction, wait_until,
                     wait_until_committed)
from schema_registry import SchemaRegistry

FIELDS = [{"name": "meta", "type": {"type": "record", "name": "Meta", "fields": [{"name": "id", "type": "string"}]}},
          {"name": "card_id", "type": "string"}, {"name": "ts", "type": "long"}, {"name": "amount", "type": "double"},
          {"name": "currency", "type": "string"}, {"name": "mcc", "type": "int"},
          {"name": "channel", "type": {"type": "enum", "name": "Channel",
                                       "symbols": ["pos", "contactless", "online", "atm"]}},
          {"name": "card_present", "type": "boolean"}, {"name": "distance_km", "type": "double"},
          {"name": "secs_since_last", "type": "double"}, {"name": "amount_avg_30d", "type": "double"}]


def schema(*more):
    return {"type": "record", "name": "Transaction", "namespace": "inflow.test", "fields": FIELDS + list(more)}


# Three versions of the producers' schema. The pipeline expects V2, the latest when it starts:
# V1 records lack `region` (read as its default) and write tx_last_hour as int (read as long);
# V3, registered later, adds a field the pipeline does not know (skipped).
V1 = schema({"name": "tx_last_hour", "type": "int"})
V2 = schema({"name": "tx_last_hour", "type": "long"}, {"name": "region", "type": "string", "default": "EU"})
V3 = schema({"name": "tx_last_hour", "type": "long"}, {"name": "region", "type": "string", "default": "EU"},
            {"name": "device", "type": "string", "default": "unknown"})


@pytest.fixture
def broker():
    b = Broker({"transactions": 2, "fraud-alerts": 1, "transactions.dlq": 1, "fraud-results": 1})
    yield b
    b.stop()


def encode(schema_id, schema, datum):
    out = io.BytesIO()
    out.write(b"\0" + schema_id.to_bytes(4, "big"))
    avro.io.DatumWriter(avro.schema.parse(json.dumps(schema))).write(datum, avro.io.BinaryEncoder(out))
    return out.getvalue()


def decode(registry, subject, value):
    """A record in Confluent's framing, read with the schema its id names, registered under `subject`."""
    assert value[0] == 0
    schema_id = int.from_bytes(value[1:5], "big")
    assert schema_id in registry.subjects[subject]
    schema = avro.schema.parse(registry.schemas[schema_id - 1])
    return avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))


def datum(tx, version):
    d = {k: tx[k] for k in ("card_id", "ts", "currency", "mcc", "channel", "card_present", "tx_last_hour")}
    d.update({k: float(tx[k]) for k in ("amount", "distance_km", "secs_since_last", "amount_avg_30d")})
    d["meta"] = {"id": f"{tx['id']}-v{version}"}
    if version >= 2:
        d["region"] = "US"
    if version == 3:
        d["device"] = "phone"
    return d


def test_avro_records_evolve_through_the_registry(broker, model_path):
    registry = SchemaRegistry()
    try:
        ids = {1: registry.register("transactions-value", json.dumps(V1)),
               2: registry.register("transactions-value", json.dumps(V2))}
        node = Node(broker.bootstrap, model_path, sets=[
            "pipelines.fraud.source.format=avro", f"pipelines.fraud.schema_registry={registry.url}",
            "pipelines.fraud.source.id_field=meta.id", "pipelines.fraud.source.key_field=region",
            "pipelines.fraud.output.topic=fraud-results", "pipelines.fraud.output_format=avro"])
        ids[3] = registry.register("transactions-value", json.dumps(V3))  # after the node started
        writers = {1: V1, 2: V2, 3: V3}
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        rng = random.Random(5)
        txs = [json.loads(transaction(rng, i, i % 10 == 0)) for i in range(300)]
        for tx in txs:  # each transaction three times, as each version writes it
            for v in (1, 2, 3):
                producer.produce("transactions", encode(ids[v], writers[v], datum(tx, v)), key=tx["card_id"].encode())
        producer.produce("transactions", b"\0\0\0\x03\xe7" + b"\x02", key=b"unknown-schema")
        producer.produce("transactions", json.dumps(txs[0]).encode(), key=b"not-avro")
        producer.flush(10)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 2, timeout=90)
        assert node.stop() == 0, node.stderr()
    finally:
        registry.stop()  # its schemas stay readable here

    # Alerts and results are Avro too, each of the schema registered under its topic's subject.
    results = {r["id"]: r for r in (decode(registry, "fraud-results-value", m.value())
                                    for m in read_all(broker.bootstrap, "fraud-results", 1))}
    assert len(results) == 900
    for tx in txs:  # every version reads the same: same features, same score; the id from meta.id
        v1, v2, v3 = (results[f"{tx['id']}-v{v}"] for v in (1, 2, 3))
        assert v1["score"] == v2["score"] == v3["score"]
        assert v1["key"] == "EU" and v2["key"] == v3["key"] == "US"  # V1 records take region's default
    alerts = [decode(registry, "fraud-alerts-value", m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 1)]
    assert all(a["source"]["topic"] == "transactions" and a["model"] == "fraud" for a in alerts)
    assert {a["tx_id"] for a in alerts} == {i for i, r in results.items() if r["score"] >= 0.9} and alerts
    dead = {m.key(): headers(m) for m in read_all(broker.bootstrap, "transactions.dlq", 1)}
    assert set(dead) == {b"unknown-schema", b"not-avro"}
    for letter in dead.values():
        assert letter["__connect.errors.exception.class.name"] == "inflow.errors.invalid_avro"
    assert "schema id 999" in dead[b"unknown-schema"]["__connect.errors.exception.message"]
    assert "Confluent-framed" in dead[b"not-avro"]["__connect.errors.exception.message"]
    # Each schema was fetched once, however many records it wrote.
    fetched = [path for method, path in registry.requests if path.startswith("/schemas/ids/")]
    assert sorted(fetched) == sorted({f"/schemas/ids/{i}" for i in ids.values()} | {"/schemas/ids/999"}), fetched


def test_a_pipeline_refuses_to_start_without_its_schema(model_path):
    registry = SchemaRegistry()  # nothing registered under transactions-value
    try:
        r = subprocess.run([INFLOW, "validate", "-c", EXAMPLE, "--set", f"models.fraud.path={model_path}",
                            "--set", "pipelines.fraud.source.format=avro",
                            "--set", f"pipelines.fraud.schema_registry={registry.url}"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 78, r.stderr
        assert "pipelines.fraud.source.subject" in r.stderr and "transactions-value" in r.stderr, r.stderr
    finally:
        registry.stop()


def held_until_it_answers(broker, node, answer, said):
    """The 20 records whose writer's schema the registry has not given wait, uncommitted, none
    dead-lettered; once `answer()` lets it answer, every one is scored, and the log said `said`."""
    assert node.metric("inflow_records_in_flight") == 20
    assert not read_all(broker.bootstrap, "transactions.dlq", 1)
    assert all(o <= 0 for o in committed(broker.bootstrap, "inflow-fraud", "transactions", 2).values())
    answer()
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 2, timeout=60)
    assert node.stop() == 0, node.stderr()
    assert said in node.stderr()
    assert len(read_all(broker.bootstrap, "fraud-results", 1)) == 20
    assert not read_all(broker.bootstrap, "transactions.dlq", 1)


def test_a_registry_that_is_away_holds_the_records_until_it_answers(broker, model_path):
    """A registry that answers 503 for a while: the records whose writer's schema it has not given
    wait, uncommitted, none dead-lettered, while the node keeps asking; when it answers again,
    every one is scored."""
    registry = SchemaRegistry()
    try:
        v2 = registry.register("transactions-value", json.dumps(V2))
        node = Node(broker.bootstrap, model_path, sets=[
            "pipelines.fraud.source.format=avro", f"pipelines.fraud.schema_registry={registry.url}",
            "pipelines.fraud.source.id_field=meta.id", "pipelines.fraud.source.key_field=region",
            "pipelines.fraud.output.topic=fraud-results"])
        registry.away = True  # before any record: no writer's schema is fetched yet
        rng = random.Random(1)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(20):
            tx = json.loads(transaction(rng, i, False))
            producer.produce("transactions", encode(v2, V2, datum(tx, 2)), key=tx["card_id"].encode())
        producer.flush(10)
        asked = lambda: sum(1 for _, path in list(registry.requests) if path.startswith("/schemas/ids/"))
        deadline = time.time() + 60
        while node.metric("inflow_records_consumed_total") < 20 or asked() < 4:
            assert time.time() < deadline, (asked(), node.stderr())
            time.sleep(0.2)
        def answer():
            registry.away = False
        held_until_it_answers(broker, node, answer, "until the schema registry answers")
    finally:
        registry.stop()


def test_a_registry_that_does_not_answer_holds_only_the_records_that_need_it(model_path):
    """A registry that takes requests and never answers (a route that drops packets), while every
    partition meets a writer's schema the node has not fetched: those records wait for it, and
    nothing else in the node does (a second pipeline keeps flowing). When it answers they are
    scored, none dead-lettered."""
    broker = Broker({"transactions": 2, "fraud-alerts": 1, "transactions.dlq": 1, "fraud-results": 1,
                     "cards": 1, "card-results": 1, "cards.dlq": 1})
    registry = SchemaRegistry()
    try:
        registry.register("transactions-value", json.dumps(V2))
        v3 = registry.register("devices-value", json.dumps(V3))  # a writer's schema the node has not met
        node = Node(broker.bootstrap, model_path, sets=[
            "pipelines.fraud.source.format=avro", f"pipelines.fraud.schema_registry={registry.url}",
            "pipelines.fraud.source.id_field=meta.id", "pipelines.fraud.source.key_field=region",
            "pipelines.fraud.output.topic=fraud-results",
            "pipelines.cards.source.topic=cards", "pipelines.cards.model=fraud",
            "pipelines.cards.output.topic=card-results", "pipelines.cards.dead_letter_topic=cards.dlq"])
        registry.silent = True
        rng = random.Random(3)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(20):
            tx = json.loads(transaction(rng, i, False))
            producer.produce("transactions", encode(v3, V3, datum(tx, 3)), partition=i % 2)
        producer.flush(10)
        asked = lambda: any(path == f"/schemas/ids/{v3}" for _, path in list(registry.requests))
        wait_until(lambda: node.metric("inflow_records_consumed_total") == 20 and asked(), node)

        for i in range(2000):
            producer.produce("cards", transaction(rng, i, False))
        producer.flush(10)
        wait_until(lambda: node.metric("inflow_records_scored_total", "cards") == 2000, node, timeout=30)
        def answer():
            registry.silent = False
        held_until_it_answers(broker, node, answer, "the schema registry has not answered yet")
    finally:
        registry.silent = False
        registry.stop()
