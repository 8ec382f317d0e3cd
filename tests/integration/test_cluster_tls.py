"""Cluster traffic off loopback: mutual TLS between two network namespaces
joined by a veth pair. Peers without a certificate from the cluster's CA are
refused before any message is read; a client announcing a huge message, with
or without a certificate, cannot make a node allocate it; bad certificate files stop a node at start-up."""

import json
import os
import socket
import ssl
import subprocess
import time

import pytest

from harness import EXAMPLE, INFLOW, ROOT, SANITIZED, Process

NS_A, NS_B = f"inflow-a-{os.getpid()}", f"inflow-b-{os.getpid()}"
IP_A, IP_B = "10.231.7.1", "10.231.7.2"


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


MAKE_CERTS = os.path.join(ROOT, "deploy", "cluster", "make-certs")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The deploy script's CA and node certificates, and a second CA's for a stranger."""
    ours, theirs = str(tmp_path_factory.mktemp("cluster")), str(tmp_path_factory.mktemp("other"))
    sh(MAKE_CERTS, ours, "node-a", "node-b")
    sh(MAKE_CERTS, theirs, "rogue")
    pair = lambda d, n: (os.path.join(d, f"{n}.key"), os.path.join(d, f"{n}.pem"))
    return {"ca": os.path.join(ours, "ca.pem"), "other_ca": os.path.join(theirs, "ca.pem"), "a": pair(ours, "node-a"),
            "b": pair(ours, "node-b"), "rogue": pair(theirs, "rogue")}


@pytest.fixture(scope="module")
def namespaces():
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root (CI runs as root)")
    for ns in (NS_A, NS_B):
        sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", "inflow-va", "netns", NS_A, "type", "veth", "peer", "name", "inflow-vb", "netns", NS_B)
        for ns, dev, ip in ((NS_A, "inflow-va", IP_A), (NS_B, "inflow-vb", IP_B)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class NsNode(Process):
    """A gateway node inside a network namespace, with mutual TLS."""

    def __init__(self, ns, ip, name, cert, ca, model_path, port=4500, seeds=()):
        key, pem = cert
        args = ["ip", "netns", "exec", ns, INFLOW, "node", "-c", EXAMPLE, "--set", f"node.name={name}",
                "--set", "node.roles=[gateway]", "--set", "node.admin=127.0.0.1:0",
                "--set", f"node.listen={ip}:{port}", "--set", f"cluster.seeds=[{', '.join(seeds)}]",
                "--set", f"cluster.tls={{certificate: {pem}, key: {key}, ca_file: {ca}}}",
                "--set", f"models.fraud.path={model_path}", "--set", "cluster.heartbeat_ms=100",
                ]
        super().__init__(args, env={"INFLOW_BOOTSTRAP": "127.0.0.1:9"})  # gateway nodes never touch Kafka
        self.ns = ns
        self.address = f"{ip}:{port}"
        self.admin = self.wait_for_stderr(r"admin API on http://127\.0\.0\.1:(\d+)/").group(1)

    def nodes(self):
        out = subprocess.run(["ip", "netns", "exec", self.ns, INFLOW, "status", "--json", "--admin",
                              f"127.0.0.1:{self.admin}"], capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        return sorted(n["name"] for n in json.loads(out.stdout)["cluster"]["nodes"])

    def wait_for_nodes(self, names, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline and self.nodes() != names:
            time.sleep(0.2)
        assert self.nodes() == names, self.stderr()

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def in_ns(ns, code):
    """Runs Python code inside a namespace; returns its standard output."""
    out = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_mutual_tls_between_namespaces_refuses_strangers(namespaces, pki, model_path):
    a = NsNode(NS_A, IP_A, "node-a", pki["a"], pki["ca"], model_path)
    b = NsNode(NS_B, IP_B, "node-b", pki["b"], pki["ca"], model_path, seeds=[a.address])
    try:
        assert "(mutual TLS)" in a.stderr()
        a.wait_for_nodes(["node-a", "node-b"])
        b.wait_for_nodes(["node-a", "node-b"])

        # A node whose certificate comes from another CA never joins.
        rogue = NsNode(NS_B, IP_B, "rogue", pki["rogue"], pki["other_ca"], model_path, port=4501, seeds=[a.address])
        try:
            rogue.wait_for_stderr(rf"refused TLS peer {IP_A}:4500: ")
            a.wait_for_stderr(rf"TLS peer {IP_B}:\d+ refused this node")
            time.sleep(1)
            assert rogue.nodes() == ["rogue"]
            assert a.nodes() == ["node-a", "node-b"]
        finally:
            rogue.stop()

        # A client with no certificate at all is refused during the handshake.
        refusals = a.stderr().count("refused TLS peer")
        outcome = in_ns(NS_B, f"""
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations({pki['ca']!r})
s = socket.create_connection(({IP_A!r}, 4500), timeout=5)
try:
    t = ctx.wrap_socket(s)
    t.sendall(b"x" * 64)
    print("refused" if t.recv(1) == b"" else "accepted")
