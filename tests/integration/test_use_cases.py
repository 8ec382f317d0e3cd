"""The use cases besides fraud, end to end on real Kafka, each from its example config and its own
generator: predictive maintenance (alerts before machines fail), personalization (offer scores
keyed by user) and support (replies from an OpenAI-compatible server). And `inflow demo
--use-case` for each."""

import json
import os
import re
import subprocess
import tempfile
from collections import defaultdict

import pytest

from harness import INFLOW, ROOT, Broker, Node, Process, read_all, headers, wait_until_committed

EXAMPLES = os.path.join(ROOT, "config", "examples")


def auc(scores, labels):
    """Area under the ROC curve: how often a positive outranks a negative (ties count half)."""
    ranked = sorted(zip(scores, labels))
    positives = sum(labels)
    negatives = len(labels) - positives
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += sum(label for _, label in ranked[i:j]) * (i + j + 1) / 2
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def trained(use_case):
    """The use case's model, trained once for the module (smaller than the demo's)."""
    directory = os.path.join(tempfile.gettempdir(), f"inflow-integration-{use_case}")
    if not os.path.exists(os.path.join(directory, "model.profile.json")):
        subprocess.run([INFLOW, "train", "--use-case", use_case, "--out", directory, "--rows", "40000"],
                       check=True, capture_output=True, timeout=300)
    return directory


def gen(bootstrap, use_case, count):
    subprocess.run([INFLOW, "gen", "--bootstrap", bootstrap, "--use-case", use_case, "--count", str(count),
                    "--seed", "11"], check=True, capture_output=True, timeout=120)


def labels(bootstrap, topic, partitions):
    """Each input's ground truth (header inflow.label), by the id in its JSON."""
    out = {}
    for m in read_all(bootstrap, topic, partitions):
        value = json.loads(m.value())
        out[value.get("id") or value.get("message_id")] = float(headers(m)["inflow.label"])
    return out


def test_maintenance_alerts_come_before_machines_fail(tmp_path):
    broker = Broker({"telemetry": 4, "maintenance-alerts": 1, "remaining-life": 2, "telemetry.dlq": 1,
                     "maintenance-drift": 1})
    model = os.path.join(trained("maintenance"), "model.json")
    gen(broker.bootstrap, "maintenance", 20_000)  # 200 machines, 100 hours each
    node = Node(broker.bootstrap, None, group="inflow-maintenance", config=os.path.join(EXAMPLES, "maintenance.yaml"),
                sets=[f"models.remaining-life.path={model}"])
    wait_until_committed(broker.bootstrap, "inflow-maintenance", "telemetry", 4, timeout=120)
    assert node.stop() == 0, node.stderr()
    truth = labels(broker.bootstrap, "telemetry", 4)
    results = [json.loads(m.value()) for m in read_all(broker.bootstrap, "remaining-life", 2)]
    assert {r["id"] for r in results} == set(truth)
    alerts = [json.loads(m.value()) for m in read_all(broker.bootstrap, "maintenance-alerts", 1)]
    alerted = {a["reading_id"] for a in alerts}
    assert all(a["score"] <= 48 and a["model"] == "remaining-life" for a in alerts)
    # Readings from machines with a day or less left are alerted on; healthy ones almost never.
    soon = [i for i, hours in truth.items() if hours <= 24]
    healthy = [i for i, hours in truth.items() if hours >= 200]
    assert sum(i in alerted for i in soon) >= 0.8 * len(soon), len(soon)
    assert sum(i in alerted for i in healthy) <= 0.02 * len(healthy), len(healthy)
    # Every machine that failed (0 hours left) was alerted on in the two days before.
    by_machine = defaultdict(list)
    for r in sorted(results, key=lambda r: r["id"]):  # ids count up in the order written
        by_machine[r["key"]].append(r["id"])
    failures = warned = 0
    for machine, ids in by_machine.items():
        for k, reading in enumerate(ids):
            if truth[reading] == 0:
                failures += 1
                warned += any(i in alerted and 0 < truth[i] <= 48 for i in ids[max(0, k - 48):k])
    assert failures > 10 and warned >= 0.9 * failures, (failures, warned)


