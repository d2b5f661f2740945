"""The suite never uses the user's cache: every test runs on the session's own cache (issue 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zcache_forge import cachelock, kernel
from zcache_forge.errors import ForgeError
from zcache_forge.kernel import build

from .conftest import TEST_CACHE_ENV, TEST_TARBALL_ENV, USER_CACHES, needs_tarball_reason


def test_the_session_cache_is_this_runs_and_not_the_users(session_cache, tmp_path_factory):
    env = Path(os.environ["ZCACHE_FORGE_CACHE"])
    assert env == session_cache and kernel.cache_dir() == session_cache
    parent = Path(os.environ[TEST_CACHE_ENV]).expanduser() if os.environ.get(TEST_CACHE_ENV) \
        else tmp_path_factory.getbasetemp()
    assert parent.resolve() in session_cache.resolve().parents
    for user in USER_CACHES:
        assert user != session_cache.resolve() and user not in session_cache.resolve().parents
    # kernel builds use it too, with a ccache outside it that later runs reuse
    ccache = Path(build.make_env()["CCACHE_DIR"])
    assert ccache.is_absolute() and session_cache.resolve() not in ccache.resolve().parents


def test_the_session_holds_its_cache_lock(session_cache):
    assert f"pid {os.getpid()}, pytest session" in (session_cache / "lock").read_text()
    probe = ("import sys\nfrom pathlib import Path\nfrom zcache_forge import cachelock\n"
             "with cachelock.held(Path(sys.argv[1]), 'probe', timeout_s=0):\n    pass\n")
    proc = subprocess.run([sys.executable, "-c", probe, str(session_cache)], capture_output=True, text=True)
    assert proc.returncode != 0 and "another zcache-forge run holds the cache" in proc.stderr
    with cachelock.held(session_cache, "a task of a kernel test", timeout_s=0):  # re-entrant here
        pass


def test_a_private_cache_is_not_the_session_cache(cache, session_cache):
    assert Path(os.environ["ZCACHE_FORGE_CACHE"]) == cache != session_cache
    assert kernel.cache_dir() == cache


def test_holding_one_cache_does_not_hold_another(tmp_path, session_cache):
    """The session holds its cache for the whole run: another cache must still be really locked."""
    other = tmp_path / "other"
    other.mkdir()
    holder = ("import sys, time\nfrom pathlib import Path\nfrom zcache_forge import cachelock\n"
              "with cachelock.held(Path(sys.argv[1]), 'qemu-test'):\n"
              "    print('held', flush=True)\n    time.sleep(30)\n")
    p = subprocess.Popen([sys.executable, "-c", holder, str(other)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(ForgeError, match=rf"pid {p.pid}, qemu-test"):
            with cachelock.held(other, "bench", timeout_s=0):
                pass
    finally:
        p.kill()
        p.wait()


def test_without_the_tarball_the_reason_names_the_package(tmp_path, monkeypatch):
    missing = tmp_path / "linux-source-6.1.tar.xz"
    monkeypatch.setenv(TEST_TARBALL_ENV, str(missing))
    assert needs_tarball_reason() == ("needs /usr/src/linux-source-6.1.tar.xz: apt-get install "
                                      f"linux-source-6.1 (looked at {missing})")
