"""Compiles spread over distcc, with ccache in front: ccache answers what it has compiled before
and hands each miss to `distcc gcc` (CCACHE_PREFIX), which sends the preprocessed file to a
distccd of DISTCC_HOSTS. The host list is distcc's own syntax (``host[:port][/limit]``, separated
by spaces or commas), kept as given so that a user's DISTCC_HOSTS habits carry over.

`--distcc HOSTS` on build-patches and qemu-test sets ZCF_DISTCC_HOSTS for the task; every kernel
build of the task reads it (kernel/build.py). distcc falls back to compiling here when no host
answers, as it always does; the build log names the hosts.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from zcache_forge.errors import ForgeError

ENV = "ZCF_DISTCC_HOSTS"
DEFAULT_PORT = 3632
DEFAULT_LIMIT = 2  # distcc's own default of jobs per remote host
_HOST = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?(?:/(?P<limit>\d+))?$")


@dataclass(frozen=True)
class Host:
    host: str
    port: int = DEFAULT_PORT
    limit: int = DEFAULT_LIMIT


def parse_hosts(spec: str) -> list[Host]:
    """distcc's host list (the TCP forms) -> hosts; a malformed entry is a ValueError naming it."""
    hosts = []
    for item in spec.replace(",", " ").split():
        m = _HOST.match(item)
        if not m:
            raise ValueError(f"{item!r} is not host[:port][/limit]")
        port = int(m.group("port") or DEFAULT_PORT)
        limit = int(m.group("limit") or DEFAULT_LIMIT)
        if not 1 <= port <= 65535 or limit < 1:
            raise ValueError(f"{item!r}: port 1..65535 and limit >= 1")
        hosts.append(Host(m.group("host"), port, limit))
    if not hosts:
        raise ValueError("no host given")
    return hosts


def hosts_from_env() -> str | None:
    return os.environ.get(ENV, "").strip() or None


def make_env(spec: str) -> dict[str, str]:
    """The environment that sends ccache's misses to distcc on these hosts."""
    if shutil.which("distcc") is None:
        raise ForgeError("distcc not found: apt-get install distcc")
    return {"CCACHE_PREFIX": "distcc", "DISTCC_HOSTS": spec}


def jobs(spec: str, local: int) -> int:
    """make -j: every host's slots, and never fewer than the local cores."""
    return max(local, sum(h.limit for h in parse_hosts(spec)))
