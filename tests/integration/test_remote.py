"""Scoring through the kserve gateway against `inflow serve`: the same
decisions as the embedded model, in batches, over real HTTP."""

import json
import subprocess
import threading
import urllib.request

import pytest

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


def test_the_model_server_answers_each_of_many_concurrent_callers_its_own_scores(model_path, tmp_path):
    # Concurrent requests are batched into one model call and the scores split back. wrk's 64
    # connections of one row each crashed `inflow serve` once (a job was read after its caller had
    # returned); meanwhile threads with 1-3 rows of their own check they get their own scores.
    server = ModelServer(model_path)
    url = server.url + "/v2/models/fraud/infer"
    width = len(json.load(open(model_path.replace("model.json", "model.meta.json")))["features"])

    def infer(rows):
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), width], "datatype": "FP32",
                                       "data": rows}]}).encode()
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["outputs"][0]["data"]

    callers = [[[float(100 * c + 7 * r + f) for f in range(width)] for r in range(1 + c % 3)] for c in range(8)]
    expected = [infer(rows) for rows in callers]
    assert len({tuple(e) for e in expected}) > 1  # different rows, different scores: a mix-up would show
    script = tmp_path / "one_row.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [=[%s]=]\n'
                      % json.dumps({"inputs": [{"name": "input-0", "shape": [1, width], "datatype": "FP32",
                                                "data": [[1.0] * width]}]}))
    wrk = subprocess.Popen(["wrk", "-t2", "-c64", "-d4s", "-s", str(script), url], stdout=subprocess.PIPE, text=True)
    wrong = []

    def call(i):
        while wrk.poll() is None:
            got = infer(callers[i])
            if got != pytest.approx(expected[i]):
                wrong.append((i, got, expected[i]))

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(callers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = wrk.communicate()[0]
        assert server.proc.poll() is None, server.stderr()
        assert "Non-2xx" not in out, out
        assert not wrong, wrong[:3]
    finally:
        wrk.kill()
        server.stop()
