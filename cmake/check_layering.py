#!/usr/bin/python3
"""Fails the build when a source file includes a header its folder may not depend on.

The allowed dependencies are the architecture (docs/ARCHITECTURE.md draws them): lower layers
know nothing of higher ones, a provider folder knows only itself and gateways/common, and the
data path reaches the gateways through their call protocol only. Unit tests (*.test.cpp) may
include what they test with."""

import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASE = ["config", "admin"]
ALLOWED = {  # folder -> the folders (or single headers) its code may include, besides its own
    "config": [],
    "admin": [],
    "http": [],
    "kafka": [],
    "events": ["config"],
    "xgboost": ["config", "events"],
    "gateways/common": BASE + ["events", "http", "kafka"],
    "gateways/<provider>": BASE + ["events", "http", "kafka", "xgboost", "gateways/common"],
    "actors": BASE + ["events", "kafka", "gateways/common/gateway_api.hpp", "gateways/common/gateway_actor.hpp"],
    "cluster": BASE + ["http", "gateways/common/gateway_api.hpp", "gateways/common/gateway_actor.hpp",
                       "gateways/common/gateway_probe.hpp", "gateways/common/batcher.hpp"],
    "serve": BASE + ["http", "xgboost", "gateways/kserve/protocol.hpp", "gateways/common/batcher.hpp",
                     "gateways/common/gateway_api.hpp"],
    "node": BASE + ["events", "http", "kafka", "xgboost", "gateways", "actors", "cluster", "generated"],
    "app": BASE + ["events", "http", "kafka", "xgboost", "gateways", "actors", "cluster", "serve", "node", "generated"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(path):
    parts = path.split("/")
    if parts[0] == "gateways":
        return "gateways/common" if parts[1] == "common" else "gateways/<provider>", "/".join(parts[:2])
    return parts[0], parts[0]


def allowed(folder, own, header):
    if header.startswith(own + "/") or "/" not in header:  # its own folder; generated headers
        return True
    return any(header == rule or header.startswith(rule + "/") for rule in ALLOWED[folder])


def main():
    problems = []
    for top in sorted({folder.split("/")[0] for folder in ALLOWED}):
        for directory, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if not name.endswith((".cpp", ".hpp")) or name.endswith(".test.cpp"):
                    continue
                path = os.path.relpath(os.path.join(directory, name), ROOT)
                folder, own = folder_of(path)
                for header in INCLUDE.findall(open(os.path.join(ROOT, path)).read()):
                    if not allowed(folder, own, header):
                        problems.append(f"{path}: includes {header}, which {folder}/ may not depend on")
    for p in problems:
        print(f"layering: {p} (allowed: cmake/check_layering.py, docs/ARCHITECTURE.md)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
