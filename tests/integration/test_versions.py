"""A model's versions on real Kafka: traffic split by key between two embedded versions (A/B),
and a shadow version (a remote one, behind a KServe v2 server) whose answers never alert but are
compared with the live version's and written to the shadow topic."""

import json
import os
import random
import re
import subprocess
import tempfile
from collections import Counter, defaultdict

import pytest

from fault_server import FaultServer
from harness import INFLOW, Broker, Feeder, Node, read_all, transaction, wait_until, wait_until_committed

RESULTS = ["pipelines.fraud.output.topic=fraud-results"]


@pytest.fixture
def broker():
    b = Broker({"transactions": 4, "fraud-alerts": 2, "transactions.dlq": 1, "fraud-results": 2,
                "fraud-shadow": 2})
    yield b
    b.stop()


@pytest.fixture(scope="module")
def weak_model_path():
    """A second version: trained on other data for few rounds, so its scores differ."""
    directory = os.path.join(tempfile.gettempdir(), "inflow-integration-model-weak")
    path = os.path.join(directory, "model.json")
    if not os.path.exists(path):
        subprocess.run([INFLOW, "train", "--out", directory, "--rows", "20000", "--rounds", "4", "--seed", "3"],
                       check=True, capture_output=True)
    return path


def feed_keys(bootstrap, keys, seed=1, fraud_every=50):
    """One transaction per key, in order; returns them by id."""
    feeder = Feeder(bootstrap)
    rng = random.Random(seed)
    sent = {}
    for i, key in enumerate(keys):
        tx = json.loads(transaction(rng, i, fraud_every and i % fraud_every == 0))
        tx.update(id=f"tx-{seed}-{i}", card_id=key)
        sent[tx["id"]] = tx
        feeder.send(json.dumps(tx).encode(), "tx", key.encode())
    feeder.producer.flush(30)
    assert not feeder.errors, feeder.errors
    return sent


def test_traffic_is_split_by_key_and_each_outcome_names_its_version(broker, model_path, weak_model_path):
    keys = [f"card-{i:06d}" for i in range(100_000)]
    feed_keys(broker.bootstrap, keys)
    feed_keys(broker.bootstrap, keys[:3000], seed=2)  # the same cards again: they must keep their version
    node = Node(broker.bootstrap, model_path, sets=RESULTS + [
        "models.fraud.versions.v1={}", f"models.fraud.versions.v2.path={weak_model_path}",
        "models.fraud.traffic={v1: 70, v2: 30}"])
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=120)
    metrics = node.metrics()
    status = json.loads(node.get("/api/status")[1])["pipelines"]["fraud"]
    assert node.stop() == 0, node.stderr()

    results = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-results", 2)]
    assert len({r["result_id"] for r in results}) == 103_000
    version_of_key = defaultdict(set)
    for r in results:
        assert r["model"] == "fraud"
        version_of_key[r["key"]].add(r["model_version"])
    assert all(len(v) == 1 for v in version_of_key.values()), "a card was scored by two versions"
    shares = Counter(next(iter(v)) for v in version_of_key.values())
    assert set(shares) == {"v1", "v2"}
    assert abs(shares["v2"] / len(keys) - 0.30) <= 0.02, shares

    # Alerts name the version that answered, and are exactly the results at or above the rule.
    alerts = {a["alert_id"]: a for a in (json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2))}
    expected = {r["result_id"]: r for r in results if r["score"] >= 0.9}
    assert set(alerts) == set(expected)
    assert all(alerts[i]["model_version"] == expected[i]["model_version"] for i in alerts)
    assert 0 < len(alerts) < len(results)

    # Per version: what it scored and alerted, in metrics and in the status.
    per_version = Counter(r["model_version"] for r in results)
    for v in ("v1", "v2"):
        assert metrics[f'inflow_version_scored_total{{pipeline="fraud",version="{v}"}}'] == per_version[v]
        alerted = sum(1 for a in alerts.values() if a["model_version"] == v)
        assert metrics[f'inflow_version_alerted_total{{pipeline="fraud",version="{v}"}}'] == alerted
    assert [(v["version"], v["share"], v["scored"]) for v in status["versions"]] == \
        [("v1", 0.7, per_version["v1"]), ("v2", 0.3, per_version["v2"])]
    assert status["versions"][1]["calls"]["rows"] == per_version["v2"]


