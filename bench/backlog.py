#!/usr/bin/python3
"""First measurement: how fast one node drains a backlog of card transactions
(consume -> decode -> score with XGBoost -> alert -> commit), as a ratio of
raw librdkafka consumption (kcat) of the same records in the same run.

    bench/backlog.py [--records 200000] [--partitions 12]
"""

import argparse
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--partitions", type=int, default=12)
    args = ap.parse_args()

    model = harness.train_model(os.path.join(harness.ROOT, "models", "fraud"))
    broker = harness.Broker({"transactions": args.partitions, "fraud-alerts": 1, "transactions.dlq": 1})
    try:
        print(f"producing {args.records} transactions ...", file=sys.stderr)
        subprocess.run([harness.INFLOW, "gen", "--bootstrap", broker.bootstrap, "--count", str(args.records)],
                       check=True, capture_output=True)

        print("ceiling: kcat consuming the same records ...", file=sys.stderr)
        start = time.time()
        out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", "transactions", "-o", "beginning", "-e",
                              "-q", "-f", "%o\n"], check=True, capture_output=True)
        kcat_s = time.time() - start
        assert out.stdout.count(b"\n") == args.records
        kcat_rate = args.records / kcat_s

        print("inflow node draining the backlog ...", file=sys.stderr)
        # As in the demo: the development broker holds empty fetches for the full wait.
        node = harness.Node(broker.bootstrap, model, sets=["kafka.fetch.wait.max.ms=5"])
        while node.metric("inflow_records_consumed_total") == 0:
            time.sleep(0.005)
        first = time.time()
        while node.metric("inflow_records_in_flight") > 0 or \
                node.metric("inflow_records_consumed_total") < args.records:
            time.sleep(0.01)
        node_s = time.time() - first
        alerted = node.metric("inflow_records_alerted_total")
        node.stop()
        node_rate = args.records / node_s
    finally:
        broker.stop()

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"| machine | {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()} |")
    print(f"| records | {args.records} JSON transactions, {args.partitions} partitions, {int(alerted)} alerts |")
    print(f"| ceiling: kcat raw consumption | {kcat_rate:,.0f} records/s |")
    print(f"| inflow node, consume to outcome | {node_rate:,.0f} records/s |")
    print(f"| ratio | {node_rate / kcat_rate:.2f} of the ceiling |")


if __name__ == "__main__":
    main()
