"""The deploy kit: the systemd unit (verified by systemd-analyze, and the node's side of
Type=notify spoken to a socket as systemd's does), the compose file and the Kubernetes manifests
(parsed, their Inflow configs validated and run against real Kafka)."""

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import yaml

from harness import INFLOW, ROOT, Broker, Node, Process, generate

DEPLOY = os.path.join(ROOT, "deploy")


def test_the_systemd_unit_and_its_drop_in_verify(tmp_path):
    unit = open(os.path.join(DEPLOY, "inflow-node.service")).read().replace("/usr/local/bin/inflow", INFLOW)
    (tmp_path / "inflow-node.service").write_text(unit)
    shutil.copytree(os.path.join(DEPLOY, "inflow-node.service.d"), tmp_path / "inflow-node.service.d")
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "inflow-node.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    assert "Type=notify" in unit and "WatchdogSec=" in unit


def test_the_node_tells_systemd_it_started_lives_and_stops(model_path, tmp_path):
    # systemd's notify protocol: datagrams of KEY=VALUE lines on the socket NOTIFY_SOCKET names.
    path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(30)
    broker = Broker({"transactions": 2, "fraud-alerts": 1, "transactions.dlq": 1})
    try:
        node = Node(broker.bootstrap, model_path, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        messages = []
        deadline = time.time() + 30
        while time.time() < deadline and not ("STATUS=ready" in messages and messages.count("WATCHDOG=1") >= 2):
            messages += listener.recv(4096).decode().split("\n")
        assert messages[0] == "READY=1", messages
        assert messages.count("WATCHDOG=1") >= 2 and "STATUS=ready" in messages, messages
        assert node.stop() == 0, node.stderr()
        rest = []
        listener.settimeout(1)
        try:
            while True:
                rest += listener.recv(4096).decode().split("\n")
        except socket.timeout:
            pass
        assert "STOPPING=1" in rest, rest
    finally:
        listener.close()
        broker.stop()


MAKE_CERTS = os.path.join(DEPLOY, "cluster", "make-certs")
TOKEN = "a-test-admin-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve(value, env):
    """Compose's ${VAR:?message} and ${VAR:-default}, and Kubernetes' $(VAR), from `env`."""
    value = re.sub(r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: env[m.group(1)], str(value))
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)


def here(env, certs, model_path, bootstrap):
    """A container's environment with its paths and addresses moved to this machine."""
    return {**env, "INFLOW_TLS_DIR": str(certs), "INFLOW_MODEL_DIR": os.path.dirname(model_path),
            "INFLOW_BOOTSTRAP": bootstrap}


def validate(config, env):
    r = subprocess.run([INFLOW, "validate", "-c", config], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **env})
    assert r.returncode == 0, (config, env, r.stderr)


