"""Two zcache-forge runs on one cache: the second waits or, with a timeout, says who holds it."""
import subprocess
import sys
import time

import pytest

from zcache_forge import cachelock, cli
from zcache_forge.errors import ForgeError

HOLDER = """
import sys, time
from pathlib import Path
from zcache_forge import cachelock
with cachelock.held(Path(sys.argv[1]), "qemu-test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(cache, seconds):
    cache.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(cache), str(seconds)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    p = hold(tmp_path, 30)
    try:
        holder = rf"lock: another zcache-forge run holds the cache \(pid {p.pid}, qemu-test, since"
        with pytest.raises(ForgeError, match=holder):
            with cachelock.held(tmp_path, "bench", timeout_s=0):
                pass
    finally:
        p.kill()
        p.wait()


def test_a_second_run_waits_for_the_first(tmp_path):
    p = hold(tmp_path, 1.5)
    t0 = time.monotonic()
    with cachelock.held(tmp_path, "bench", timeout_s=30):
        waited = time.monotonic() - t0
        assert "bench" in (tmp_path / "lock").read_text()
    p.wait()
    assert waited >= 0.5
    assert (tmp_path / "lock").read_text() == ""  # released


def test_reentrant_within_one_process(tmp_path):
    with cachelock.held(tmp_path, "bench", timeout_s=0):
        with cachelock.held(tmp_path, "qemu-test", timeout_s=0):
            pass
        assert "bench" in (tmp_path / "lock").read_text()


def test_the_cli_exits_1_with_one_error_line(project, cache, monkeypatch, capsys):
    p = hold(cache, 30)
    monkeypatch.setenv("ZCACHE_FORGE_LOCK_TIMEOUT", "0")
    try:
        rc = cli.build_patches(project / "series.yaml", project / "patches", None, False, False)
    finally:
        p.kill()
        p.wait()
    assert rc == 1
    err = capsys.readouterr().err
    assert f"pid {p.pid}, qemu-test" in err and "ZCACHE_FORGE_CACHE" in err
    assert not (project / "patches").exists()


def test_a_bad_timeout_is_named(project, cache, monkeypatch, capsys):
    monkeypatch.setenv("ZCACHE_FORGE_LOCK_TIMEOUT", "soon")
    rc = cli.build_patches(project / "series.yaml", project / "patches", None, False, False)
    assert rc == 1
    assert "ZCACHE_FORGE_LOCK_TIMEOUT='soon' is not a number" in capsys.readouterr().err
