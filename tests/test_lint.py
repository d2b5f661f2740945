"""ruff over the package, the tests and tasks.py, with pyproject's rules: the lint a reviewer runs,
kept clean by the fast tests (ruff comes with the test extras, which setup.sh installs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("ruff", reason="needs ruff: pip install -e .[test] (setup.sh does)")


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                           "zcache_forge", "tests", "tasks.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
