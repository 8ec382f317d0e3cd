"""Replay-safe inference (`models.*.cache`): a node killed after scoring, before committing,
reads every record again; with the cache, the provider sees no input twice."""

import collections
import signal
import time

import pytest

from fault_server import FaultServer
from harness import Broker, Feeder, Node, remote_sets, wait_until_committed

RECORDS = 2000
# The new node gets the killed one's partitions after its session times out (default 45 s).
SESSION = ["kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]


@pytest.fixture
def broker():
    b = Broker({"transactions": 4, "fraud-alerts": 2, "transactions.dlq": 1, "fraud-cache": 2},
               {"fraud-cache": {"cleanup.policy": "compact"}})
    yield b
    b.stop()


def crash_and_replay(broker, model_path, cache):
    """Scores RECORDS, SIGKILLs the node before any commit, lets a new node finish; returns
    (the rows the provider scored, the new node's metrics)."""
    provider = FaultServer()
    try:
        Feeder(broker.bootstrap).feed(RECORDS, seed=21, fraud_every=10, poison_every=0)
        sets = remote_sets(provider.url, model_path, [*SESSION, *(["models.fraud.cache.topic=fraud-cache"] if cache else [])])
        first = Node(broker.bootstrap, model_path, sets=[*sets, "pipelines.fraud.commit_interval_ms=600000"])
        deadline = time.time() + 60
        while time.time() < deadline and first.metric("inflow_records_scored_total") < RECORDS:
            time.sleep(0.2)
        assert first.metric("inflow_records_scored_total") == RECORDS
        first.stop(sig=signal.SIGKILL)
        calls_before = len(provider.arrivals)
        second = Node(broker.bootstrap, model_path, sets=sets)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
        metrics = second.metrics()
        assert second.stop() == 0, second.stderr()
        print(f"cache={cache}: {calls_before} calls before the crash, {len(provider.arrivals) - calls_before} "
              f"for the replay ({sum(r for _, r in provider.arrivals[calls_before:])} inputs)")
        return list(provider.rows), metrics, calls_before
    finally:
        provider.stop()


def test_without_the_cache_a_crash_replay_pays_for_every_input_again(broker, model_path):
    rows, _, _ = crash_and_replay(broker, model_path, cache=False)
    assert sum(1 for n in collections.Counter(rows).values() if n > 1) == RECORDS


def test_with_the_cache_the_provider_sees_no_input_twice(broker, model_path):
    rows, metrics, calls_before = crash_and_replay(broker, model_path, cache=True)
    assert len(rows) == RECORDS and len(set(rows)) == RECORDS, "an input reached the provider twice"
    assert metrics['inflow_gateway_cache_hits_total{model="fraud"}'] == RECORDS
    assert metrics['inflow_gateway_cache_misses_total{model="fraud"}'] == 0
    # Each answer remembers its part of a call: the replay saved about the calls the first run made.
    saved = metrics['inflow_gateway_cache_calls_saved_total{model="fraud"}']
    assert 0.5 * calls_before <= saved <= 1.5 * calls_before, (saved, calls_before)
