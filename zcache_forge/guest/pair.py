"""A two-guest run (RAMster): the peer B, then the guest under test A, joined by a QEMU socket netdev.

B boots first, its QEMU listening on a free 127.0.0.1 port (a new one per run, so runs side by side
never meet), its console in workdir/peer/console.log; A's QEMU is started, connecting to that port,
only once B's console shows its peer-ready record. A runs under the usual watchdog (console silence,
wall-clock backstop). B has no silence limit of its own (it waits quietly for A), only a wall-clock
backstop; once A has finished, B gets PEER_EXIT_GRACE_S to print its last counters and exit, and is
killed after that. A scenario whose peer has kill_after_s has B's QEMU killed (SIGKILL) that long after
A's console shows it is loaded (its "before" counters record: the workloads start right after it); one
with hang_after_s has it stopped (SIGSTOP) that long after and continued (SIGCONT) hang_for_s later, or
as soon as A finishes. B is always continued before it is killed or waited for: no QEMU is left stopped.

What happened to B is in the returned GuestRun's peer (qemu.PeerRun); the verdict reads both consoles.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from zcache_forge.guest import peer as peer_mod
from zcache_forge.guest import qemu
from zcache_forge.guest.scenarios import Scenario

log = logging.getLogger(__name__)

PEER_READY_TIMEOUT_S = 120  # B's boot to its peer-ready record (TCG on a busy host: seconds, usually)
PEER_EXIT_GRACE_S = 30      # after A finished: B prints its last counters record and exits
PORT_TRIES = 3              # a port taken between choosing it and QEMU's listen: try another
POLL_S = 0.25
ADDRESS_IN_USE = "Address already in use"


def free_port() -> int:
    """A TCP port of 127.0.0.1 free now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((peer_mod.HOST, 0))
        return int(s.getsockname()[1])


class Tail:
    """Finds a pattern in a growing file, reading only what was added since the last look (a match
    across two reads is found: the end of the last read is kept)."""

    CARRY = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.carry = ""

    def find(self, pattern: re.Pattern[str]) -> bool:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return False
        self.offset += len(data)
        text = self.carry + data.decode(errors="replace")
        if pattern.search(text):
            return True
        self.carry = text[-self.CARRY:]
        return False


