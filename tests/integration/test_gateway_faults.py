"""The remote gateway against a provider that fails: every record still ends
in exactly one outcome, limits and cooldowns hold, unusable answers become
dead letters with the reason."""

# ctest: runs alone (it holds a node to calls per second).
import email.utils
import json
import subprocess
import time

from fault_server import FaultServer
from harness import INFLOW, Feeder, Node, headers, read_all, remote_sets, transaction, wait_until_committed

RECORDS = 300


def run(broker, model_path, provider, extra=()):
    """Feeds RECORDS transactions, runs a node against the provider until every
    offset is committed, and returns (node metrics, alerts, dead letters, feeder)."""
    feeder = Feeder(broker.bootstrap)
    feeder.feed(RECORDS, seed=11, fraud_every=10, poison_every=0)
    sets = remote_sets(provider.url, model_path, ["models.fraud.batch.max_batch=50",
                                                  "models.fraud.retry.initial_backoff_ms=10", *extra])
    node = Node(broker.bootstrap, model_path, sets=sets)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
    metrics = node.metrics()
    assert node.stop() == 0, node.stderr()
    alerts = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2)]
    dead = read_all(broker.bootstrap, "transactions.dlq", 1)
    return metrics, alerts, dead, feeder, node


def test_retry_after_seconds_is_a_cooldown_for_every_call(broker, model_path, provider):
    # One call at a time, so that no call was already on its way when the 429 came.
    provider.script = [("status", 429, {"Retry-After": "2"})]
    metrics, alerts, dead, feeder, _ = run(broker, model_path, provider, ["models.fraud.limits.max_in_flight=1"])
    first, later = provider.arrivals[0][0], [t for t, _ in provider.arrivals[1:]]
    assert later and min(later) >= first + 2.0 - 0.05, "a call left before Retry-After expired"
    assert not dead
    assert {(a["source"]["partition"], a["source"]["offset"]) for a in alerts} == feeder.scored_as_fraud()
    # Without `version:`, a remote model's version says what answered: here, the endpoint.
    assert {a["model_version"] for a in alerts} == {provider.url.split("://")[1]}


def test_retry_after_as_http_date(broker, model_path, provider):
    # The date is written when the call arrives, three seconds ahead.
    provider.script = [("status", 429, {"Retry-After": lambda: email.utils.formatdate(time.time() + 3, usegmt=True)})]
    _, _, dead, _, _ = run(broker, model_path, provider, ["models.fraud.limits.max_in_flight=1"])
    first, later = provider.arrivals[0][0], [t for t, _ in provider.arrivals[1:]]
    assert min(later) >= first + 1.0, "the HTTP-date was not honoured"  # dates have 1 s resolution
    assert not dead


def test_5xx_burst_opens_the_circuit_then_it_closes(broker, model_path, provider):
    provider.script = [("status", 500)] * 6
    metrics, alerts, dead, feeder, node = run(broker, model_path, provider, [
        "models.fraud.breaker.failure_threshold=3", "models.fraud.breaker.open_ms=300",
        "models.fraud.retry.max_attempts=10"])
    assert "circuit open" in node.stderr() and "circuit closed" in node.stderr()
    assert metrics['inflow_gateway_circuit_state{model="fraud"}'] == 0
    assert not dead
    assert {(a["source"]["partition"], a["source"]["offset"]) for a in alerts} == feeder.scored_as_fraud()


def test_a_hung_call_times_out_and_is_retried(broker, model_path, provider):
    provider.script = [("hang", 3)]
    metrics, alerts, dead, feeder, _ = run(broker, model_path, provider, ["models.fraud.timeout_ms=300"])
    assert metrics['inflow_gateway_call_errors_total{model="fraud",type="timeout"}'] >= 1
    assert not dead
    assert len(alerts) == len(feeder.scored_as_fraud())


def test_a_reset_connection_is_retried(broker, model_path, provider):
    provider.script = [("reset",)]
    metrics, _, dead, _, _ = run(broker, model_path, provider)
    errors = {k: v for k, v in metrics.items() if "error" in k}
    assert errors.get('inflow_gateway_call_errors_total{model="fraud",type="reset"}', 0) >= 1, errors
    assert not dead