def test_personalization_scores_offers_by_user(tmp_path):
    broker = Broker({"user-events": 4, "offer-scores": 2, "offers-to-send": 1, "user-events.dlq": 1})
    model = os.path.join(trained("personalization"), "model.json")
    gen(broker.bootstrap, "personalization", 10_000)
    node = Node(broker.bootstrap, None, group="inflow-personalization",
                config=os.path.join(EXAMPLES, "personalization.yaml"), sets=[f"models.offers.path={model}"])
    wait_until_committed(broker.bootstrap, "inflow-personalization", "user-events", 4, timeout=120)
    assert node.stop() == 0, node.stderr()
    truth = labels(broker.bootstrap, "user-events", 4)
    scores = read_all(broker.bootstrap, "offer-scores", 2)
    assert len(scores) == len(truth) == 10_000
    for m in scores:  # keyed by user, in Kafka and in the result
        assert m.key().decode() == json.loads(m.value())["key"] and m.key().startswith(b"user-")
    results = {r["id"]: r["score"] for r in (json.loads(m.value()) for m in scores)}
    ids = sorted(results)
    assert auc([results[i] for i in ids], [truth[i] for i in ids]) > 0.7  # it learned who takes offers
    sent = {json.loads(m.value())["visit_id"] for m in read_all(broker.bootstrap, "offers-to-send", 1)}
    assert sent == {i for i, s in results.items() if s >= 0.6} and sent


def test_support_replies_come_from_an_openai_compatible_server(tmp_path):
    broker = Broker({"support-messages": 2, "support-replies": 1, "support-messages.dlq": 1})
    server = Process([INFLOW, "serve", "--support-replies", "--listen", "127.0.0.1:0", "--token", "t0ken"])
    try:
        url = server.proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr()
        gen(broker.bootstrap, "support", 200)
        node = Node(broker.bootstrap, None, group="inflow-support", config=os.path.join(EXAMPLES, "support.yaml"),
                    sets=[f"models.replies.endpoint={url}", "models.replies.api_key=t0ken",
                          "models.replies.model=inflow-faq", "models.replies.fallback=~", "models.replies-gemini=~"])
        wait_until_committed(broker.bootstrap, "inflow-support", "support-messages", 2, timeout=120)
        metrics = node.metrics()
        assert node.stop() == 0, node.stderr()
    finally:
        server.stop()
    truth = labels(broker.bootstrap, "support-messages", 2)
    replies = {r["id"]: r for r in (json.loads(m.value()) for m in read_all(broker.bootstrap, "support-replies", 1))}
    assert set(replies) == set(truth)
    # Each reply answers what the message was about (topics in events/use_cases.cpp's order).
    marks = ["blocked your card", "dispute the charge", "works abroad", "higher limit", "your PIN"]
    assert all(marks[int(truth[i])] in r["text"] for i, r in replies.items())
    assert all(r["key"].startswith("customer-") for r in replies.values())
    assert metrics['inflow_gateway_tokens_out_total{model="replies"}'] > 0


@pytest.mark.parametrize("use_case", ["maintenance", "personalization", "support"])
def test_the_demo_runs_each_use_case(use_case):
    args = [INFLOW, "demo", "--use-case", use_case, "--duration", "5", "--admin", "127.0.0.1:0"]
    if use_case != "support":
        args += ["--model-dir", trained(use_case)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    done = re.search(r"done: generated (\d+), consumed (\d+), alerts (\d+), dead letters 0; "
                     r"latency p50 ([\d.]+)ms p99 ([\d.]+)ms", r.stdout)
    assert done, r.stdout
    generated, consumed, alerts = (int(done.group(i)) for i in (1, 2, 3))
    assert generated >= 30 and consumed == generated
    assert (alerts > 0) == (use_case != "support"), r.stdout
