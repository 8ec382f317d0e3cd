"""Starts Kafka and `inflow node` as real processes and talks to them with an
independent Kafka client (python3-confluent-kafka).

INFLOW_TEST_BROKER chooses the broker for a run: `kafka` (default) is Apache Kafka
from deploy/kafka, one per test module, with fresh topics for every test; `mock` is
`inflow broker`, librdkafka's in-memory mock cluster, one per test."""

import atexit
import fcntl
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFLOW = os.environ.get("INFLOW_BIN", os.path.join(ROOT, "build", "inflow"))
# AddressSanitizer build (deploy/test on CI): its quarantine keeps freed memory, so RSS bounds are looser.
SANITIZED = os.environ.get("INFLOW_SANITIZE") == "1"
EXAMPLE = os.path.join(ROOT, "config", "examples", "fraud.yaml")
BROKER_KIND = os.environ.get("INFLOW_TEST_BROKER", "kafka")
assert BROKER_KIND in ("kafka", "mock"), f"INFLOW_TEST_BROKER is kafka or mock, not {BROKER_KIND!r}"
REAL_KAFKA = BROKER_KIND == "kafka"


class Process:
    """A child process whose stderr is collected as it runs."""

    def __init__(self, args, env=None):
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.stderr_lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def stderr(self):
        return "".join(self.stderr_lines)

    def wait_for_stderr(self, pattern, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.stderr())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.args[1]} never logged {pattern!r}; stderr:\n{self.stderr()}")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc


class MockBroker(Process):
    """`inflow broker`: the development broker, in memory, about 5 MiB per partition."""

    def __init__(self, topics):
        args = [INFLOW, "broker"]
        for name, partitions in topics.items():
            args += ["--topic", f"{name}:{partitions}"]
        super().__init__(args)
        self.bootstrap = self.proc.stdout.readline().strip()
        assert re.match(r"^127\.0\.0\.1:\d+", self.bootstrap), self.bootstrap
        self.pid = self.proc.pid


class Kafka(Process):
    """Apache Kafka from deploy/kafka; `pids` are its brokers' JVMs, by node id."""

    # Retention is checked every second, so tests can see records deleted.
    SETS = ["log.retention.check.interval.ms=1000"]

    def __init__(self, brokers=1, args=()):
        command = [os.path.join(ROOT, "deploy", "kafka"), "--brokers", str(brokers), *args]
        for s in self.SETS:
            command += ["--set", s]
        super().__init__(command)
        self.bootstrap = self.proc.stdout.readline().strip()
        assert re.match(r"^127\.0\.0\.1:\d+", self.bootstrap), self.stderr()
        self.pids = {}
        deadline = time.time() + 10
        while len(self.pids) < brokers and time.time() < deadline:
            self.pids = {int(n): int(p) for n, p in re.findall(r"broker (\d+) pid (\d+)", self.stderr())}
            time.sleep(0.05)
        # With --sasl-ssl, tests set up and check through the brokers' own plaintext listener.
        internal = re.findall(r"plaintext listener (127\.0\.0\.1:\d+)", self.stderr())
        self.admin_config = {"bootstrap.servers": ",".join(internal) or self.bootstrap}

    def admin(self):
        return AdminClient(self.admin_config)

    def kill_broker(self, node_id):
        """SIGKILLs one broker's JVM and waits until it is gone."""
        os.kill(self.pids[node_id], signal.SIGKILL)
        deadline = time.time() + 30
        while os.path.exists(f"/proc/{self.pids[node_id]}") and time.time() < deadline:
            time.sleep(0.05)

    def reset(self, topics, configs=None):
        """Deletes every topic (Kafka drops the groups' offsets of deleted topics), then
        creates `topics` (name -> partitions)."""
        admin = self.admin()
        old = [t for t in admin.list_topics(timeout=10).topics if not t.startswith("__")]
        if old:
            for future in admin.delete_topics(old, operation_timeout=30).values():
                future.result()
        deadline = time.time() + 60
        pending = {name: NewTopic(name, partitions, config=(configs or {}).get(name, {}))
                   for name, partitions in topics.items()}
        while pending:
            for name, future in admin.create_topics(list(pending.values()), operation_timeout=30).items():
                try:
                    future.result()
                    del pending[name]
                except Exception as e:  # a deleted topic of the same name may still be going
                    assert time.time() < deadline, f"creating {name}: {e}"
            time.sleep(0.2 if pending else 0)
        # Every partition has a leader before the test starts.
        while True:
            metadata = admin.list_topics(timeout=10).topics
            if all(name in metadata and len(metadata[name].partitions) == n and
                   all(p.leader >= 0 for p in metadata[name].partitions.values()) for name, n in topics.items()):
                return
            assert time.time() < deadline, "new topics never got leaders"
            time.sleep(0.1)