def test_a_shadow_never_alerts_and_is_compared_with_the_live_version(broker, model_path):
    shadow = FaultServer()  # scores min(1, amount / 1000)
    try:
        sent = feed_keys(broker.bootstrap, [f"card-{i:05d}" for i in range(3000)])
        # Ordinary card-present purchases of 5,000: the live model sees nothing wrong, the shadow alerts.
        feeder = Feeder(broker.bootstrap)
        rng = random.Random(9)
        for i in range(100):
            tx = json.loads(transaction(rng, i, False))
            tx.update(id=f"big-{i}", card_id=f"big-{i}", amount=5000.0, amount_avg_30d=4000.0)
            sent[tx["id"]] = tx
            feeder.send(json.dumps(tx).encode(), "tx", tx["card_id"].encode())
        feeder.producer.flush(30)
        meta = json.load(open(os.path.join(os.path.dirname(model_path), "model.meta.json")))
        node = Node(broker.bootstrap, model_path, sets=RESULTS + [
            "models.fraud.versions.live={}", "models.fraud.shadow=remote",
            "models.fraud.versions.remote.provider=kserve", "models.fraud.versions.remote.path=~",
            f"models.fraud.versions.remote.endpoint={shadow.url}",
            f"models.fraud.versions.remote.input={json.dumps(meta['features'])}",
            "pipelines.fraud.shadow_topic=fraud-shadow"])
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=120)
        wait_until(lambda: node.metrics().get('inflow_shadow_written_total{pipeline="fraud",shadow="remote"}', 0)
                   + node.metrics().get('inflow_shadow_skipped_total{pipeline="fraud",shadow="remote"}', 0)
                   >= len(sent), node)
        metrics = node.metrics()
        status = json.loads(node.get("/api/status")[1])["pipelines"]["fraud"]
        printed = subprocess.run([INFLOW, "status", "--admin", node.admin], capture_output=True, text=True,
                                 timeout=10).stdout
        assert node.stop() == 0, node.stderr()
    finally:
        shadow.stop()

    results = {r["id"]: r for r in (json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-results", 2))}
    alerts = {a["tx_id"]: a for a in (json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2))}
    shadows = {s["id"]: s for s in (json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-shadow", 2))}
    assert len(results) == len(sent)
    assert {r["model_version"] for r in results.values()} == {"live"}
    # Alerts come from the live answers only: the shadow alerting on the big purchases changes nothing.
    assert set(alerts) == {i for i, r in results.items() if r["score"] >= 0.9}
    assert all(a["model_version"] == "live" for a in alerts.values())
    skipped = metrics['inflow_shadow_skipped_total{pipeline="fraud",shadow="remote"}']
    assert len(shadows) + skipped == len(sent) and len(shadows) > 0
    for i, s in shadows.items():
        assert s["model_version"] == "remote" and s["live"]["model_version"] == "live"
        assert s["score"] == pytest.approx(min(1.0, sent[i]["amount"] / 1000), abs=1e-5)
        assert s["live"]["score"] == pytest.approx(results[i]["score"], abs=1e-6)
        assert s["agrees"] == (s["alert"] == s["live"]["alert"]) and s["live"]["alert"] == (i in alerts)
    big = [s for i, s in shadows.items() if i.startswith("big-")]
    assert big and all(s["alert"] and not s["agrees"] for s in big if not s["live"]["alert"])
    assert any(not s["live"]["alert"] for s in big), "the live model alerted on every big purchase"
    # The comparison in metrics and in the status agrees with what was written.
    label = '{pipeline="fraud",version="live",shadow="remote"}'
    agreed = sum(1 for s in shadows.values() if s["agrees"])
    assert metrics[f"inflow_shadow_compared_total{label}"] == len(shadows)
    assert metrics[f"inflow_shadow_agreed_total{label}"] == agreed
    against = status["shadow"]["against"][0]
    assert against["version"] == "live" and against["compared"] == len(shadows)
    assert against["agreement"] == pytest.approx(agreed / len(shadows))
    assert status["shadow"]["version"] == "remote" and status["shadow"]["calls"]["rows"] >= len(shadows)
    assert re.search(r"version live +100\.0 %  scored 3100", printed), printed
    assert re.search(rf"vs live +{len(shadows)} compared, alert decision agrees {100 * agreed / len(shadows):.2f} %",
                     printed), printed


def test_a_shadow_that_is_down_changes_nothing_for_the_live_version(broker, model_path):
    meta = json.load(open(os.path.join(os.path.dirname(model_path), "model.meta.json")))
    sent = feed_keys(broker.bootstrap, [f"card-{i:05d}" for i in range(2000)])
    node = Node(broker.bootstrap, model_path, sets=RESULTS + [
        "models.fraud.versions.live={}", "models.fraud.shadow=gone",
        "models.fraud.versions.gone.provider=kserve", "models.fraud.versions.gone.path=~",
        "models.fraud.versions.gone.endpoint=http://127.0.0.1:1/v2/models/fraud/infer",
        f"models.fraud.versions.gone.input={json.dumps(meta['features'])}",
        "models.fraud.versions.gone.retry.max_attempts=1", "pipelines.fraud.shadow_topic=fraud-shadow"])
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=120)
    label = '{pipeline="fraud",shadow="gone"}'
    wait_until(lambda: node.metrics().get(f"inflow_shadow_failed_total{label}", 0)
               + node.metrics().get(f"inflow_shadow_skipped_total{label}", 0) == len(sent), node)
    assert node.readyz()[0] == 200, node.readyz()  # a failing shadow does not make the pipeline unready
    assert node.stop() == 0, node.stderr()
    results = read_all(broker.bootstrap, "fraud-results", 2)
    assert len(results) == len(sent)
    assert read_all(broker.bootstrap, "fraud-shadow", 2) == []
    assert read_all(broker.bootstrap, "transactions.dlq", 1) == []
