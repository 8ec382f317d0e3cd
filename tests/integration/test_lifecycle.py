"""Configuration errors, validation, the admin API and a draining SIGTERM."""

# ctest: runs alone (it times readiness and draining).
import json
import os
import re
import signal
import subprocess
import threading
import time

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from harness import EXAMPLE, INFLOW, Feeder, MockBroker, Node, committed, end_offsets, read_all


def run(*args):
    return subprocess.run([INFLOW, *args], capture_output=True, text=True, timeout=60)


def test_bad_config_exits_78_naming_path_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    text = open(EXAMPLE).read().replace("max_batch: 256", "max_batch: lots").replace("group.id:", "group.idd:")
    cfg.write_text(text)
    line = next(i + 1 for i, l in enumerate(text.splitlines()) if "max_batch: lots" in l)
    for command in ("node", "validate"):
        r = run(command, "-c", str(cfg))
        assert r.returncode == 78, r.stderr
        assert f"{cfg}:{line}: models.fraud.batch.max_batch: expected an integer, got 'lots'" in r.stderr
        assert "kafka.group.id: required key is missing" in r.stderr


def test_validate_checks_the_model_too(model_path, tmp_path):
    r = run("validate", "-c", EXAMPLE, "--set", f"models.fraud.path={model_path}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK")
    r = run("validate", "-c", EXAMPLE, "--set", f"models.fraud.path={tmp_path}/none.json")
    assert r.returncode == 78
    assert "models.fraud" in r.stderr and "inflow train" in r.stderr
    r = run("validate", "-c", EXAMPLE, "--set", "models.fraud.provider=nope")
    assert r.returncode == 78
    assert "unknown provider 'nope'" in r.stderr


def test_usage_errors_exit_64():
    assert run("node").returncode == 64
    assert run("gen", "--bootstrap", "x", "--format", "xml").returncode == 64


def gen_summary(err):
    m = re.search(r"gen: wrote (\d+) records .*; (\d+) not acknowledged", err)
    assert m, err
    return int(m.group(1)), int(m.group(2))


