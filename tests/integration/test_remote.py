"""Scoring through the kserve gateway against `inflow serve`: the same
decisions as the embedded model, in batches, over real HTTP."""

import json
import urllib.request

from harness import POISON, Feeder, ModelServer, Node, read_all, remote_sets, wait_until_committed


def alert_sources(bootstrap, topic):
    return {(a["source"]["partition"], a["source"]["offset"])
            for a in (json.loads(m.value()) for m in read_all(bootstrap, topic, 2))}


def test_remote_scoring_matches_the_embedded_model(broker, model_path):
    feeder = Feeder(broker.bootstrap)
    feeder.feed(10000, seed=9)
    server = ModelServer(model_path)
    try:
        node = Node(broker.bootstrap, model_path,
                    sets=remote_sets(server.url + "/v2/models/fraud/infer", model_path))
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
        batches = node.metrics()['inflow_gateway_batches_total{model="fraud"}']
        assert node.stop() == 0, node.stderr()
        with urllib.request.urlopen(server.url + "/metrics") as r:
            served = r.read().decode()
    finally:
        server.stop()
    assert batches < 10000 / 10, "rows were not batched"
    assert 'inflow_serve_requests_total{model="fraud",outcome="ok"}' in served

    embedded = Node(broker.bootstrap, model_path, group="reference",
                    sets=["pipelines.fraud.alert.topic=ref-alerts", "pipelines.fraud.dead_letter_topic=ref-dlq"])
    wait_until_committed(broker.bootstrap, "reference", "transactions", 4)
    assert embedded.stop() == 0
    remote_alerts = alert_sources(broker.bootstrap, "fraud-alerts")
    assert remote_alerts and remote_alerts == alert_sources(broker.bootstrap, "ref-alerts")
    dead = read_all(broker.bootstrap, "transactions.dlq", 1)
    assert len(dead) == sum(1 for kind, _ in feeder.landed.values() if kind in POISON)


def test_the_rows_left_after_a_full_batch_are_not_forgotten(broker, model_path):
    # One partition and a backlog: the partition asks for more rows than a batch
    # holds at once, so a full batch leaves rows behind that only the linger
    # timer can send.
    feeder = Feeder(broker.bootstrap)
    for i in range(300):
        feeder.send(json.dumps({"id": f"t{i}", "card_id": "same-card", "amount": 10.0 + i, "amount_avg_30d": 50.0,
                                "distance_km": 1.0, "secs_since_last": 9000.0, "tx_last_hour": 0,
                                "card_present": True, "channel": "pos", "mcc": 5411}).encode(), "legit", b"same-card")
    feeder.producer.flush(10)
    server = ModelServer(model_path)
    try:
        node = Node(broker.bootstrap, model_path,
                    sets=remote_sets(server.url + "/v2/models/fraud/infer", model_path,
                                     ["models.fraud.batch.max_batch=256", "models.fraud.batch.max_linger_ms=5"]))
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=30)
        assert node.metric("inflow_records_scored_total") == 300
        assert node.stop() == 0
    finally:
        server.stop()