def test_the_compose_file_runs_its_configs_on_real_kafka(model_path, tmp_path):
    compose = yaml.safe_load(open(os.path.join(DEPLOY, "compose.yaml")))
    services = compose["services"]
    assert {"kafka", "inflow-gateway", "inflow-ingest", "inflow-serve", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for name, service in services.items():  # every file it mounts from the repository exists
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert os.path.exists(os.path.join(DEPLOY, source)), (name, volume)
    certs = tmp_path / "tls"
    subprocess.run([MAKE_CERTS, str(certs), "gateway-1", "ingest-1"], check=True, capture_output=True)
    broker = Broker({"transactions": 4, "fraud-alerts": 1, "transactions.dlq": 1})
    nodes = []
    try:
        ports = {"gateway": free_port(), "ingest": free_port()}
        for role in ("gateway", "ingest"):
            service = services[f"inflow-{role}"]
            config = os.path.join(DEPLOY, next(v for v in service["volumes"] if "node.yaml" in v).split(":")[0])
            env = {k: resolve(v, {"INFLOW_ADMIN_TOKEN": TOKEN}) for k, v in service["environment"].items()}
            env = here(env, certs, model_path, broker.bootstrap)
            # On this machine the containers' names are loopback ports.
            env.update(INFLOW_LISTEN=f"127.0.0.1:{ports[role]}", INFLOW_ADVERTISE=f"127.0.0.1:{ports[role]}",
                       INFLOW_SEED=f"127.0.0.1:{ports['gateway']}", INFLOW_ADMIN="0.0.0.0:0")
            validate(config, env)
            node = Process([INFLOW, "node", "-c", config], env=env)
            node.admin = "http://127.0.0.1:" + node.wait_for_stderr(r"admin API on http://[^/]+:(\d+)/").group(1)
            nodes.append(node)
        gen = generate(broker.bootstrap, 20_000)
        assert gen.wait(timeout=120) == 0, gen.stderr.read()
        ingest = nodes[1]
        deadline = time.time() + 90
        while True:
            request = urllib.request.Request(ingest.admin + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            metrics = urllib.request.urlopen(request, timeout=5).read().decode()
            alerted = sum(float(l.split()[-1]) for l in metrics.splitlines()
                          if l.startswith("inflow_records_alerted_total"))
            if alerted > 0:
                break
            assert time.time() < deadline, "no alert through the compose configs\n" + ingest.stderr()[-3000:]
            time.sleep(0.5)
        assert "calls_sent" in metrics and re.search(r'inflow_cluster_calls_sent_total\S* [1-9]', metrics), \
            "the ingest node did not call the gateway node"
    finally:
        for node in reversed(nodes):
            node.stop()
        broker.stop()


def test_the_kubernetes_manifests_hold_configs_that_validate(model_path, tmp_path):
    docs = list(yaml.safe_load_all(open(os.path.join(DEPLOY, "kubernetes", "inflow.yaml"))))
    kinds = [d["kind"] for d in docs]
    assert {"Secret", "ConfigMap", "StatefulSet", "Service", "PodMonitor"} <= set(kinds)
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for role in ("gateway", "ingest"):  # the ConfigMap carries the example configs unchanged
        example = open(os.path.join(ROOT, "config", "examples", f"cluster-{role}.yaml")).read()
        assert config_map["data"][f"{role}.yaml"] == example, f"deploy/kubernetes drifted from cluster-{role}.yaml"
    certs = tmp_path / "tls"
    subprocess.run([MAKE_CERTS, str(certs), "inflow-gateway-0", "inflow-ingest-0"], check=True, capture_output=True)
    for sts in (d for d in docs if d["kind"] == "StatefulSet"):
        assert services[sts["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"  # stable names
        pod = sts["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert "/readyz" in " ".join(container["readinessProbe"]["exec"]["command"])
        assert pod["terminationGracePeriodSeconds"] > 10  # above node.drain_timeout_ms
        env = {"INFLOW_NODE_NAME": sts["metadata"]["name"] + "-0", "INFLOW_ADMIN_TOKEN": TOKEN}
        for item in container["env"]:
            if "value" in item:
                env[item["name"]] = resolve(item["value"], env)
        env = here(env, certs, model_path, "127.0.0.1:9")
        config_name = container["args"][-1].rsplit("/", 1)[1]
        config = tmp_path / config_name
        config.write_text(config_map["data"][config_name])
        validate(str(config), env)


def test_the_dockerfile_installs_what_deploy_install_deps_does():
    dockerfile = open(os.path.join(DEPLOY, "Dockerfile")).read()
    installed = open(os.path.join(DEPLOY, "install-deps")).read()
    build = dockerfile[:dockerfile.index("COPY . /src")]
    packages = set(re.findall(r"\b(lib[\w.+-]+|g\+\+|cmake|make|pkg-config|catch2)\b", build.split("install -y")[1]))
    missing = {p for p in packages if not re.search(rf"(^|\s){re.escape(p)}(\s|$)", installed, re.M)}
    assert not missing, f"deploy/Dockerfile builds with packages deploy/install-deps does not name: {missing}"
