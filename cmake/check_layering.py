#!/usr/bin/python3
"""Fails the build when a source file includes a header its folder may not depend on.

usage: check_layering.py ROOT LAYERING

LAYERING is written by CMakeLists.txt from its inflow_part() calls, a line per folder:
`folder: uses...`, where a use is a folder or a single header. A folder's code may include its own
headers, what its uses name, and generated headers (no slash). Unit tests (*.test.cpp) may include
what they test with. docs/ARCHITECTURE.md draws the same table."""

import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read_layering(path):
    table = {}
    for line in open(path):
        folder, _, uses = line.partition(":")
        if folder.strip():
            table[folder.strip()] = uses.split()
    return table


def owner(path, table):
    """The folder of the table a file belongs to: the longest one its path starts with."""
    folders = [f for f in table if path.startswith(f + "/")]
    return max(folders, key=len) if folders else None


def allowed(header, folder, uses):
    if "/" not in header or header.startswith(folder + "/"):
        return True
    return any(header == use or header.startswith(use + "/") for use in uses)


def main(root, layering):
    table = read_layering(layering)
    problems = []
    for folder in sorted(table):
        for directory, _, files in os.walk(os.path.join(root, folder)):
            for name in files:
                if not name.endswith((".cpp", ".hpp")) or name.endswith(".test.cpp"):
                    continue
                path = os.path.relpath(os.path.join(directory, name), root)
                if owner(path, table) != folder:
                    continue  # a folder of its own (gateways/common inside gateways)
                for header in INCLUDE.findall(open(os.path.join(root, path)).read()):
                    if not allowed(header, folder, table[folder]):
                        problems.append(f"{path}: includes {header}, which {folder}/ may not use")
    for p in problems:
        print(f"layering: {p} (its inflow_part() in CMakeLists.txt says what it uses; "
              f"docs/ARCHITECTURE.md draws it)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
