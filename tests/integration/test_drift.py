"""Drift on real Kafka: a node compares its model's live inputs and scores with the profile
`inflow train` wrote beside it, and writes a drift event when the stream shifts, not before."""

import json
import subprocess

import pytest

from harness import INFLOW, Broker, Node, read_all, wait_until, wait_until_committed

DRIFT = ["pipelines.fraud.drift.topic=fraud-drift", "pipelines.fraud.drift.window=2000"]


@pytest.fixture
def broker():
    b = Broker({"transactions": 4, "fraud-alerts": 2, "transactions.dlq": 1, "fraud-drift": 1})
    yield b
    b.stop()


def gen(bootstrap, count, *args):
    subprocess.run([INFLOW, "gen", "--bootstrap", bootstrap, "--count", str(count), "--seed", "7", *args],
                   check=True, capture_output=True, timeout=120)



def test_a_steady_stream_raises_no_drift(broker, model_path):
    gen(broker.bootstrap, 20_000)
    node = Node(broker.bootstrap, model_path, sets=DRIFT)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=120)
    status = json.loads(node.get("/api/status")[1])["pipelines"]["fraud"]["versions"][0]
    metrics = node.metrics()
    assert node.stop() == 0, node.stderr()
    drift = status["drift"]
    assert drift["windows_compared"] >= 50 and not drift["drifting"], drift
    assert max(drift["psi"].values()) < 0.1 and drift["score_ks"] < 0.1, drift
    version = status["version"]
    assert metrics[f'inflow_drift_detected{{pipeline="fraud",version="{version}"}}'] == 0
    assert metrics[f'inflow_drift_psi{{pipeline="fraud",version="{version}",feature="amount"}}'] == \
        pytest.approx(drift["psi"]["amount"])
    assert read_all(broker.bootstrap, "fraud-drift", 1) == []


def test_a_shifted_stream_writes_a_drift_event(broker, model_path):
    gen(broker.bootstrap, 20_000, "--shift-after", "8000")
    node = Node(broker.bootstrap, model_path, sets=DRIFT)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=120)
    wait_until(lambda: node.metrics().get('inflow_drift_events_total{pipeline="fraud",version="'
                                          + json.load(open(model_path.replace(".json", ".meta.json")))["version"]
                                          + '"}', 0) >= 1, node)
    assert node.stop() == 0, node.stderr()
    events = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-drift", 1)]
    assert events and events[0]["event"] == "drift_detected", events
    e = events[0]
    assert e["pipeline"] == "fraud" and e["model"] == "fraud" and e["window_records"] >= 2000
    # The first features to cross are those the shift moves most: spend against the card's own average.
    assert e["over"] and set(e["over"]) <= {"amount", "amount / amount_avg_30d", "channel == online",
                                             "card_present", "score"}, e
    assert all(e["psi"][f] > 0.2 for f in e["over"] if f != "score"), e
    assert e["reference_version"] == e["model_version"]
    assert "drift over the last" in node.stderr()