def test_unusable_answers_become_dead_letters_with_the_reason(broker, model_path, provider):
    provider.script = [("invalid_json",), ("oversized", 100000), ("status", 401), ("html",)]
    metrics, alerts, dead, feeder, node = run(broker, model_path, provider, ["models.fraud.max_response_bytes=4096"])
    failed_rows = sum(rows for _, rows in provider.arrivals[:4])
    assert len(dead) == failed_rows
    reasons = {(headers(m)["__connect.errors.exception.message"].split(":")[1].strip(),
                headers(m)["inflow.model.failure"]) for m in dead}
    assert reasons == {("bad_response", "failed"), ("too_large", "failed"), ("unauthorized", "unauthorized")}
    # Said in the log at the default level, once per cause, with what to do.
    log = node.stderr()
    assert "record(s) dead-lettered" in log and "check the model's credential" in log, log
    assert sum(v for k, v in metrics.items() if k.startswith("inflow_gateway_failed_rows_total")) == failed_rows
    assert any("unexpected content type 'text/html'" in headers(m)["__connect.errors.exception.message"] for m in dead)
    assert all(headers(m)["__connect.errors.exception.class.name"] == "inflow.errors.model_failed" for m in dead)
    assert len(alerts) + len(dead) <= RECORDS
    assert metrics['inflow_records_dead_lettered_total{pipeline="fraud"}'] == failed_rows


def test_the_request_rate_holds_in_every_one_second_window(broker, model_path, provider):
    limit = 40
    feeder = Feeder(broker.bootstrap)
    feeder.feed(2400, seed=12, fraud_every=10, poison_every=0)
    sets = remote_sets(provider.url, model_path, [f"models.fraud.limits.requests_per_second={limit}",
                                                  "models.fraud.batch.max_batch=10", "models.fraud.limits.max_in_flight=8"])
    node = Node(broker.bootstrap, model_path, sets=sets)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
    # The limit is published, for dashboards to show the headroom left.
    metrics = node.metrics()
    assert metrics['inflow_gateway_limit_requests_per_minute{model="fraud"}'] == limit * 60
    assert node.stop() == 0
    times = sorted(t for t, _ in provider.arrivals)
    assert len(times) >= 240
    # Arrivals are stamped by the Python server's handler threads, up to tens of ms late when
    # the two cores are busy (one late stamp put 41 calls into a second): windows of 0.95 s.
    busiest = max(sum(1 for u in times[i:] if u < t + 0.95) for i, t in enumerate(times))
    assert busiest <= limit, f"{busiest} calls in 0.95 s, limit {limit} per second"
    # Demand exceeded the limit throughout, so the budget is used, not wasted (the window is 1.05 s:
    # 95 % at best; the sanitized build on two busy cores has measured 86 %).
    steady = times[10:-10]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    assert rate >= 0.8 * limit, f"only {rate:.1f} calls/s against a limit of {limit}"


def make_ca(directory, name):
    """A private CA and a certificate for 127.0.0.1 signed by it (openssl CLI)."""
    import subprocess
    d = str(directory)
    run_ssl = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    run_ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem",
            "-days", "1", "-subj", f"/CN={name} test CA")
    run_ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", "/CN=127.0.0.1")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run_ssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.pem", "-CAkey", f"{name}-ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", "san.cnf")
    return f"{d}/{name}-ca.pem", (f"{d}/{name}.pem", f"{d}/{name}.key")


def test_https_verifies_the_provider_certificate(broker, model_path, tmp_path):
    ca, cert = make_ca(tmp_path, "good")
    other_ca, _ = make_ca(tmp_path, "other")
    server = FaultServer(tls=cert)
    try:
        _, alerts, dead, feeder, _ = run(broker, model_path, server, [f"models.fraud.ca_file={ca}"])
        assert server.url.startswith("https://")
        assert not dead and len(alerts) == len(feeder.scored_as_fraud())

        # A certificate from a CA we do not trust: no call succeeds, every record
        # becomes a dead letter that says why.
        node = Node(broker.bootstrap, model_path, group="untrusting", sets=remote_sets(server.url, model_path, [
            f"models.fraud.ca_file={other_ca}", "models.fraud.retry.max_attempts=2",
            "models.fraud.retry.initial_backoff_ms=10", "pipelines.fraud.dead_letter_topic=ref-dlq"]))
        wait_until_committed(broker.bootstrap, "untrusting", "transactions", 4, timeout=60)
        assert node.stop() == 0
        rejected = read_all(broker.bootstrap, "ref-dlq", 1)
        assert len(rejected) == RECORDS
        assert "certificate verify failed" in headers(rejected[0])["__connect.errors.exception.message"]
    finally:
        server.stop()


