"""Hostile input from outside: the HTTP servers' bounds (sizes, connections, time, a token off
loopback), and configs, addresses and signals that used to crash, hang or pass unchecked."""

# ctest: runs alone (it times how soon servers cut clients).
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from harness import EXAMPLE, INFLOW, SANITIZED, Broker, ModelServer, Node, Process


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def request(url, method="GET", path="/", body=None, headers=None, timeout=10):
    """(status, body) of one request on a fresh connection."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def test_serve_refuses_oversized_bodies_before_reading_them_and_bounds_memory(model_path):
    server = ModelServer(model_path, args=["--max-request-bytes", str(8 << 20)])
    try:
        u = urllib.parse.urlparse(server.url)
        before = rss_mib(server.proc.pid)
        # 63 MiB announced: refused from the header alone.
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.putrequest("POST", "/v2/models/fraud/infer")
        conn.putheader("Content-Length", str(63 << 20))
        conn.endheaders()
        assert conn.getresponse().status == 413
        conn.close()
        # Eight bodies just under the cap at once: each is answered (400: not JSON) or told to come back
        # (503, sent before the body is read, so the sender may see its connection cut instead: the
        # bodies in flight share a budget); memory stays bounded either way.
        statuses = []
        body = b"[" * (7 << 20)

        def post():
            try:
                statuses.append(request(server.url, "POST", "/v2/models/fraud/infer", body, timeout=60)[0])
            except (BrokenPipeError, ConnectionResetError):
                statuses.append(503)

        threads = [threading.Thread(target=post) for _ in range(8)]
        for t in threads:
            t.start()
        peak = 0
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_mib(server.proc.pid))
            time.sleep(0.01)
        assert sorted(set(statuses)) <= [400, 503] and 400 in statuses, statuses
        # Far below the 8 × 63 MiB the bodies could take; AddressSanitizer's quarantine (256 MiB) keeps
        # freed buffers resident for a while, so a sanitized build measured 205 MiB once.
        bound = 320 if SANITIZED else 200
        assert peak - before < bound, f"RSS grew by {peak - before:.0f} MiB"
        assert request(server.url, path="/v2/health/live")[0] == 200
    finally:
        server.stop()


def test_serve_stays_reachable_with_idle_and_slow_clients(model_path):
    server = ModelServer(model_path, args=["--request-timeout-ms", "1000"])
    u = urllib.parse.urlparse(server.url)
    idle = []
    try:
        idle = [socket.create_connection((u.hostname, u.port)) for _ in range(300)]
        # At the connection cap the longest-idle connections make room: a health check still answers.
        started = time.time()
        assert request(server.url, path="/v2/health/live", timeout=5)[0] == 200
        assert time.time() - started < 3
        # A client that sends its request slower than the request timeout is cut.
        slow = socket.create_connection((u.hostname, u.port))
        slow.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        slow.settimeout(5)
        started = time.time()
        try:
            assert slow.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.time() - started < 3, "the slow client was not cut within the request timeout"
        slow.close()
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_serve_off_loopback_needs_a_token_and_checks_its_address(model_path):
    serve = [INFLOW, "serve", "--model", f"fraud={model_path}"]
    r = subprocess.run([*serve, "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "INFLOW_SERVE_TOKEN"})
    assert r.returncode == 64 and "--token" in r.stderr, r.stderr
    for bad in ("127.0.0.1:abc", "127.0.0.1:99999", "localhost:8000", ":8000"):
        r = subprocess.run([*serve, "--listen", bad], capture_output=True, text=True, timeout=30)
        assert r.returncode == 64 and "expected an IP address" in r.stderr, (bad, r.stderr)
    server = ModelServer(model_path, listen="0.0.0.0:0", env={"INFLOW_SERVE_TOKEN": "s3cret"})
    try:
        url = "http://127.0.0.1:" + server.url.rsplit(":", 1)[1]
        assert request(url, path="/v2/models/fraud")[0] == 401
        assert request(url, path="/v2/models/fraud", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert request(url, path="/v2/models/fraud", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert request(url, path="/v2/health/ready")[0] == 200  # probes need no token
    finally:
        server.stop()


BAD_CONFIGS = {  # what to add to the example config, and what the error must say
    "a librdkafka value librdkafka refuses": (["kafka.session.timeout.ms=banana"], "", "kafka.session.timeout.ms"),
    "an unknown librdkafka property": (["kafka.no.such.property=1"], "", "No such configuration property"),
    "an empty alert topic": (["pipelines.fraud.alert.topic=''"], "", "not a Kafka topic name"),
    "a rule that never matches": (["pipelines.fraud.alert.when=score >= nan"], "", "finite number"),
    "the admin API on a host name": (["node.admin=localhost:9464"], "", "expected an IP address"),
    "a key that is not a string": ([], "? [a, b]\n: 1\n", "a key must be a plain string"),
    "a duplicate key": ([], "node:\n  name: again\n", "duplicate key 'node'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_configs_that_used_to_crash_or_pass_are_errors(case, tmp_path, model_path):
    sets, appended, expected = BAD_CONFIGS[case]
    config = tmp_path / "bad.yaml"
    config.write_text(open(EXAMPLE).read() + "\n" + appended)
    args = ["-c", str(config), "--set", f"models.fraud.path={model_path}"]
    for s in sets:
        args += ["--set", s]
    for command in ("validate", "node"):  # node used to segfault or abort where validate passed
        r = subprocess.run([INFLOW, command, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 78, (command, r.returncode, r.stderr)
        assert expected in r.stderr, (command, r.stderr)


def test_a_config_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        r = subprocess.run([INFLOW, "validate", "-c", path], capture_output=True, text=True, timeout=10)
        assert r.returncode == 78 and "not a regular file" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def broker():
    b = Broker({"transactions": 4, "fraud-alerts": 1, "transactions.dlq": 1})
    yield b
    b.stop()


def test_the_admin_api_answers_probes_past_idle_connections(broker, model_path):
    node = Node(broker.bootstrap, model_path)
    u = urllib.parse.urlparse(node.admin)
    idle = []
    try:
        idle = [socket.create_connection((u.hostname, u.port)) for _ in range(300)]
        started = time.time()
        assert node.get("/livez")[0] == 200
        assert time.time() - started < 3
    finally:
        for s in idle:
            s.close()
        assert node.stop() == 0, node.stderr()


def test_sigterm_while_the_status_api_is_polled(broker, model_path):
    for _ in range(5):
        node = Node(broker.bootstrap, model_path)
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    node.get("/api/status")
                except OSError:
                    pass

        pollers = [threading.Thread(target=poll) for _ in range(4)]
        for p in pollers:
            p.start()
        time.sleep(0.5)
        rc = node.stop()
        stop.set()
        for p in pollers:
            p.join()
        assert rc == 0, f"exit {rc}\n{node.stderr()}"


def test_the_admin_api_off_loopback_needs_its_token_and_masks_personal_data(broker, model_path):
    r = subprocess.run([INFLOW, "validate", "-c", EXAMPLE, "--set", f"models.fraud.path={model_path}",
                        "--set", "node.admin=0.0.0.0:9464"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 78 and "node.admin_token" in r.stderr, r.stderr
    generator = subprocess.run([INFLOW, "gen", "--bootstrap", broker.bootstrap, "--count", "2000",
                                "--fraud-rate", "0.5"], capture_output=True, text=True, timeout=60)
    assert generator.returncode == 0, generator.stderr
    node = Node(broker.bootstrap, model_path, sets=["node.admin=0.0.0.0:0", "node.admin_token=s3cret"])
    try:
        url = node.admin  # bound to every interface, reached on loopback
        assert request(url, path="/livez")[0] == 200  # liveness probes need no token
        for path in ("/readyz", "/metrics", "/api/status"):
            assert request(url, path=path)[0] == 401, path
        auth = {"Authorization": "Bearer s3cret"}
        deadline = time.time() + 60
        while True:
            status, body = request(url, path="/api/status", headers=auth)
            assert status == 200
            alerts = json.loads(body)["recent_alerts"]
            if alerts or time.time() > deadline:
                break
            time.sleep(0.5)
        assert alerts, "no alert reached /api/status"
        for alert in alerts:
            assert set(alert["card_id"][:-2]) == {"*"} and alert["card_id"][-2:].isdigit(), alert
    finally:
        assert node.stop() == 0, node.stderr()


def test_the_admin_api_speaks_https_when_given_a_certificate(broker, model_path, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "admin.key"),
                    "-out", str(tmp_path / "admin.pem")], check=True, capture_output=True)
    node = Node(broker.bootstrap, model_path, sets=["node.admin=0.0.0.0:0", "node.admin_token=s3cret",
                                                    f"node.admin_tls_certificate={tmp_path / 'admin.pem'}",
                                                    f"node.admin_tls_key={tmp_path / 'admin.key'}"])
    try:
        assert "admin API on https://" in node.stderr()
        port = urllib.parse.urlparse(node.admin).port
        context = ssl.create_default_context(cafile=str(tmp_path / "admin.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer s3cret"})
        response = conn.getresponse()
        assert response.status == 200 and b"inflow_records_consumed_total" in response.read()
        conn.close()
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            request(f"http://127.0.0.1:{port}", path="/livez", timeout=5)  # no plain HTTP on a TLS port
    finally:
        assert node.stop() == 0, node.stderr()


class GatewayNode(Process):
    """A gateway-only cluster node on loopback (plain TCP): it never touches Kafka."""

    def __init__(self, model_path, name, seeds=()):
        super().__init__([INFLOW, "node", "-c", EXAMPLE, "--set", f"node.name={name}", "--set", "node.roles=[gateway]",
                          "--set", "node.admin=127.0.0.1:0", "--set", "node.listen=127.0.0.1:0",
                          "--set", f"cluster.seeds=[{', '.join(seeds)}]", "--set", "cluster.connection_timeout_ms=1000",
                          "--set", f"models.fraud.path={model_path}"], env={"INFLOW_BOOTSTRAP": "127.0.0.1:9"})
        self.port = int(self.wait_for_stderr(r"cluster: listening on 127\.0\.0\.1:(\d+)").group(1))
        self.admin = self.wait_for_stderr(r"admin API on (http://127\.0\.0\.1:\d+)/").group(1)

    def nodes(self):
        return sorted(n["name"] for n in json.loads(request(self.admin, path="/api/status")[1])["cluster"]["nodes"])


def closed_by_peer(s, timeout):
    """The node closed the connection (EOF or reset) within `timeout` seconds."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass  # the node's own handshake comes first
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_the_cluster_port_closes_forged_frames_before_allocating_them(model_path):
    node = GatewayNode(model_path, "guarded")
    try:
        before = rss_mib(node.proc.pid)
        # A handshake header announcing ~4 GiB, then bytes of it: closed at the header, nothing allocated.
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
            s.sendall(bytes([1, 0, 0, 0]) + (0xfffffff0).to_bytes(4, "big") + bytes(24))
            try:
                s.sendall(b"\xff" * (1 << 20))
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert closed_by_peer(s, 2)
            s.close()
        # Not BASP at all (an HTTP request), and a client that never sends its handshake.
        s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: inflow.example\r\n\r\n")
        assert closed_by_peer(s, 2)
        s.close()
        silent = socket.create_connection(("127.0.0.1", node.port), timeout=5)
        started = time.time()
        assert closed_by_peer(silent, 5)
        assert time.time() - started < 3  # cluster.connection_timeout_ms: 1000
        silent.close()

        grown = rss_mib(node.proc.pid) - before
        assert grown < 64, f"RSS grew by {grown:.0f} MiB"
        node.wait_for_stderr(r"closed the connection from 127\.0\.0\.1:\d+: a frame of 4294967280 bytes announced")
        metrics = request(node.admin, path="/metrics")[1]
        refused = [line for line in metrics.splitlines() if line.startswith("inflow_cluster_connections_refused_total")]
        assert refused and float(refused[0].split()[-1]) >= 22, refused

        # Real peers still get through the same port.
        peer = GatewayNode(model_path, "peer", seeds=[f"127.0.0.1:{node.port}"])
        try:
            deadline = time.time() + 15
            while time.time() < deadline and node.nodes() != ["guarded", "peer"]:
                time.sleep(0.2)
            assert node.nodes() == ["guarded", "peer"], node.stderr()
        finally:
            assert peer.stop() == 0, peer.stderr()
    finally:
        assert node.stop() == 0, node.stderr()
