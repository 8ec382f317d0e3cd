"""Hot reload on real Kafka: SIGHUP and POST /api/reload read the config and the model files again,
check them as a start would, and apply them while records flow, losing and repeating none. An
invalid config is refused with its errors, and the running one stays."""

import json
import os
import shutil
import signal
import subprocess
import random
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from harness import (EXAMPLE, INFLOW, Broker, Feeder, Node, read_all, transaction, wait_until,
                     wait_until_committed)

RESULTS = ["pipelines.fraud.output.topic=fraud-results"]


@pytest.fixture
def broker():
    b = Broker({"transactions": 4, "fraud-alerts": 2, "transactions.dlq": 1, "fraud-results": 2})
    yield b
    b.stop()


@pytest.fixture(scope="module")
def other_model():
    """Another training of the model: the same inputs, another version."""
    directory = os.path.join(tempfile.gettempdir(), "inflow-integration-model-retrained")
    if not os.path.exists(os.path.join(directory, "model.profile.json")):  # written last
        subprocess.run([INFLOW, "train", "--out", directory, "--rows", "20000", "--rounds", "10", "--seed", "5"],
                       check=True, capture_output=True)
    return directory


def post_reload(node):
    request = urllib.request.Request(node.admin + "/api/reload", method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def own_config_and_model(tmp_path, model_path):
    """A config file and a model folder of the test's own, both to be changed while the node runs."""
    models = tmp_path / "models"
    shutil.copytree(os.path.dirname(model_path), models)
    config = tmp_path / "node.yaml"
    config.write_text(open(EXAMPLE).read())
    return config, models


def test_a_reload_under_load_applies_the_new_rule_and_model_losing_and_repeating_nothing(
        broker, model_path, other_model, tmp_path):
    config, models = own_config_and_model(tmp_path, model_path)
    node = Node(broker.bootstrap, str(models / "model.json"), sets=RESULTS, config=str(config))
    feeder = Feeder(broker.bootstrap)
    feeding = threading.Thread(target=feeder.feed, args=(30_000,), kwargs=dict(rate=6000, seed=3, poison_every=0))
    feeding.start()
    try:
        wait_until(lambda: node.metric("inflow_records_scored_total") > 5000, node)
        # 1. A new alert rule, by SIGHUP.
        config.write_text(config.read_text().replace("when: score >= 0.9", "when: score >= 0.5"))
        node.proc.send_signal(signal.SIGHUP)
        node.wait_for_stderr(r"reload: pipelines restarted", timeout=60)
        scored_at_second = node.metric("inflow_records_scored_total")
        wait_until(lambda: node.metric("inflow_records_scored_total") > scored_at_second + 5000, node)
        # 2. The model trained again into the same file, by POST /api/reload.
        for f in ("model.json", "model.meta.json"):
            shutil.copy(os.path.join(other_model, f), models / f)
        status, body = post_reload(node)
        assert status == 200 and body["reloaded"], body
        assert body["summary"].startswith("models reloaded: fraud ("), body
    finally:
        feeding.join()
    # Records sent once the reload has answered, one in ten fraud: the new model scores them (and
    # alerts under the new rule), however fast the host drained the stream meanwhile.
    rng = random.Random(4)
    for i in range(1000):
        tx = json.loads(transaction(rng, i, i % 10 == 0))
        tx["id"] = f"after-reload-{i}"
        feeder.send(json.dumps(tx).encode(), "fraud" if i % 10 == 0 else "legit", tx["card_id"].encode())
    feeder.producer.flush(30)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=120)
    assert node.stop() == 0, node.stderr()

    results = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-results", 2)]
    counts = Counter(r["id"] for r in results)
    assert len(counts) == 31_000 and max(counts.values()) == 1, "lost or repeated records"
    versions = [v for v in dict.fromkeys(r["model_version"] for r in sorted(results, key=lambda r: r["ts"]))]
    new_version = json.load(open(os.path.join(other_model, "model.meta.json")))["version"]
    assert new_version in versions and len(versions) == 2, versions
    assert {r["model_version"] for r in results if r["id"].startswith("after-reload-")} == {new_version}
    by_id = {r["id"]: r for r in results}
    alerts = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2)]
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    # Alerts under the new rule: scores from 0.5 that the old one would not have alerted on.
    assert any(0.5 <= a["score"] < 0.9 for a in alerts)
    assert all(a["score"] >= 0.5 for a in alerts)
    assert all(by_id[a["tx_id"]]["score"] == pytest.approx(a["score"], abs=1e-6) for a in alerts)


def test_an_invalid_config_is_refused_with_its_errors_and_the_running_one_stays(broker, model_path, tmp_path):
    config, models = own_config_and_model(tmp_path, model_path)
    node = Node(broker.bootstrap, str(models / "model.json"), sets=RESULTS, config=str(config))
    good = config.read_text()
    Feeder(broker.bootstrap).feed(1000, seed=1, poison_every=0)
    wait_until(lambda: node.metric("inflow_records_scored_total") == 1000, node)

    status, body = post_reload(node)
    assert status == 200 and body["summary"] == "nothing changed", body

    config.write_text(good.replace("max_batch: 256", "max_batch: lots"))
    line = next(i + 1 for i, l in enumerate(config.read_text().splitlines()) if "max_batch: lots" in l)
    status, body = post_reload(node)
    assert status == 422 and not body["reloaded"], body
    assert {"path": "models.fraud.batch.max_batch", "line": line,
            "message": "expected an integer, got 'lots'"} in body["errors"], body
    node.proc.send_signal(signal.SIGHUP)
    node.wait_for_stderr(rf"reload: {config}:{line}: models.fraud.batch.max_batch: expected an integer")
    node.wait_for_stderr(r"reload refused: the config has errors; the running config stays")

    config.write_text(good)  # the config as it was, but the model file broken: checked first too
    model = (models / "model.json").read_bytes()
    (models / "model.json").write_bytes(model[:len(model) // 2])
    status, body = post_reload(node)
    assert status == 422 and body["summary"] == "the config or a model file has errors", body
    assert any(e["path"] == "models.fraud" for e in body["errors"]), body
    (models / "model.json").write_bytes(model)

    config.write_text(good.replace("group.id: inflow-fraud", "group.id: inflow-fraud\n  client.rack: rack-2"))
    status, body = post_reload(node)
    assert status == 422 and body["errors"][0]["path"] == "kafka" and "restart" in body["errors"][0]["message"]

    # The running config still scores and alerts as before.
    Feeder(broker.bootstrap).feed(1000, seed=2, poison_every=0)
    wait_until(lambda: node.metric("inflow_records_scored_total") == 2000, node)
    assert node.readyz()[0] == 200
    assert node.stop() == 0, node.stderr()


def test_a_version_trained_again_into_its_file_is_reloaded(broker, model_path, other_model, tmp_path):
    # A version's name stays what the config says when its file is trained again: the file itself
    # tells the reload that it changed.
    config, models = own_config_and_model(tmp_path, model_path)
    node = Node(broker.bootstrap, str(models / "model.json"), sets=RESULTS + ["models.fraud.versions.v1={}"],
                config=str(config))
    status, body = post_reload(node)
    assert status == 200 and body["summary"] == "nothing changed", body
    for f in ("model.json", "model.meta.json", "model.profile.json"):
        shutil.copy(os.path.join(other_model, f), models / f)
    status, body = post_reload(node)
    assert status == 200 and body["summary"].startswith("models reloaded: fraud@v1 ("), body
    assert node.stop() == 0, node.stderr()