def test_a_failing_provider_falls_back_to_another_model(broker, model_path, provider):
    provider.script = [("status", 503)] * 10000  # the provider is down for good
    meta = json.load(open(model_path.replace("model.json", "model.meta.json")))
    metrics, alerts, dead, feeder, node = run(broker, model_path, provider, [
        "models.fraud.fallback=local", "models.fraud.retry.max_attempts=2", "models.fraud.breaker.failure_threshold=2",
        "models.local.task=classification", "models.local.provider=embedded-xgboost", f"models.local.path={model_path}"])
    assert not dead, "records were dead-lettered although a fallback was there"
    assert alerts and all(a["model"] == "local" and a["model_version"] == meta["version"] for a in alerts)
    assert metrics['inflow_gateway_fallback_rows_total{model="fraud"}'] == RECORDS
    assert "scoring with the fallback model" in node.stderr()


def test_a_deadline_bounds_how_long_block_holds_a_record(broker, model_path, provider):
    provider.down_until = time.time() + 3600
    metrics, alerts, dead, feeder, node = run(broker, model_path, provider, [
        "models.fraud.on_failure=block", "models.fraud.deadline_ms=1500", "models.fraud.retry.max_backoff_ms=200"])
    assert len(dead) == RECORDS and not alerts
    assert all("no answer within deadline_ms=1500" in headers(m)["__connect.errors.exception.message"] for m in dead)
    assert metrics['inflow_gateway_failed_rows_total{model="fraud",reason="deadline"}'] == RECORDS
    assert "raise deadline_ms" in node.stderr()


def test_one_refused_input_is_found_by_bisection_and_only_it_is_dead_lettered(broker, model_path, provider):
    provider.refuse_amount = 777.77
    feeder = Feeder(broker.bootstrap)
    feeder.feed(127, seed=14, fraud_every=10, poison_every=0)
    bad = json.loads(transaction(__import__("random").Random(1), 999, False))
    bad.update(amount=777.77, id="refused-1")
    feeder.send(json.dumps(bad).encode(), "refused", b"card-x")
    feeder.producer.flush(10)
    node = Node(broker.bootstrap, model_path, sets=remote_sets(provider.url, model_path, [
        "models.fraud.batch.max_batch=128", "models.fraud.batch.max_linger_ms=1000"]))
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
    metrics = node.metrics()
    assert node.stop() == 0, node.stderr()
    dead = read_all(broker.bootstrap, "transactions.dlq", 1)
    assert [json.loads(m.value())["id"] for m in dead] == ["refused-1"]
    assert "client_error" in headers(dead[0])["__connect.errors.exception.message"]
    assert headers(dead[0])["inflow.model.failure"] == "rejected"
    assert metrics['inflow_gateway_rows_total{model="fraud"}'] == 127


def test_retry_after_an_hour_is_capped(broker, model_path, provider):
    provider.script = [("status", 429, {"Retry-After": "3600"})]
    _, alerts, dead, feeder, node = run(broker, model_path, provider, [
        "models.fraud.limits.max_in_flight=1", "models.fraud.max_cooldown_ms=1000"])
    first, later = provider.arrivals[0][0], [t for t, _ in provider.arrivals[1:]]
    assert first + 0.95 <= min(later) <= first + 10
    assert not dead
    assert "waiting max_cooldown_ms=1000 ms" in node.stderr()


def test_an_idle_connection_the_server_dropped_is_not_a_failed_call(broker, model_path, provider):
    # Each answer is followed by the server dropping the connection, without saying so.
    provider.script = [("close_after",)] * 10000
    metrics, alerts, dead, feeder, _ = run(broker, model_path, provider, ["models.fraud.limits.max_in_flight=1"])
    assert not dead and len(alerts) == len(feeder.scored_as_fraud())
    errors = {k: v for k, v in metrics.items() if k.startswith("inflow_gateway_call_errors_total")}
    assert not errors, errors