def test_gen_stopped_during_an_outage_waits_for_kafka_until_stopped_again():
    """Ctrl-C ends the writing, not the wait for acknowledgements: records already handed to
    Kafka are either acknowledged or counted as not written, and only a later Ctrl-C gives up.
    The outage is a paused broker: the development one, as pausing the module's Kafka for
    seconds unsettles the consumer groups of the tests after this one."""
    broker = MockBroker({"transactions": 4})
    try:
        gen = subprocess.Popen([INFLOW, "gen", "--bootstrap", broker.bootstrap, "--rate", "500"],
                               stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        os.kill(broker.pid, signal.SIGSTOP)  # the broker stops answering; gen's records wait
        try:
            time.sleep(1)
            gen.send_signal(signal.SIGINT)
            time.sleep(3)
            assert gen.poll() is None, "gen gave up on its records at the first Ctrl-C"
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        _, err = gen.communicate(timeout=60)
        assert gen.returncode == 0, err
        written, lost = gen_summary(err)
        assert written >= 1000 and lost == 0, err
        assert sum(end_offsets(broker.bootstrap, "transactions", 4).values()) == written
    finally:
        broker.stop()

    # Nothing answers here: a Ctrl-C during the wait ends it and says how many were not written.
    gen = subprocess.Popen([INFLOW, "gen", "--bootstrap", "127.0.0.1:1", "--count", "1000"],
                           stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert gen.poll() is None
    gen.send_signal(signal.SIGINT)
    _, err = gen.communicate(timeout=10)
    assert gen.returncode == 69, err
    assert gen_summary(err) == (0, 1000)


def test_sigterm_drains_commits_and_exits_0(broker, model_path):
    feeder = Feeder(broker.bootstrap)
    feeding = threading.Thread(target=feeder.feed, args=(30000,), kwargs=dict(rate=10000, seed=5))
    node = Node(broker.bootstrap, model_path)
    feeding.start()
    deadline = time.time() + 60
    while node.metric("inflow_records_consumed_total") < 5000:
        assert time.time() < deadline, node.stderr()
        time.sleep(0.05)

    assert node.get("/livez") == (200, "ok\n")
    status, body = node.readyz()
    assert status == 200, body  # once: "partition 2 stuck at offset 0 for 57395 s" (the clock's epoch)
    metrics = node.get("/metrics")[1]
    for name in ("inflow_records_consumed_total", "inflow_records_scored_total", "inflow_records_alerted_total",
                 "inflow_records_dead_lettered_total", "inflow_end_to_end_latency_seconds_bucket",
                 "inflow_node_latency_seconds_bucket", "inflow_gateway_batch_size_bucket", "inflow_records_in_flight",
                 "inflow_consumer_lag_records"):
        assert re.search(rf"^{name}{{", metrics, re.M), name
    # Every finished record is in both latency histograms; its time in the node is part of its whole age.
    # (Records are consumed before the first is finished, and a scrape may fall between the two
    # histograms' updates: read again until one shows finished records in both.)
    def of(name):
        return snapshot[f'{name}{{pipeline="fraud"}}']
    while True:
        snapshot = node.metrics()
        finished = of("inflow_end_to_end_latency_seconds_count")
        if finished > 0 and of("inflow_node_latency_seconds_count") == finished:
            break
        assert time.time() < deadline, f"{finished} finished records, {of('inflow_node_latency_seconds_count')} timed in the node"
        time.sleep(0.05)
    assert of("inflow_node_latency_seconds_sum") <= of("inflow_end_to_end_latency_seconds_sum")
    # Ready, as /readyz said above. (On a loaded machine one metadata probe after a closed
    # connection can time out, and the node is unready until the next probe a second later.)
    while not (status := json.loads(node.get("/api/status")[1]))["node"]["ready"]:
        assert time.time() < deadline, f"not ready: {status}\n{node.stderr()[-3000:]}"
        time.sleep(0.2)
    assert status["pipelines"]["fraud"]["model"] == "fraud"

    consumed_before = node.metric("inflow_records_consumed_total")
    assert node.stop(signal.SIGTERM) == 0, node.stderr()
    feeding.join()
    assert "stopped cleanly" in node.stderr()
    assert "still in flight" not in node.stderr()

    # Drained: everything consumed was finished and committed before exit,
    # so no alert refers to an offset at or above the committed one.
    done = committed(broker.bootstrap, "inflow-fraud", "transactions", 4)
    assert sum(max(o, 0) for o in done.values()) >= consumed_before
    for m in read_all(broker.bootstrap, "fraud-alerts", 2):
        a = json.loads(m.value())
        assert a["source"]["offset"] < done[a["source"]["partition"]]


def test_missing_output_topic_or_unreachable_kafka_exit_69(broker, model_path):
    args = ["node", "-c", EXAMPLE, "--set", f"models.fraud.path={model_path}", "--set", "node.admin=127.0.0.1:0"]
    r = subprocess.run([INFLOW, *args, "--set", "pipelines.fraud.alert.topic=no-such-topic"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "INFLOW_BOOTSTRAP": broker.bootstrap})
    assert r.returncode == 69
    assert "output topic(s) missing: no-such-topic" in r.stderr
    r = subprocess.run([INFLOW, *args], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "INFLOW_BOOTSTRAP": "127.0.0.1:1"})
    assert r.returncode == 69
    assert "cannot reach Kafka" in r.stderr


def test_the_example_configs_validate_with_their_credentials(model_path, tmp_path):
    env = {**os.environ, "OPENAI_API_KEY": "sk-example", "GOOGLE_API_KEY": "example"}
    for name in ("embeddings", "support"):
        r = subprocess.run([INFLOW, "validate", "-c", os.path.join(os.path.dirname(EXAMPLE), f"{name}.yaml")],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
    for version in ("fraud", "fraud-challenger", "fraud-candidate"):  # one model folder per version
        os.makedirs(tmp_path / version)
        for f in ("model.json", "model.meta.json"):
            os.symlink(os.path.join(os.path.dirname(model_path), f), tmp_path / version / f)
    r = subprocess.run([INFLOW, "validate", "-c", os.path.join(os.path.dirname(EXAMPLE), "fraud-versions.yaml")],
                       capture_output=True, text=True, env={**os.environ, "INFLOW_MODELS": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    for name in ("fraud", "maintenance", "personalization"):  # each with a model of its use case
        models = tmp_path / f"{name}-model"
        subprocess.run([INFLOW, "train", "--use-case", name, "--out", str(models), "--rows", "2000", "--rounds", "5"],
                       check=True, capture_output=True)
        r = subprocess.run([INFLOW, "validate", "-c", os.path.join(os.path.dirname(EXAMPLE), f"{name}.yaml")],
                           capture_output=True, text=True, env={**os.environ, "INFLOW_MODEL_DIR": str(models)})
        assert r.returncode == 0, r.stderr
    r = subprocess.run([INFLOW, "validate", "-c", os.path.join(os.path.dirname(EXAMPLE), "support.yaml")],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items() if "API_KEY" not in k})
    assert r.returncode == 78 and "OPENAI_API_KEY is not set" in r.stderr


def test_gen_rate_is_paced_from_the_first_acknowledged_record(broker):
    # The idempotent producer may not send for about a second after it starts: pacing from the
    # start would send that second's records as one burst. Records must arrive at the rate asked.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "pace", "fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition("transactions", p, OFFSET_END) for p in range(4)])
    try:
        consumer.consume(1, timeout=1)  # the assignment takes effect
        gen = subprocess.Popen([INFLOW, "gen", "--bootstrap", broker.bootstrap, "--rate", "1000", "--count", "3000"],
                               stderr=subprocess.DEVNULL)
        arrivals = []
        deadline = time.time() + 30
        while len(arrivals) < 3000 and time.time() < deadline:
            arrivals += [time.time() for m in consumer.consume(500, timeout=0.2) if not m.error()]
        assert gen.wait(timeout=30) == 0
        assert len(arrivals) == 3000
        # 2,900 records at 1,000/s take 2.9 s; a burst of the first second's records would make it ~2 s.
        assert arrivals[-1] - arrivals[99] >= 2.5
    finally:
        consumer.close()


def test_demo_scores_everything_it_generates(model_path):
    # The main job. It generates only once the consumer group has its partitions, so that the
    # latency it reports is the pipeline's, not the seconds of a group join.
    r = subprocess.run([INFLOW, "demo", "--duration", "5", "--rate", "5000", "--admin", "127.0.0.1:0",
                        "--model-dir", os.path.dirname(model_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "joining the consumer group" in r.stdout
    done = re.search(r"done: generated (\d+), consumed (\d+), alerts (\d+), dead letters 0; "
                     r"latency p50 ([\d.]+)ms p99 ([\d.]+)ms", r.stdout)
    assert done, r.stdout
    generated, consumed, alerts = (int(done.group(i)) for i in (1, 2, 3))
    assert generated > 10_000 and consumed == generated and alerts > 0


def test_status_describes_a_node_outside_any_cluster(broker, model_path):
    node = Node(broker.bootstrap, model_path)
    try:
        deadline = time.time() + 30
        while node.metric("inflow_partitions_assigned") < 4 and time.time() < deadline:
            time.sleep(0.1)
        out = run("status", "--admin", node.admin.removeprefix("http://"))
        assert out.returncode == 0, out.stderr
        assert "1 node(s), as node-1 sees them" in out.stdout
        assert re.search(r"gateways:\s+fraud \(embedded-xgboost fraud-\w+\)", out.stdout), out.stdout
        assert all(f"fraud/{p} (0 in flight)" in out.stdout for p in range(4)), out.stdout
    finally:
        node.stop()
