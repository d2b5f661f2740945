"""One zcache-forge run at a time per cache directory.

The cache holds one kernel worktree (src/), build directories and run
directories that every task checks out, builds in and boots from; two runs at
once would check out different trees under each other's builds. Each task
takes an exclusive flock on <cache>/lock for its whole run; a second run
waits, saying who holds the lock. Re-entrant within one process, per cache
directory: holding one cache (the test session holds its own) does not make
another cache look held.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zcache_forge.errors import ForgeError

log = logging.getLogger(__name__)
_depth: dict[Path, int] = {}  # cache directory -> how many nested holders in this process


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def held(cache: Path, task: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold <cache>/lock; wait for another run to finish (forever, or up to timeout_s)."""
    key = cache.resolve()
    if _depth.get(key):
        _depth[key] += 1
        try:
            yield
        finally:
            _depth[key] -= 1
        return
    path = cache / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {task}, since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        _depth[key] = 1
        try:
            yield
        finally:
            del _depth[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout_s: float | None) -> None:
    start = time.monotonic()
    who = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            if who is not None:
                log.info("got %s after %.0f s", path, time.monotonic() - start)
            return
        if who is None:
            who = _holder(path)
            if timeout_s is None or timeout_s > 0:
                log.info("waiting for another zcache-forge run (%s) that holds %s", who, path)
        if timeout_s is not None and time.monotonic() - start >= timeout_s:
            raise ForgeError(f"{path}: another zcache-forge run holds the cache ({who}); wait for it "
                             "or set ZCACHE_FORGE_CACHE to another directory")
        time.sleep(0.5)


def timeout_from_env() -> float | None:
    """ZCACHE_FORGE_LOCK_TIMEOUT (seconds) bounds the wait; unset waits as long as it takes."""
    raw = os.environ.get("ZCACHE_FORGE_LOCK_TIMEOUT")
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ForgeError(f"ZCACHE_FORGE_LOCK_TIMEOUT={raw!r} is not a number of seconds") from None
