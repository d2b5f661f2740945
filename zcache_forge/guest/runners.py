"""Runners behind one interface: how a scenario's guest gets booted.

Every runner takes (kernel, initrd, scenario, workdir, accel, disk=...) and returns the
qemu.GuestRun the verdict code judges, with the console in workdir/console.log:

- local     QEMU started here (guest/qemu.py)
- lava-run  the scenario as a LAVA job, run by this machine's lava-dispatcher (lava/run.py)
- lava      the scenario as a LAVA job submitted to a LAVA server, polled, its log pulled back
            (lava/server.py; needs the lab's URL, a token and where to serve the images). The bench
            does not go through this one: it submits its whole matrix as a batch (server.run_batch)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from zcache_forge.errors import ForgeError
from zcache_forge.guest import qemu
from zcache_forge.guest.scenarios import Scenario

if TYPE_CHECKING:
    from zcache_forge.lava.server import LabConfig



class RunGuest(Protocol):
    def __call__(self, kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str,
                 disk: str = qemu.DEFAULT_DISK) -> qemu.GuestRun: ...


RUNNERS = ("local", "lava-run", "lava")
DEFAULT = "local"


def _local(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str,
           disk: str = qemu.DEFAULT_DISK) -> qemu.GuestRun:
    return qemu.run_guest(kernel, initrd, scenario, workdir, accel=accel, disk=disk)


def _lava_run(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str,
              disk: str = qemu.DEFAULT_DISK) -> qemu.GuestRun:
    from zcache_forge.lava import run

    _one_guest(scenario, "lava-run")
    return run.run_lava(kernel, initrd, scenario, workdir, accel=accel, disk=disk)


def check_scenarios(runner: str, chosen: list[Scenario]) -> None:
    """Only the local runner boots a two-guest scenario (a peer): a LAVA job is one guest, and a
    multi-node LAVA job (two devices, their network) is not built. Refused before anything runs."""
    two = [sc.name for sc in chosen if sc.peer is not None]
    if runner != "local" and two:
        what = "is a two-guest scenario" if len(two) == 1 else "are two-guest scenarios"
        raise ForgeError(f"--runner {runner}: {', '.join(two)} {what} (peer:), which only --runner local "
                         "runs: multi-node LAVA jobs are not built")


def _one_guest(scenario: Scenario, runner: str) -> None:
    if scenario.peer is not None:
        check_scenarios(runner, [scenario])


def get(name: str, lab: LabConfig | None = None) -> RunGuest:
    runners: dict[str, RunGuest] = {"local": _local, "lava-run": _lava_run}
    if name == "lava":
        if lab is None:
            raise ValueError("runner 'lava' needs the lab: its URL, a token and the served image directory")
        from zcache_forge.lava import server

        def _lava(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str,
                  disk: str = qemu.DEFAULT_DISK) -> qemu.GuestRun:
            _one_guest(scenario, "lava")
            return server.run_on_server(kernel, initrd, scenario, workdir, accel, lab, disk)

        return _lava
    if name not in runners:
        raise ValueError(f"runner {name!r}: expected one of {', '.join(RUNNERS)}")
    return runners[name]
