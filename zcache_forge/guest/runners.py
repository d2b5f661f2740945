"""Runners behind one interface: how a scenario's guest gets booted.

Every runner takes (kernel, initrd, scenario, workdir, accel) and returns the qemu.GuestRun the
verdict code judges, with the console in workdir/console.log:

- local     QEMU started here (guest/qemu.py)
- lava-run  the scenario as a LAVA job, run by this machine's lava-dispatcher (lava/run.py)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zcache_forge.guest import qemu
from zcache_forge.guest.scenarios import Scenario

RunGuest = Callable[[Path, Path, Scenario, Path, str], qemu.GuestRun]
RUNNERS = ("local", "lava-run")
DEFAULT = "local"


def _local(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str) -> qemu.GuestRun:
    return qemu.run_guest(kernel, initrd, scenario, workdir, accel=accel)


def _lava_run(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str) -> qemu.GuestRun:
    from zcache_forge.lava import run

    return run.run_lava(kernel, initrd, scenario, workdir, accel=accel)


def get(name: str) -> RunGuest:
    runners: dict[str, RunGuest] = {"local": _local, "lava-run": _lava_run}
    if name not in runners:
        raise ValueError(f"runner {name!r}: expected one of {', '.join(RUNNERS)}")
    return runners[name]
