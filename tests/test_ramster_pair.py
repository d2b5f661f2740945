"""The two-guest run (guest/pair.py) end to end with a stand-in for QEMU (tests/fakeqemu.py): B first,
listening on a free port, A only once B is ready, B killed on time, B stopped when it does not exit,
both consoles kept and judged together. No kernel, no QEMU."""

from __future__ import annotations

import dataclasses
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


def two_guests(kill_after_s: int | None = None) -> Scenario:
    return Scenario(name="t", backend="zcache", memory_mib=64, cpus=1, swap_mib=16, cmdline_extra="",
                    workloads=(Workload(1, "text", 1, 1),), timeout_s=20, silence_timeout_s=10,
                    peer=PeerSpec(memory_mib=256, pool_percent=60, kill_after_s=kill_after_s))


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
