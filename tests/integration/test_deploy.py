"""The deploy kit: the systemd unit (verified by systemd-analyze, and the node's side of
Type=notify spoken to a socket as systemd's does), the compose file and the Kubernetes manifests
(parsed, their Inflow configs validated and run against real Kafka)."""

import os
import shutil
import socket
import subprocess
import time

from harness import INFLOW, ROOT, Broker, Node

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
