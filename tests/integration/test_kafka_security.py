"""A node on a Kafka that clients reach only with SASL_SSL (SCRAM-SHA-512 over TLS,
with a CA the test makes), configured through the `kafka.` passthrough alone, as the
README shows. The test feeds and checks through the brokers' own plaintext listener."""

import subprocess

import pytest

from harness import INFLOW, REAL_KAFKA, EXAMPLE, Feeder, Kafka, Node, Topics, read_all, wait_until_committed

pytestmark = pytest.mark.skipif(not REAL_KAFKA, reason="needs Apache Kafka (INFLOW_TEST_BROKER=kafka)")


def make_certificates(directory):
    """A CA, and a broker key and certificate for 127.0.0.1 signed by it."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=inflow-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "broker.key")
    openssl("req", "-new", "-key", "broker.key", "-subj", "/CN=127.0.0.1", "-out", "broker.csr")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.cnf", "-out", "broker.pem")
    # Kafka's PEM keystore: the unencrypted PKCS#8 key, then the certificate chain.
    keystore = directory / "keystore.pem"
    keystore.write_text((directory / "broker.key").read_text() + (directory / "broker.pem").read_text())
    return keystore, directory / "ca.pem"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    keystore, ca = make_certificates(directory)
    kafka = Kafka(args=["--sasl-ssl", str(keystore), "--scram-user", "inflow:s3cret-pw"])
    kafka.ca = ca
    yield kafka
    kafka.stop()


def security_sets(ca, password="s3cret-pw"):
    return ["kafka.security.protocol=SASL_SSL", "kafka.sasl.mechanisms=SCRAM-SHA-512",
            "kafka.sasl.username=inflow", f"kafka.sasl.password={password}", f"kafka.ssl.ca.location={ca}"]


def test_a_node_scores_over_sasl_ssl(secure_kafka, model_path):
    Topics(secure_kafka, {"transactions": 4, "fraud-alerts": 2, "transactions.dlq": 1})
    plaintext = secure_kafka.admin_config["bootstrap.servers"]
    assert plaintext != secure_kafka.bootstrap
    feeder = Feeder(plaintext)
    feeder.feed(2000, poison_every=100)
    node = Node(secure_kafka.bootstrap, model_path, sets=security_sets(secure_kafka.ca))
    wait_until_committed(plaintext, "inflow-fraud", "transactions", 4)
    assert node.stop() == 0, node.stderr()
    alerts = read_all(plaintext, "fraud-alerts", 2)
    dead = read_all(plaintext, "transactions.dlq", 1)
    assert len(alerts) >= 30 and len(dead) == 20


def test_a_wrong_password_or_untrusted_broker_is_a_clear_error(secure_kafka, model_path, tmp_path):
    Topics(secure_kafka, {"transactions": 4, "fraud-alerts": 2, "transactions.dlq": 1})
    stranger = tmp_path / "stranger.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(tmp_path / "stranger.key"), "-out", str(stranger)], check=True, capture_output=True)
    for sets in (security_sets(secure_kafka.ca, password="wrong"), security_sets(stranger)):
        args = [INFLOW, "node", "-c", EXAMPLE, "--set", f"models.fraud.path={model_path}",
                "--set", "node.admin=127.0.0.1:0"]
        for s in sets:
            args += ["--set", s]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120,
                           env={"INFLOW_BOOTSTRAP": secure_kafka.bootstrap, "PATH": "/usr/bin:/bin"})
        assert r.returncode == 69, r.stderr
        assert "cannot reach Kafka" in r.stderr
