"""The two-guest run (guest/pair.py) end to end with a stand-in for QEMU (tests/fakeqemu.py): B first,
listening on a free port, A only once B is ready, B killed on time, B stopped (SIGSTOP) and continued on
time, B stopped when it does not exit, both consoles kept and judged together. What stops and continues B
is also tried on a plain `sleep`, whose state /proc shows. No kernel, no QEMU."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zcache_forge.guest import judge, pair, qemu, schedule
from zcache_forge.guest.peer import PeerSpec
from zcache_forge.guest.scenarios import Scenario, Workload

FAKE = Path(__file__).with_name("fakeqemu.py")


@pytest.fixture(autouse=True)
def fake_qemu(monkeypatch):
    FAKE.chmod(0o755)
    monkeypatch.setattr(qemu, "_qemu_binary", lambda: str(FAKE))
    monkeypatch.setattr(qemu, "POLL_S", 0.05)
    monkeypatch.setattr(pair, "POLL_S", 0.05)


def two_guests(kill_after_s: int | None = None, hang_after_s: int | None = None,
               hang_for_s: int | None = None) -> Scenario:
    return Scenario(name="t", backend="zcache", memory_mib=64, cpus=1, swap_mib=16, cmdline_extra="",
                    workloads=(Workload(1, "text", 1, 1),), timeout_s=20, silence_timeout_s=10,
                    peer=PeerSpec(memory_mib=256, pool_percent=60, kill_after_s=kill_after_s,
                                  hang_after_s=hang_after_s, hang_for_s=hang_for_s))


def boot(tmp_path: Path, sc: Scenario) -> qemu.GuestRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    return qemu.run_guest(kernel, initrd, sc, tmp_path / "run", accel="tcg")


def test_the_peer_boots_first_and_both_consoles_are_judged_together(tmp_path):
    sc = two_guests()
    run = boot(tmp_path, sc)
    assert run.exit_kind == "exit" and run.guest_status == 0
    peer = run.peer
    assert peer is not None and peer.run is not None and not peer.error and not peer.stopped
    assert peer.run.console_log == tmp_path / "run" / "peer" / "console.log"
    assert peer.run.exit_kind == "exit" and peer.run.guest_status == 0  # B exited by itself after "done"
    assert peer.ready_s is not None and peer.killed_at_s is None
    # B listened on the port A connected to, each with its own MAC
    assert f"socket,id=net0,listen=127.0.0.1:{peer.port}" in peer.run.argv
    assert f"socket,id=net0,connect=127.0.0.1:{peer.port}" in run.argv
    res = judge.judge_run(sc, run)
    assert res.passed, res.reasons
    assert res.counters["pressure"]["peer.zcache.peer_puts"] == 1000
    assert res.counters["after-swapoff"]["peer.zcache.peer_pages"] == 0
    assert res.summary["remote_get_mean_us"] == 800.0 and res.summary["peer_pages_max"] == 1000
    assert res.peer["story"].startswith(f"peer B on 127.0.0.1:{peer.port}")


def test_the_peer_is_killed_kill_after_s_after_a_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_A", "slow")
    sc = two_guests(kill_after_s=1)
    run = boot(tmp_path, sc)
    peer = run.peer
    assert peer.loaded_at_s is not None and peer.killed_at_s is not None
    assert 0.9 <= peer.killed_at_s - peer.loaded_at_s < 2.5
    assert run.exit_kind == "exit"  # A went on without its peer
    res = judge.judge_run(sc, run)
    assert res.peer["killed_at_s"] == peer.killed_at_s
    assert res.peer["story"].startswith(f"peer killed at {peer.killed_at_s:.0f} s")
    # B answered A's "before" only: its later phases are not asked of a killed peer
    assert not any(r.startswith("peer B") for r in res.reasons), res.reasons


def test_a_peer_that_never_gets_killed_fails_a_kill_scenario(tmp_path):
    sc = two_guests(kill_after_s=15)  # A is done long before
    res = judge.judge_run(sc, boot(tmp_path, sc))
    assert not res.passed
    assert any("peer B was to be killed 15 s after A was loaded, but A finished first" in r
               for r in res.reasons)


def test_a_peer_that_never_gets_ready_is_named_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_B", "silent")
    monkeypatch.setattr(pair, "PEER_READY_TIMEOUT_S", 1)
    sc = two_guests()
    run = boot(tmp_path, sc)
    log = tmp_path / "run" / "peer" / "console.log"
    assert run.exit_kind == "peer-error"
    assert run.ended_by == f"peer B printed no peer-ready record within 1 s (log: {log})"
    res = judge.judge_run(sc, run)
    assert res.reasons[0] == run.ended_by
    assert not (tmp_path / "run" / "console.log").exists()  # A never started


def test_a_peer_whose_qemu_dies_is_named_with_what_it_said(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_B", "dies")
    run = boot(tmp_path, two_guests())
    assert run.exit_kind == "peer-error"
    assert "peer B's QEMU ended (qemu-error) before its peer-ready record: qemu-system-x86_64: the fake " \
           "peer dies at once" in run.ended_by


def test_a_peer_that_does_not_exit_after_a_is_stopped_and_that_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_B", "stays")
    monkeypatch.setattr(pair, "PEER_EXIT_GRACE_S", 1)
    sc = two_guests()
    run = boot(tmp_path, sc)
    assert run.peer.stopped == "peer B did not exit within 1 s after A finished: killed"
    res = judge.judge_run(sc, run)
    assert not res.passed
    assert any(r.startswith("peer B did not exit within 1 s after A finished: killed") for r in res.reasons)


def test_two_pairs_side_by_side_each_get_their_own_port(tmp_path):
    """The batch runs two-guest scenarios side by side (--jobs): each pair on a port of its own."""
    scs = [two_guests(), dataclasses.replace(two_guests(), name="u")]
    runs = schedule.run_all(scs, lambda i, sc: boot(tmp_path / sc.name, sc), jobs=4,
                            width=lambda sc: sc.host_cpus)
    assert runs[0].peer.port != runs[1].peer.port
    assert all(judge.judge_run(sc, r).passed for sc, r in zip(scs, runs, strict=True))


# ---------------------------------------------------------------- a peer that hangs

def state(pid: int) -> str:
    """The process's state letter in /proc (T: stopped by a signal, S: sleeping)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def wait_for(what: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def sleeper(tmp_path) -> Iterator[Callable[[str], pair._Guest]]:
    """A pair._Guest around a plain `sleep 60` instead of QEMU: pause, resume and kill signal a real
    process. Every one is continued and killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def make(name: str) -> pair._Guest:
        g = pair._Guest(qemu._Boot(name=name, kernel=tmp_path / "k", initrd=tmp_path / "i", memory_mib=64,
                                   cpus=1, append=[], swap_imgs=(), workdir=tmp_path / name, accel="tcg",
                                   timeout_s=60))
        g.boot.workdir.mkdir()
        procs.append(subprocess.Popen(["sleep", "60"]))
        g._on_start(procs[-1])
        return g

    yield make
    for proc in procs:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


def loaded(a: pair._Guest) -> None:
    """A's console shows it is loaded: its "before" counters record."""
    (a.boot.workdir / "console.log").write_text(
        'ZCF-RESULT {"kind":"counters","phase":"before","uptime_s":1.0,"values":{}}\n')