class _Guest(threading.Thread):
    """One QEMU run (qemu._boot) in a thread: its process once started, its GuestRun once done."""

    def __init__(self, boot: qemu._Boot) -> None:
        super().__init__(name=f"qemu-{boot.name}", daemon=True)
        self.boot = boot
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        self.result: qemu.GuestRun | None = None
        self.error: BaseException | None = None
        self.has_started = threading.Event()
        self._signals = threading.Lock()  # stop, continue and kill one at a time
        self.paused = False  # SIGSTOPped by the host (a hung peer) and not continued yet
        self.killed = False  # SIGKILLed by the host: never stopped after that

    def _on_start(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.started_at = proc, time.monotonic()
        self.has_started.set()

    def run(self) -> None:
        try:
            self.result = qemu._boot(self.boot, started=self._on_start)
        except BaseException as exc:  # handed to the caller by finish()
            self.error = exc
        finally:
            self.has_started.set()

    def _running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and not self.killed

    def pause(self) -> bool:
        """SIGSTOP the QEMU process (the whole guest stands still); False when it does not run."""
        with self._signals:
            if not self._running():
                return False
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True
            return True

    def resume(self) -> None:
        """SIGCONT the QEMU process if the host stopped it (any time, any number of times)."""
        with self._signals:
            self._resume()

    def _resume(self) -> None:
        if self.paused and self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # Popen sends nothing once it reaped the process
        self.paused = False

    def kill(self) -> bool:
        """SIGKILL the QEMU process, continued first if the host had stopped it; False when it did not
        run."""
        with self._signals:
            self._resume()
            if not self._running():
                return False
            assert self.proc is not None
            self.proc.kill()
            self.killed = True
            return True

    def finish(self) -> qemu.GuestRun | None:
        self.resume()  # never wait for a stopped QEMU
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def peer_boot(a: qemu._Boot, scenario: Scenario, port: int) -> qemu._Boot:
    """B's QEMU: the same kernel and initramfs, its own RAM and CPUs, no disk, listening on port."""
    spec = scenario.peer
    assert spec is not None
    return qemu._Boot(
        name=f"{scenario.name}-peer", kernel=a.kernel, initrd=a.initrd, memory_mib=spec.memory_mib,
        cpus=spec.cpus, append=[*qemu.BASE_APPEND, *scenario.peer_kernel_args()], swap_imgs=(),
        workdir=a.workdir / "peer", accel=a.accel,
        timeout_s=a.timeout_s + PEER_READY_TIMEOUT_S + PEER_EXIT_GRACE_S, silence_timeout_s=None,
        net=tuple(peer_mod.netdev_args("peer", port)))


def sender_boot(a: qemu._Boot, port: int) -> qemu._Boot:
    """A's QEMU, connecting to B's port."""
    return dataclasses.replace(a, net=tuple(peer_mod.netdev_args("sender", port)))


def _wait_ready(b: _Guest, console: Path, timeout_s: float) -> str:
    """"" once B's console shows its peer-ready record; else why not (its QEMU ended, or the time ran out)."""
    tail = Tail(console)
    deadline = time.monotonic() + timeout_s
    b.has_started.wait()
    while True:
        if tail.find(peer_mod.READY_RE):
            return ""
        if not b.is_alive():
            run = b.result
            said = (run.qemu_stderr.strip().splitlines()[-1:] if run else []) or ["(nothing on stderr)"]
            return (f"peer B's QEMU ended ({run.exit_kind if run else 'not started'}) before its peer-ready "
                    f"record: {said[0]} (log: {console})")
        if time.monotonic() >= deadline:
            return f"peer B printed no peer-ready record within {timeout_s:.0f} s (log: {console})"
        time.sleep(POLL_S)


def _peer_run(port: int, scenario: Scenario) -> qemu.PeerRun:
    """B's record, with what the scenario has the host do to it."""
    spec = scenario.peer or peer_mod.PeerSpec()
    return qemu.PeerRun(port=port, kill_after_s=spec.kill_after_s, hang_after_s=spec.hang_after_s,
                        hang_for_s=spec.hang_for_s)


def _start_peer(a: qemu._Boot, scenario: Scenario) -> tuple[_Guest, qemu.PeerRun]:
    """Boot B on a free port and wait for its ready record; another port when QEMU found it taken."""
    for attempt in range(1, PORT_TRIES + 1):
        port = free_port()
        b = _Guest(peer_boot(a, scenario, port))
        b.start()
        peer = _peer_run(port, scenario)
        log.info("%s: peer B booting (%d MiB, %d CPU), its QEMU listening on %s:%d", scenario.name,
                 b.boot.memory_mib, b.boot.cpus, peer_mod.HOST, port)
        why = _wait_ready(b, b.boot.workdir / "console.log", PEER_READY_TIMEOUT_S)
        if not why:
            assert b.started_at is not None
            peer.ready_s = round(time.monotonic() - b.started_at, 1)
            log.info("%s: peer B ready after %.1f s", scenario.name, peer.ready_s)
            return b, peer
        b.kill()
        peer.run = b.finish()
        if ADDRESS_IN_USE in (peer.run.qemu_stderr if peer.run else "") and attempt < PORT_TRIES:
            log.info("%s: port %d was taken before QEMU listened on it; another", scenario.name, port)
            continue
        peer.error = why
        return b, peer
    raise AssertionError("unreachable")


def _a_seconds(a: _Guest) -> float:
    """Seconds of A's run now."""
    assert a.started_at is not None
    return round(time.monotonic() - a.started_at, 1)


def _wait_loaded(a: _Guest, peer: qemu.PeerRun, a_done: threading.Event) -> bool:
    """Wait for A's console to show A is loaded and note when; False when A finished first."""
    a.has_started.wait()
    tail = Tail(a.boot.workdir / "console.log")
    while not tail.find(peer_mod.LOADED_RE):
        if a_done.wait(POLL_S):
            return False
    peer.loaded_at_s = _a_seconds(a)
    return True


def _disrupt(scenario: Scenario, a: _Guest, b: _Guest, peer: qemu.PeerRun, a_done: threading.Event) -> None:
    """Once A is loaded, kill B's QEMU kill_after_s later, or stop it hang_after_s later and continue it
    hang_for_s after that (unless A is done by then)."""
    kill = peer.kill_after_s is not None
    key, after = ("kill_after_s", peer.kill_after_s) if kill else ("hang_after_s", peer.hang_after_s)
    what = "kill" if kill else "stop"
    assert after is not None
    if not _wait_loaded(a, peer, a_done):
        return
    log.info("%s: A is loaded at %.0f s; %s peer B in %d s", scenario.name, peer.loaded_at_s,
             "killing" if kill else "stopping", after)
    if a_done.wait(after):
        log.warning("%s: A finished before the peer's %s (%s %d)", scenario.name, what, key, after)
        return
    if not (b.kill() if kill else b.pause()):
        log.warning("%s: peer B had ended before its %s", scenario.name, what)
        return
    if kill:
        peer.killed_at_s = _a_seconds(a)
        log.info("%s: peer B's QEMU killed (SIGKILL) at %.0f s", scenario.name, peer.killed_at_s)
    else:
        _hang(scenario, a, b, peer, a_done)


def _hang(scenario: Scenario, a: _Guest, b: _Guest, peer: qemu.PeerRun, a_done: threading.Event) -> None:
    """B's QEMU was just stopped: continue it hang_for_s later, or as soon as A is done."""
    assert peer.hang_for_s is not None
    peer.hung_at_s = _a_seconds(a)
    log.info("%s: peer B's QEMU stopped (SIGSTOP) at %.0f s, for %d s", scenario.name, peer.hung_at_s,
             peer.hang_for_s)
    if a_done.wait(peer.hang_for_s):
        log.warning("%s: A finished while peer B was stopped (hang_for_s %d): continuing it now",
                    scenario.name, peer.hang_for_s)
    b.resume()
    peer.resumed_at_s = _a_seconds(a)
    log.info("%s: peer B's QEMU continued (SIGCONT) at %.0f s", scenario.name, peer.resumed_at_s)


def _stop_peer(scenario: Scenario, b: _Guest, a_run: qemu.GuestRun, peer: qemu.PeerRun) -> None:
    """After A: B should exit by itself (A told it "done"); kill it when it does not."""
    if peer.killed_at_s is not None:
        return
    if a_run.exit_kind == "exit":
        b.join(PEER_EXIT_GRACE_S)
        if b.is_alive():
            peer.stopped = f"peer B did not exit within {PEER_EXIT_GRACE_S} s after A finished: killed"
    elif b.is_alive():
        peer.stopped = f"A ended ({a_run.exit_kind}): peer B killed"
    if b.is_alive():
        log.warning("%s: %s", scenario.name, peer.stopped)
        b.kill()


def run_pair(a_boot: qemu._Boot, scenario: Scenario) -> qemu.GuestRun:
    """Run the two-guest scenario: B, then A; A's GuestRun with B's story in its peer."""
    b, peer = _start_peer(a_boot, scenario)
    if peer.error:
        log.error("%s: %s", scenario.name, peer.error)
        console = a_boot.workdir / "console.log"
        console.unlink(missing_ok=True)
        return qemu.GuestRun(name=scenario.name, console_log=console, exit_kind="peer-error",
                             guest_status=None, qemu_exit_code=None, seconds=0.0, accel=a_boot.accel,
                             ended_by=peer.error, peer=peer)
    a = _Guest(sender_boot(a_boot, peer.port))
    a_done = threading.Event()
    disruptor = None
    if peer.kill_after_s is not None or peer.hang_after_s is not None:
        disruptor = threading.Thread(target=_disrupt, args=(scenario, a, b, peer, a_done), daemon=True,
                                     name=f"disrupt-{scenario.name}-peer")
        disruptor.start()
    try:
        a.start()
        a_run = a.finish()
        assert a_run is not None
    except BaseException:
        a_done.set()
        a.kill()
        b.kill()  # continued first, if stopped
        raise
    finally:
        a_done.set()
        if disruptor is not None:
            disruptor.join()  # B continued, if it was stopped
    _stop_peer(scenario, b, a_run, peer)
    peer.run = b.finish()
    a_run.peer = peer
    hung = (f" (stopped at {peer.hung_at_s:.0f} s of A, continued at {peer.resumed_at_s:.0f} s)"
            if peer.hung_at_s is not None and peer.resumed_at_s is not None else "")
    log.info("%s: peer B %s%s after %.0f s", scenario.name,
             f"killed at {peer.killed_at_s:.0f} s of A" if peer.killed_at_s is not None
             else peer.stopped or f"exited ({peer.run.exit_kind if peer.run else '?'})", hung,
             peer.run.seconds if peer.run else 0.0)
    return a_run