except (ssl.SSLError, ConnectionError, OSError) as e:
    print("refused")
""")
        assert outcome == "refused"
        deadline = time.time() + 5
        while a.stderr().count("refused TLS peer") == refusals and time.time() < deadline:
            time.sleep(0.1)
        assert a.stderr().count("refused TLS peer") > refusals, "the refused client was not logged"

        # A raw client announcing a ~4 GiB message, without TLS: nothing is allocated for it.
        before = a.rss_kib()
        in_ns(NS_B, f"""
import socket, struct, time
for _ in range(20):
    s = socket.create_connection(({IP_A!r}, 4500), timeout=5)
    # A BASP-like header: operation, padding, flags, then a payload length of 0xfffffff0.
    s.sendall(bytes([1, 0, 0, 0]) + struct.pack(">I", 0xfffffff0) + bytes(64) + b"\\xff" * 4096)
    time.sleep(0.05)
    s.close()
""")
        time.sleep(1)
        grown = a.rss_kib() - before
        limit = (64 if SANITIZED else 10) * 1024  # either way far below the 4 GiB announced
        assert grown < limit, f"RSS grew by {grown} KiB"
        assert a.proc.poll() is None
        a.wait_for_nodes(["node-a", "node-b"])  # and still serving its peer

        # A certificate from the cluster's CA earns no more trust in frames: a forged length closes the link.
        outcome = in_ns(NS_B, f"""
import socket, ssl, struct
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations({pki['ca']!r})
ctx.load_cert_chain({pki['b'][1]!r}, {pki['b'][0]!r})
t = ctx.wrap_socket(socket.create_connection(({IP_A!r}, 4500), timeout=5))
t.sendall(bytes([1, 0, 0, 0]) + struct.pack(">I", 0xfffffff0) + bytes(24))
try:
    while t.recv(65536):
        pass  # the node's own handshake first
    print("closed")
except socket.timeout:
    print("still open")
except (ssl.SSLError, ConnectionError):
    print("closed")
""")
        assert outcome == "closed"
        a.wait_for_stderr(rf"closed the connection from {IP_B}:\d+: a frame of 4294967280 bytes announced")
        a.wait_for_nodes(["node-a", "node-b"])
    finally:
        assert b.stop() == 0, b.stderr()
        assert a.stop() == 0, a.stderr()


def test_bad_certificate_files_stop_the_node_with_what_to_do(pki, model_path, tmp_path):
    encrypted = str(tmp_path / "encrypted.key")
    sh("openssl", "pkey", "-in", pki["a"][0], "-aes256", "-passout", "pass:secret", "-out", encrypted)
    cases = [
        ({"certificate": "/nonexistent/node.pem", "key": pki["a"][0], "ca_file": pki["ca"]},
         "cluster.tls.certificate: cannot read /nonexistent/node.pem"),
        ({"certificate": pki["a"][1], "key": pki["b"][0], "ca_file": pki["ca"]}, "is not the key of the certificate"),
        ({"certificate": pki["rogue"][1], "key": pki["rogue"][0], "ca_file": pki["ca"]},
         "does not verify against the CA"),
        ({"certificate": pki["a"][1], "key": encrypted, "ca_file": pki["ca"]}, "is encrypted"),
        ({"certificate": pki["a"][1], "key": pki["a"][0], "ca_file": pki["a"][0]}, "holds no PEM CA certificate"),
    ]
    for tls, expected in cases:
        tls_yaml = "{" + ", ".join(f"{k}: {v}" for k, v in tls.items()) + "}"
        out = subprocess.run([INFLOW, "node", "-c", EXAMPLE, "--set", "node.roles=[gateway]",
                              "--set", "node.listen=127.0.0.1:0", "--set", f"cluster.tls={tls_yaml}",
                              "--set", f"models.fraud.path={model_path}"],
                             capture_output=True, text=True, timeout=30, env={**os.environ, "INFLOW_BOOTSTRAP": "127.0.0.1:9"})
        assert out.returncode == 78, (expected, out.stderr)
        assert expected in out.stderr, out.stderr