def disrupt(sc: Scenario, a: pair._Guest, b: pair._Guest) -> tuple[qemu.PeerRun, threading.Event,
                                                                   threading.Thread]:
    peer = pair._peer_run(0, sc)
    a_done = threading.Event()
    t = threading.Thread(target=pair._disrupt, args=(sc, a, b, peer, a_done), daemon=True)
    t.start()
    return peer, a_done, t


def test_the_peer_is_stopped_hang_after_s_after_a_is_loaded_and_continued_hang_for_s_later(sleeper):
    a, b = sleeper("a"), sleeper("b")
    loaded(a)
    peer, _, t = disrupt(two_guests(hang_after_s=1, hang_for_s=1), a, b)
    assert wait_for(lambda: peer.hung_at_s is not None)
    assert wait_for(lambda: state(b.proc.pid) == "T", 1.0)  # SIGSTOP: B stands still
    assert state(a.proc.pid) != "T"  # A never is
    t.join(5)
    assert not t.is_alive() and wait_for(lambda: state(b.proc.pid) == "S", 1.0)  # SIGCONT: B goes on
    assert b.proc.poll() is None and not b.paused  # continued, not killed
    assert peer.loaded_at_s is not None and peer.resumed_at_s is not None and peer.killed_at_s is None
    assert 0.9 <= peer.hung_at_s - peer.loaded_at_s < 2.0
    assert 0.9 <= peer.resumed_at_s - peer.hung_at_s < 2.0


