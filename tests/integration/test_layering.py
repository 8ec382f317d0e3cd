"""The build refuses an include the architecture forbids: each folder's CMake target says what it
uses, and cmake/check_layering.py (the first step of every build) checks every include against it."""

import os
import shutil
import subprocess

from harness import INFLOW

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYERING = os.path.join(os.path.dirname(INFLOW), "layering.txt")  # written by cmake next to the binary
SCRIPT = os.path.join(ROOT, "cmake", "check_layering.py")


def check(root):
    return subprocess.run(["/usr/bin/python3", SCRIPT, root, LAYERING], capture_output=True, text=True)


def test_the_tree_as_it_is_passes():
    result = check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_forbidden_include_fails_with_the_file_and_the_header(tmp_path):
    for folder in ("config", "gateways"):
        shutil.copytree(os.path.join(ROOT, folder), tmp_path / folder)
    provider = tmp_path / "gateways" / "openai" / "provider.cpp"
    provider.write_text('#include "actors/source.hpp"\n' + provider.read_text())
    options = tmp_path / "config" / "options.hpp"
    options.write_text('#include "cluster/wire.hpp"\n' + options.read_text())
    result = check(str(tmp_path))
    assert result.returncode == 1
    assert "gateways/openai/provider.cpp: includes actors/source.hpp, which gateways/openai/ may not use" in result.stderr
    assert "config/options.hpp: includes cluster/wire.hpp, which config/ may not use" in result.stderr
    assert result.stderr.count("layering:") == 2, result.stderr