def test_redrive_writes_an_outages_dead_letters_back_and_they_are_scored(broker, model_path, provider):
    provider.down_until = time.time() + 3600
    metrics, alerts, dead, feeder, node = run(broker, model_path, provider, ["models.fraud.retry.max_attempts=2"])
    assert len(dead) == RECORDS and not alerts
    assert "`inflow redrive` replays dead letters" in node.stderr()
    provider.down_until = 0  # fixed

    redrive = [INFLOW, "redrive", "--bootstrap", broker.bootstrap, "--from", "transactions.dlq"]
    dry = subprocess.run(redrive + ["--dry-run"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and f"would write {RECORDS} of {RECORDS}" in dry.stdout, dry.stdout + dry.stderr
    other = subprocess.run(redrive + ["--reason", "no such reason", "--group", "picky"], capture_output=True, text=True,
                           timeout=60)
    assert other.returncode == 0 and f"wrote 0 of {RECORDS}" in other.stdout, other.stdout + other.stderr
    # An outage's dead letters are `failed`, not `rejected` (inputs the provider refuses as they are).
    for failures, count in (("rejected", 0), ("failed,deadline", RECORDS)):
        only = subprocess.run(redrive + ["--failure", failures, "--dry-run"], capture_output=True, text=True, timeout=60)
        assert only.returncode == 0 and f"would write {count} of {RECORDS}" in only.stdout, only.stdout + only.stderr
    wrong = subprocess.run(redrive + ["--failure", "lost", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "lost" in wrong.stderr, wrong.stderr
    done = subprocess.run(redrive, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"wrote {RECORDS} of {RECORDS}" in done.stdout, done.stdout + done.stderr
    again = subprocess.run(redrive, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "wrote 0 of 0" in again.stdout, again.stdout  # it continues where it stopped

    node = Node(broker.bootstrap, model_path, sets=remote_sets(provider.url, model_path))
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
    assert node.stop() == 0, node.stderr()
    alerts = [json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2)]
    fraud_ids = {json.loads(v)["id"] for (_, (kind, v)) in feeder.landed.items() if json.loads(v)["amount"] >= 900}
    assert sorted(a["tx_id"] for a in alerts) == sorted(fraud_ids)
    assert len(read_all(broker.bootstrap, "transactions.dlq", 1)) == RECORDS  # nothing new


def test_a_token_renewed_in_its_file_mid_stream_loses_nothing(broker, model_path, provider, tmp_path):
    # An access token that expires: another tool writes the new one to api_key_file.
    token_file = tmp_path / "token"
    token_file.write_text("token-1\n")
    provider.token = "token-1"
    # Slow answers keep many calls in flight with token-1 when it expires: each is refused, and each
    # must go again with token-2, not only the first whose refusal read the file again.
    provider.jitter = 0.3
    feeder = Feeder(broker.bootstrap)
    node = Node(broker.bootstrap, model_path, sets=remote_sets(provider.url, model_path, [
        f"models.fraud.api_key_file={token_file}", "models.fraud.batch.max_batch=5",
        "models.fraud.batch.max_linger_ms=0"]))
    try:
        feeder.feed(RECORDS // 2, seed=15, fraud_every=10, poison_every=0)
        deadline = time.time() + 30
        while time.time() < deadline and node.metric("inflow_records_scored_total") < RECORDS // 2:
            time.sleep(0.1)
        token_file.write_text("token-2\n")
        provider.token = "token-2"  # token-1 has expired
        feeder.feed(RECORDS // 2, seed=16, fraud_every=10, poison_every=0)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
        metrics = node.metrics()
    finally:
        assert node.stop() == 0, node.stderr()
    assert not read_all(broker.bootstrap, "transactions.dlq", 1)
    # Several calls were refused, and the file was read again by the first refusal only.
    assert metrics['inflow_gateway_call_errors_total{model="fraud",type="unauthorized"}'] >= 2
    assert "refused the credential; got it again and retrying" in node.stderr()