def test_a_peer_stopped_when_a_finishes_is_continued_at_once(sleeper):
    a, b = sleeper("a"), sleeper("b")
    loaded(a)
    peer, a_done, t = disrupt(two_guests(hang_after_s=1, hang_for_s=30), a, b)
    assert wait_for(lambda: peer.hung_at_s is not None) and wait_for(lambda: state(b.proc.pid) == "T", 1.0)
    a_done.set()  # A is done long before the 30 s are over
    t.join(2)
    assert not t.is_alive() and wait_for(lambda: state(b.proc.pid) == "S", 1.0)
    assert peer.resumed_at_s is not None and peer.resumed_at_s - peer.hung_at_s < 2.0


def test_a_peer_is_never_stopped_when_a_finishes_first(sleeper):
    a, b = sleeper("a"), sleeper("b")
    loaded(a)
    peer, a_done, t = disrupt(two_guests(hang_after_s=30, hang_for_s=5), a, b)
    assert wait_for(lambda: peer.loaded_at_s is not None)
    a_done.set()
    t.join(2)
    assert not t.is_alive() and peer.hung_at_s is None and state(b.proc.pid) == "S"


def test_a_stopped_peer_is_continued_before_it_is_killed_and_a_killed_one_is_never_stopped(sleeper):
    b = sleeper("b")
    assert b.pause() and wait_for(lambda: state(b.proc.pid) == "T", 1.0)
    assert b.kill() and not b.paused
    assert b.proc.wait(5) == -signal.SIGKILL
    assert not b.pause() and not b.kill()  # dead: nothing to stop or kill


def test_a_peer_that_hangs_answers_every_phase_after_and_exits_by_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_A", "slow")
    sc = two_guests(hang_after_s=1, hang_for_s=1)
    run = boot(tmp_path, sc)
    peer = run.peer
    assert peer.loaded_at_s is not None and peer.hung_at_s is not None and peer.resumed_at_s is not None
    assert 0.9 <= peer.hung_at_s - peer.loaded_at_s < 2.5 and 0.9 <= peer.resumed_at_s - peer.hung_at_s < 2.5
    assert run.exit_kind == "exit" and peer.killed_at_s is None and not peer.stopped
    assert peer.run.exit_kind == "exit" and peer.run.guest_status == 0  # B went on and exited by itself
    b_console = peer.run.console_log.read_text()
    assert all(f'"phase":"{p}"' in b_console for p in ("before", "pressure", "after-swapoff"))
    res = judge.judge_run(sc, run)
    assert res.passed, res.reasons  # the live peer's rules, and A noticed the hang (remote_conn_lost 1)
    assert res.peer["hung_at_s"] == peer.hung_at_s and res.summary["peer_hung_at_s"] == peer.hung_at_s
    assert res.peer["story"].startswith(f"peer hung at {peer.hung_at_s:.0f} s")


def test_a_peer_stopped_when_a_finishes_still_gets_done_and_exits_by_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_A", "slow")
    sc = two_guests(hang_after_s=1, hang_for_s=15)  # A is done (3 s of load) long before
    run = boot(tmp_path, sc)
    peer = run.peer
    assert peer.hung_at_s is not None and peer.resumed_at_s - peer.hung_at_s < 10
    # continued as soon as A finished: it read A's last phases and "done" then, and exited by itself
    assert peer.run.exit_kind == "exit" and peer.run.guest_status == 0 and not peer.stopped
    assert judge.judge_run(sc, run).passed


def test_a_peer_that_never_gets_stopped_fails_a_hang_scenario(tmp_path):
    sc = two_guests(hang_after_s=15, hang_for_s=2)  # A is done long before
    run = boot(tmp_path, sc)
    assert run.peer.hung_at_s is None and run.peer.run.exit_kind == "exit"
    res = judge.judge_run(sc, run)
    assert not res.passed
    assert "peer B was to be stopped 15 s after A was loaded, but A finished first: the run says nothing " \
           "about a hung peer" in res.reasons