_shared_kafka = None


def shared_kafka():
    """The test module's Kafka (ctest runs each module in a process of its own)."""
    global _shared_kafka
    if _shared_kafka is None or _shared_kafka.proc.poll() is not None:
        _shared_kafka = Kafka()
        atexit.register(_shared_kafka.stop)
    return _shared_kafka


class Topics:
    """Fresh topics on the module's Kafka: what a test sees as its broker."""

    def __init__(self, kafka, topics, configs=None):
        kafka.reset(topics, configs)
        self.kafka = kafka
        self.bootstrap = kafka.bootstrap
        self.pid = kafka.pids[1]  # the (first) broker's JVM

    def stop(self):
        return 0


def Broker(topics, configs=None):
    """A broker with these topics (name -> partitions) and nothing else. `configs` gives
    topic properties (name -> {key: value}) where the real broker honours them."""
    if REAL_KAFKA:
        return Topics(shared_kafka(), topics, configs)
    return MockBroker(topics)


class Node(Process):
    def __init__(self, bootstrap, model_path, sets=(), group="inflow-fraud", env=None, config=EXAMPLE):
        args = [INFLOW, "node", "-c", config, "--set", "node.admin=127.0.0.1:0", "--set", f"kafka.group.id={group}"]
        if model_path:  # the fraud example's model
            args += ["--set", f"models.fraud.path={model_path}"]
        for s in sets:
            args += ["--set", s]
        super().__init__(args, env={"INFLOW_BOOTSTRAP": bootstrap, **(env or {})})
        m = self.wait_for_stderr(r"admin API on https?://[^/]+:(\d+)/")  # reached on loopback whatever it binds
        self.admin = f"http://127.0.0.1:{m.group(1)}"

    def get(self, path):
        with urllib.request.urlopen(self.admin + path, timeout=5) as r:
            return r.status, r.read().decode()

    def readyz(self):
        """(status, body) of /readyz, 503 included."""
        try:
            return self.get("/readyz")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def describe(self):
        """The node's state and log for a failure message, without librdkafka's connection noise."""
        if self.proc.poll() is not None:
            state = f"exited with {self.proc.returncode}"
        else:
            try:
                state = self.get("/api/status")[1][:1500]
            except OSError as e:
                state = str(e)
        log = [l for l in self.stderr().splitlines() if "librdkafka FAIL" not in l and "librdkafka ERROR" not in l]
        return f"--- node pid {self.proc.pid}: {state}\n" + "\n".join(log[-60:])

    def metrics(self):
        _, text = self.get("/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def metric(self, name, pipeline="fraud"):
        return self.metrics().get(f'{name}{{pipeline="{pipeline}"}}', 0)


def generate(bootstrap, count, rate=0):
    """`inflow gen` in the background: card transactions keyed by card."""
    return subprocess.Popen([INFLOW, "gen", "--bootstrap", bootstrap, "--topic", "transactions",
                             "--count", str(count), "--rate", str(rate), "--seed", "7"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_until(condition, node, timeout=60):
    """Polls `condition` until it holds; fails with the node's state and log after `timeout` s."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, node.describe()
        time.sleep(0.2)


def train_model(directory):
    """Trains a small model once; later calls reuse it. Test modules may run side by side
    (ctest -j): a lock lets one of them train while the others wait."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(directory, "model.profile.json")):  # written last
            subprocess.run([INFLOW, "train", "--out", directory, "--rows", "40000", "--rounds", "40"], check=True,
                           capture_output=True)
    return os.path.join(directory, "model.json")


# --- records -------------------------------------------------------------

def transaction(rng, i, fraud):
    """A transaction in the documented event schema. Fraud looks like account
    takeover: a large online electronics purchase far above the usual."""
    avg = rng.uniform(20, 80)
    tx = {"id": f"py-{i}", "card_id": f"card-{rng.randrange(5000):06d}", "ts": int(time.time() * 1000),
          "amount": round(avg * rng.uniform(0.5, 1.5), 2), "currency": "EUR", "merchant_id": f"m-{i % 997}",
          "mcc": rng.choice([5411, 5812, 5541]), "country": "DE", "channel": "pos", "card_present": True,
          "distance_km": rng.uniform(0, 10), "secs_since_last": rng.uniform(3600, 90000), "tx_last_hour": 0,
          "amount_avg_30d": round(avg, 2)}
    if fraud:
        tx.update(amount=round(avg * rng.uniform(10, 20), 2), mcc=5732, channel="online", card_present=False,
                  distance_km=rng.uniform(1000, 3000), secs_since_last=rng.uniform(60, 600), tx_last_hour=3)
    return json.dumps(tx).encode()


POISON = {
    "inflow.errors.empty": b"",
    "inflow.errors.invalid_json": b'{"id": "x", "card_id": "c", "amount": 12',
    "inflow.errors.not_an_object": b"[1, 2, 3]",
    "inflow.errors.missing_field": b'{"id": "x", "card_id": "c"}',
    "inflow.errors.wrong_type": json.dumps({"id": "x", "card_id": "c", "amount": "lots"}).encode(),
    "inflow.errors.too_deep": b"[" * 200 + b"]" * 200,
    "inflow.errors.oversized": b'{"pad": "' + b"x" * 70000 + b'"}',
}


class Feeder:
    """Produces records and remembers where each one landed."""

    def __init__(self, bootstrap, topic="transactions"):
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
        self.landed = {}  # (partition, offset) -> (kind, value)
        self.errors = []

    def send(self, value, kind, key):
        def on_delivery(err, msg, kind=kind, value=value):
            if err:
                self.errors.append(err)
            else:
                self.landed[(msg.partition(), msg.offset())] = (kind, value)
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                self.producer.poll(0.01)
        self.producer.poll(0)

    def feed(self, count, seed=1, fraud_every=50, poison_every=400, rate=None):
        rng = random.Random(seed)
        kinds = sorted(POISON)
        start = time.time()
        for i in range(count):
            if poison_every and i % poison_every == poison_every - 1:
                kind = kinds[(i // poison_every) % len(kinds)]
                self.send(POISON[kind], kind, b"poison-%d" % i)
            else:
                fraud = fraud_every and i % fraud_every == 0
                self.send(transaction(rng, i, fraud), "fraud" if fraud else "legit", b"card-%d" % (i % 5000))
            if rate:
                delay = start + (i + 1) / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
        self.producer.flush(30)
        assert not self.errors, self.errors

    def scored_as_fraud(self):
        """Where the records landed that a FaultServer (min(1, amount / 1000)) alerts on at 0.9."""
        return {k for k, (_, value) in self.landed.items() if json.loads(value)["amount"] >= 900}


def read_all(bootstrap, topic, partitions):
    """Every record of a topic, from the start to the current end."""
    # Kafka serves a connection's requests in turn: a fetch left waiting on a read partition would
    # hold up the next partition's offsets and fetch for the whole wait (500 ms by default).
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    out = []
    for p in range(partitions):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if hi <= lo:
            continue
        c.assign([TopicPartition(topic, p, lo)])
        got = 0
        deadline = time.time() + 30
        while got < hi - lo and time.time() < deadline:
            # No more than are left: a batch call waits out its timeout for as many as it asks.
            for m in c.consume(min(1000, hi - lo - got), timeout=1):
                if m.error():
                    continue
                out.append(m)
                got += 1
        assert got == hi - lo, f"{topic}[{p}]: read {got} of {hi - lo}"
    c.close()
    return out


def committed(bootstrap, group, topic, partitions, timeout=60):
    """The group's committed offsets. Read uncommitted: a killed member's open transaction makes a
    stable read wait until that transaction times out, and the callers poll anyway."""
    deadline = time.time() + timeout
    while True:
        # A fresh consumer each try: it looks the coordinator up again (a new broker's coordinator
        # may still be loading, or the connection to it may have stalled under load).
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                      "isolation.level": "read_uncommitted"})
        try:
            res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
            return {t.partition: t.offset for t in res}
        except KafkaException as e:
            code = e.args[0].code()
            if not e.args[0].retriable() and code not in (KafkaError.NOT_COORDINATOR, KafkaError._TIMED_OUT) \
                    or time.time() > deadline:
                raise
            time.sleep(0.2)
        finally:
            c.close()


def end_offsets(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    out = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    c.close()
    return out


def wait_until_committed(bootstrap, group, topic, partitions, timeout=90):
    ends = end_offsets(bootstrap, topic, partitions)
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = committed(bootstrap, group, topic, partitions)
        if all(ends[p] == 0 or done.get(p, -1) >= ends[p] for p in ends):
            return ends
        time.sleep(0.5)
    raise AssertionError(f"committed {committed(bootstrap, group, topic, partitions)} never reached {ends}")


def headers(msg):
    return {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}


class ModelServer(Process):
    """`inflow serve` over one model; its base URL is the first line it prints."""

    def __init__(self, model_path, name="fraud", listen="127.0.0.1:0", args=(), env=None):
        super().__init__([INFLOW, "serve", "--model", f"{name}={model_path}", "--listen", listen, *args], env=env)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://"), self.stderr()


def remote_sets(endpoint, model_path, extra=()):
    """--set values that switch the fraud model to the kserve provider."""
    meta = json.load(open(os.path.join(os.path.dirname(model_path), "model.meta.json")))
    return ["models.fraud.provider=kserve", "models.fraud.path=~", f"models.fraud.endpoint={endpoint}",
            f"models.fraud.input={json.dumps(meta['features'])}", *extra]
