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
