"""RAMster's harness without a kernel: the peer: section of a scenario, both guests' QEMU command lines
and kernel parameters, the verdict on two consoles (synthetic, in the guests' record format), the bench's
ramster backend, and the LAVA runners' refusal of a two-guest scenario."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from zcache_forge import bench, report
from zcache_forge.errors import ForgeError
from zcache_forge.guest import peer as peer_mod
from zcache_forge.guest import qemu, runners
from zcache_forge.guest.console import parse_console
from zcache_forge.guest.judge import RunOutcome, evaluate
from zcache_forge.guest.pair import peer_boot, sender_boot
from zcache_forge.guest.peerverdict import PeerOutcome
from zcache_forge.guest.scenarios import get, load_scenarios

from .conftest import recorded

TWO = """
scenarios:
  - name: two
    backend: zcache
    memory_mib: 192
    swap_mib: 256
    workloads:
      - {size_mib: 320, pattern: text, passes: 1, seed: 5}
    peer: {memory_mib: 512, pool_percent: 60}
    timeout_s: 120
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    return load_scenarios(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ForgeError) as info:
        load(tmp_path, text)
    return str(info.value)


# ---------------------------------------------------------------- the scenario file

def test_a_peer_section_is_loaded_with_its_defaults(tmp_path):
    sc = load(tmp_path, TWO).get("two")
    assert sc.peer == peer_mod.PeerSpec(memory_mib=512, pool_percent=60, kill_after_s=None, cpus=1)
    assert sc.host_cpus == 2 and not sc.peer_killed
    bare = load(tmp_path, TWO.replace("{memory_mib: 512, pool_percent: 60}", "{}")).get("two")
    assert bare.peer == peer_mod.PeerSpec()  # 512 MiB, 50%, never killed nor hung, 1 CPU
    assert not bare.peer.hung and not bare.peer.disrupted
    none = TWO.replace("    peer: {memory_mib: 512, pool_percent: 60}\n", "")
    assert load(tmp_path, none).get("two").peer is None


@pytest.mark.parametrize("change, expect", [
    ("{memory_mib: 64}", "scenarios[0].peer.memory_mib: expected 128..16384 MiB for the peer (its kernel, "
                         "/init and a pool for the other guest's pages), found 64"),
    ("{kill_after_s: 0}", "scenarios[0].peer.kill_after_s: expected a number of seconds > 0 after the guest "
                          "is loaded, or null (the peer is not killed), found 0"),
    ("{kill_after_s: -5}", "scenarios[0].peer.kill_after_s: expected a number of seconds > 0"),
    ("{kill_after_s: 120}", "scenarios[0].peer: expected kill_after_s below timeout_s (120), found 120"),
    ("{pool_percent: 0}", "scenarios[0].peer.pool_percent: expected an integer 1..100, found 0"),
    ("{memory: 512}", "scenarios[0].peer.memory: expected one of the keys cpus, hang_after_s, hang_for_s, "
                      "kill_after_s, memory_mib, pool_percent, found unknown key 'memory'"),
    ("{hang_after_s: 0, hang_for_s: 5}",
     "scenarios[0].peer.hang_after_s: expected a number of seconds > 0 after the guest is loaded, or null "
     "(the peer does not hang), found 0"),
    ("{hang_after_s: 5, hang_for_s: -1}",
     "scenarios[0].peer.hang_for_s: expected a number of seconds > 0 for which the peer stays stopped, or "
     "null (the peer does not hang), found -1"),
    ("{hang_after_s: 5, hang_for_s: 2.5}", "scenarios[0].peer.hang_for_s: expected a number of seconds > 0"),
    ("{hang_after_s: 15}",
     "scenarios[0].peer.hang_for_s: expected hang_for_s with hang_after_s (how long the peer stays "
     "stopped), found hang_after_s: 15 without it"),
    ("{hang_for_s: 12}",
     "scenarios[0].peer.hang_for_s: expected hang_for_s only with hang_after_s (when the peer is "
     "stopped), found hang_for_s: 12 without it"),
    ("{kill_after_s: 15, hang_after_s: 15, hang_for_s: 12}",
     "scenarios[0].peer.hang_after_s: expected no hang_after_s with kill_after_s (the peer is killed or "
     "hung, not both), found hang_after_s: 15 and kill_after_s: 15"),
    ("{hang_after_s: 100, hang_for_s: 20}", "scenarios[0].peer: expected hang_after_s + hang_for_s below "
                                            "timeout_s (120), found 100 + 20 = 120"),
    ("512", "scenarios[0].peer: expected a mapping, found 512"),
])
def test_a_bad_peer_section_is_one_line_naming_the_field(tmp_path, change, expect):
    msg = error_of(tmp_path, TWO.replace("{memory_mib: 512, pool_percent: 60}", change))
    assert expect in msg, msg
    assert len(msg.splitlines()) == 1, msg


def test_a_peer_that_hangs_is_loaded():
    """hang_after_s and hang_for_s: the host stops B that long after A is loaded, for that long."""
    sc = get("ramster-peer-hangs")
    assert (sc.peer.hang_after_s, sc.peer.hang_for_s, sc.peer.kill_after_s) == (4, 12, None)
    assert sc.peer.hung and sc.peer.disrupted and not sc.peer.killed
    assert sc.peer_hung and not sc.peer_killed
    assert sc.peer.hang_after_s + sc.peer.hang_for_s < sc.timeout_s


@pytest.mark.parametrize("extra, expect", [
    ("    fs_mib: 64\n", "scenarios[0].peer: expected none of fs_mib, load_fail_percent with a peer (the "
                         "two-guest run is the workloads' job; a lost page must be the peer's), "
                         "found fs_mib: 64"),
    ("    load_fail_percent: 2\n", "found load_fail_percent: 2"),
])
def test_a_peer_goes_with_the_workloads_job_only(tmp_path, extra, expect):
    msg = error_of(tmp_path, TWO + extra)
    assert expect in msg, msg


def test_a_peer_goes_with_zcache_only(tmp_path):
    msg = error_of(tmp_path, TWO.replace("backend: zcache", "backend: zswap"))
    assert "scenarios[0].peer: expected no peer with backend zswap (RAMster is zcache's: backend: zcache), " \
           "found a peer" in msg


def test_peer_counters_in_expect_need_a_peer(tmp_path):
    ok = load(tmp_path, TWO + "    expect:\n      - pressure peer.zcache.peer_puts > 0\n").get("two")
    assert str(ok.expect[0]) == "pressure peer.zcache.peer_puts > 0"
    text = TWO.replace("    peer: {memory_mib: 512, pool_percent: 60}\n", "")
    msg = error_of(tmp_path, text + "    expect:\n      - pressure peer.zcache.peer_puts > 0\n")
    assert "scenarios[0].expect: expected peer.* counters only in a scenario with a peer, found " \
           "'pressure peer.zcache.peer_puts > 0'" in msg


def test_the_shipped_two_guest_scenarios():
    r, dies, b = get("ramster"), get("ramster-peer-dies"), get("bench-ramster")
    assert r.peer and not r.peer_killed and r.swapoff_recheck
    assert dies.peer_killed and dies.peer.kill_after_s < dies.timeout_s
    assert dies.workloads == r.workloads
    # the hung peer: the dying peer's run, B stopped instead of killed; B must let go of every page
    hangs = get("ramster-peer-hangs")
    assert hangs.peer_hung and not hangs.peer_killed and not r.peer_hung and not dies.peer_hung
    assert (hangs.workloads, hangs.memory_mib, hangs.memcg_max_mib) == (r.workloads, dies.memory_mib,
                                                                         dies.memcg_max_mib)
    assert [str(e) for e in hangs.expect] == ["after-swapoff zcache.remote_conn_lost > 0",
                                              "after-swapoff zcache.remote_pages == 0",
                                              "after-swapoff peer.zcache.peer_pages == 0"]
    assert b.peer and not b.swapoff_recheck
    # A swaps past its RAM: the workloads are beyond memory_mib (the dying peer's, beyond their cgroup's
    # limit, which keeps /init's pages out of reclaim and so off the peer)
    assert r.workload_mib > r.memory_mib and b.workload_mib > b.memory_mib
    assert dies.workload_mib > dies.memcg_max_mib and dies.memcg_max_mib < dies.memory_mib // 2 + 16


# ---------------------------------------------------------------- both guests' command lines

def test_a_sets_its_peer_at_run_time_and_b_serves_from_boot():
    sc, dies = get("ramster"), get("ramster-peer-dies")
    a = sc.kernel_args()
    assert "zcache.ramster_node=1" in a
    assert not any(x.startswith("zcache.ramster_peer=") for x in a)  # A's /init writes it at run time
    assert {"zcf.net=169.254.0.1/16", "zcf.peer=2@169.254.0.2:7100", "zcf.peerctl=169.254.0.2:7101"} <= set(a)
    assert "zcf.lost_ok=1" not in a and "zcf.lost_ok=1" in dies.kernel_args()
    # a hung peer's pages are lost too (A's requests time out while B is stopped): A's /init allows it
    hangs = get("ramster-peer-hangs")
    assert "zcf.lost_ok=1" in hangs.kernel_args()
    # B is told nothing of its hang
    assert dataclasses.replace(hangs, name="ramster").peer_kernel_args() == get("ramster").peer_kernel_args()
    b = sc.peer_kernel_args()
    assert b[:3] == ["zcache.ramster_node=2", "zcache.ramster_listen=7100",
                     f"zcache.ramster_peer_pool_percent={sc.peer.pool_percent}"]
    assert {"zcf.role=peer", "zcf.net=169.254.0.2/16", "zcf.peerctl=7101", "zcf.name=ramster-peer"} <= set(b)
    assert not any(x.startswith("zcf.workloads") for x in b)
    with pytest.raises(ValueError):
        get("basic").peer_kernel_args()


def test_the_two_qemus_share_one_socket_netdev_port(tmp_path):
    sc = get("ramster")
    a = qemu.guest_boot(tmp_path / "bzImage", tmp_path / "initrd", sc, tmp_path / "run", "tcg",
                        swap_imgs=(tmp_path / "swap.img",))
    b_argv = qemu.qemu_argv(peer_boot(a, sc, 45678), tmp_path / "b.log")
    a_argv = qemu.qemu_argv(sender_boot(a, 45678), tmp_path / "a.log")
    assert b_argv[b_argv.index("-netdev") + 1] == "socket,id=net0,listen=127.0.0.1:45678"
    assert a_argv[a_argv.index("-netdev") + 1] == "socket,id=net0,connect=127.0.0.1:45678"
    assert b_argv[b_argv.index("-device", b_argv.index("-netdev")) + 1] == \
        "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:02,romfile="
    assert a_argv[a_argv.index("-device", a_argv.index("-netdev")) + 1] == \
        "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:01,romfile="
    # B: its own RAM and CPUs, no disk, no watchdog silence (it waits quietly for A), its own log directory
    assert b_argv[b_argv.index("-m") + 1] == "512" and "-drive" not in b_argv
    assert a_argv[a_argv.index("-m") + 1] == str(sc.guest_ram_mib) and "-drive" in a_argv
    pb = peer_boot(a, sc, 45678)
    assert pb.silence_timeout_s is None and pb.timeout_s > a.timeout_s
    assert pb.workdir == tmp_path / "run" / "peer"
    assert "zcf.role=peer" in b_argv[b_argv.index("-append") + 1]
    # a one-guest scenario has no network at all
    one = qemu.qemu_argv(qemu.guest_boot(tmp_path / "k", tmp_path / "i", get("basic"), tmp_path, "tcg"),
                         tmp_path / "c.log")
    assert "-netdev" not in one


def test_netdev_sides():
    with pytest.raises(ValueError):
        peer_mod.netdev_args("both", 1)


# ---------------------------------------------------------------- the verdict on two consoles

def rec(obj) -> str:
    return "ZCF-RESULT " + json.dumps(obj, separators=(",", ":"))


SWAP = {"meminfo.SwapTotal_kib": 524284, "meminfo.SwapFree_kib": 524284, "frontswap.succ_stores": 0,
        "zcache.pers_puts": 0, "zcache.failed_pers_puts": 0, "pswpout": 0}
LOADED = {**SWAP, "meminfo.SwapFree_kib": 100000, "frontswap.succ_stores": 90000, "zcache.pers_puts": 90000,
          "pswpout": 30000, "zcache.remote_puts": 12000, "zcache.remote_pages": 11000,
          "zcache.remote_pages_max": 11000, "zcache.remote_gets": 4000, "zcache.remote_get_us": 3400000,
          "zcache.failed_remote_gets": 0, "zcache.remote_conn_lost": 0}


def counters(phase: str, values: dict) -> str:
    return rec({"kind": "counters", "phase": phase, "uptime_s": 1.0, "values": values})


def workload(wid: str, phase: str, sc, lost: int = 0, corrupted: int = 0) -> str:
    w = sc.workloads[int(wid[1:])]
    pages = w.size_mib * 256
    passes = w.passes if phase == "run" else 1
    return rec({"kind": "workload", "id": wid, "phase": phase, "pattern": w.pattern,
                "bytes": w.size_mib << 20, "pages": pages, "passes": passes, "pages_checked": pages * passes,
                "pages_verified": pages * passes - lost - corrupted, "pages_corrupted": corrupted,
                "pages_sigbus": lost, "elapsed_s": 30.0})


def a_console(sc, lost: int = 0, corrupted: int = 0, final: dict | None = None,
              unreachable: bool = False) -> str:
    final = final or {**LOADED, "meminfo.SwapFree_kib": 524284, "zcache.remote_pages": 0}
    ids = [f"w{i}" for i in range(len(sc.workloads))]
    lines = [rec({"kind": "boot", "name": sc.name, "kernel": "6.1.0", "nproc": 1}),
             rec({"kind": "step", "step": "net", "addr": "169.254.0.1/16"}),
             rec({"kind": "step", "step": "ramster-peer", "peer": "2@169.254.0.2:7100", "set": True}),
             counters("before", SWAP),
             *(workload(i, "run", sc, lost if i == "w0" else 0) for i in ids),
             counters("pressure", LOADED)]
    if unreachable:
        lines.append(rec({"kind": "step", "step": "peer-unreachable", "message": "after-swapoff"}))
    lines += [rec({"kind": "step", "step": "swapoff", "status": 0, "start_s": 50.0, "end_s": 60.0}),
              *(workload(i, "recheck", sc, lost if i == "w0" else 0, corrupted if i == "w0" else 0)
                for i in ids),
              *(rec({"kind": "exit", "id": i, "status": 3 if lost and i == "w0" else 0}) for i in ids),
              counters("after-swapoff", final), "ZCF-DONE status=0"]
    return "\n".join(lines)


PEER_VALUES = {"zcache.peer_puts": 12000, "zcache.peer_pages": 11000, "zcache.peer_pages_max": 11000,
               "zcache.peer_gets": 4000, "zcache.failed_peer_puts": 0}


def b_console(phases=("before", "pressure", "after-swapoff"), done: bool = True, splat: bool = False) -> str:
    lines = ["[    0.500000] Linux version 6.1.0",
             rec({"kind": "boot", "name": "ramster-peer", "kernel": "6.1.0", "nproc": 1}),
             rec({"kind": "step", "step": "peer-ready", "addr": "169.254.0.2/16", "ctl_port": 7101})]
    for phase in phases:
        values = {k: 0 for k in PEER_VALUES} if phase == "before" else dict(PEER_VALUES)
        if phase == "after-swapoff":
            values["zcache.peer_pages"] = 0
        lines.append(counters(phase, values))
    if splat:
        lines += ["[   30.000000] BUG: unable to handle page fault for address: 0000000000001234",
                  "[   30.000001] Call Trace:"]
    if done:
        lines += [rec({"kind": "step", "step": "peer-done"}), "ZCF-DONE status=0"]
    return "\n".join(lines)


def peer_outcome(text: str, **kw) -> PeerOutcome:
    base = {"console": parse_console(text), "port": 40123, "exit_kind": "exit", "guest_status": 0,
            "seconds": 70.0, "console_log": Path("/runs/ramster/peer/console.log"), "ready_s": 6.0}
    return PeerOutcome(**{**base, **kw})


def verdict(sc, a_text: str, peer: PeerOutcome, outcome: RunOutcome | None = None):
    return evaluate(sc, parse_console(a_text), [], outcome or RunOutcome(seconds=80.0), peer)


def test_a_two_guest_run_that_held_a_s_pages_on_b_passes():
    sc = get("ramster")
    r = verdict(sc, a_console(sc), peer_outcome(b_console()))
    assert r.passed, r.reasons
    # B's counters are A's phases' too, under peer.
    assert r.counters["pressure"]["peer.zcache.peer_puts"] == 12000
    assert r.counters["pressure"]["zcache.remote_puts"] == 12000
    assert r.counters["after-swapoff"]["peer.zcache.peer_pages"] == 0
    s = r.summary
    assert (s["remote_puts"], s["remote_gets"], s["remote_get_mean_us"], s["peer_puts"], s["peer_pages_max"],
            s["lost_pages"]) == (12000, 4000, 850.0, 12000, 11000, 0)
    assert r.peer["story"] == ("peer B on 127.0.0.1:40123 (ready after 6 s): A remotified 12,000 pages, got "
                               "4,000 back (mean 850 us); B took 12,000, held at most 11,000; 0 pages lost, "
                               "0 wrong")
    table = report.render_table([r])
    assert "two-guest run" in table and "ramster: peer B on 127.0.0.1:40123" in table
    assert json.loads(report.to_json([r]))[0]["peer"]["port"] == 40123


def test_expect_lines_read_the_peer_s_counters():
    sc = get("ramster")
    r = verdict(sc, a_console(sc), peer_outcome(b_console()))
    assert r.passed  # after-swapoff peer.zcache.peer_pages == 0 holds
    text = b_console().replace('"zcache.peer_pages":0', '"zcache.peer_pages":7')
    r = verdict(sc, a_console(sc), peer_outcome(text))
    want = "expect 'after-swapoff peer.zcache.peer_pages == 0' failed: peer.zcache.peer_pages is 7"
    assert want in r.reasons


def test_a_kernel_without_ramster_fails_with_the_reason():
    sc = dataclasses.replace(get("ramster"), expect=())
    plain = {k: v for k, v in LOADED.items() if "remote" not in k}
    a = a_console(sc).replace(counters("pressure", LOADED), counters("pressure", plain))
    b = b_console().replace("zcache.peer_", "zcache.nope_")
    r = verdict(sc, a, peer_outcome(b))
    assert "A reports no zcache.remote_puts: this kernel has no RAMster (see A's ramster-peer step)" \
        in r.reasons
    assert "peer B reports no zcache.peer_puts: its kernel has no RAMster" in r.reasons


def test_nothing_remotified_under_load_fails():
    sc = dataclasses.replace(get("ramster"), expect=())
    a = a_console(sc).replace('"zcache.remote_puts":12000', '"zcache.remote_puts":0', 1)
    b = b_console().replace('"zcache.peer_puts":12000', '"zcache.peer_puts":0', 1)
    r = verdict(sc, a, peer_outcome(b))
    assert any(x.startswith("A moved no page to its peer under load (zcache.remote_puts 0 at pressure)")
               for x in r.reasons), r.reasons
    assert "peer B took none of A's pages under load (peer.zcache.peer_puts 0 at pressure)" in r.reasons


def test_a_lost_page_fails_a_run_whose_peer_lived():
    sc = get("ramster")
    r = verdict(sc, a_console(sc, lost=3), peer_outcome(b_console()))
    assert not r.passed
    assert any("3 pages raised SIGBUS in the 'run' phase" in x for x in r.reasons), r.reasons


def test_the_peer_must_answer_every_phase_get_done_and_exit_by_itself():
    sc = get("ramster")
    log = "/runs/ramster/peer/console.log"
    r = verdict(sc, a_console(sc, unreachable=True),
                peer_outcome(b_console(phases=("before", "pressure"), done=False),
                             stopped="peer B did not exit within 30 s after A finished: killed",
                             exit_kind="qemu-error", guest_status=None))
    assert "A's /init could not reach peer B's control port for its 'after-swapoff' message" in r.reasons
    assert "peer B printed no counters record for A's 'after-swapoff' phase" in r.reasons
    assert any(x.startswith("peer B did not exit within 30 s after A finished: killed; its console said "
                            "last:") and x.endswith(f"(log: {log})") for x in r.reasons), r.reasons


def test_a_splat_on_the_peer_fails_the_run():
    sc = get("ramster")
    r = verdict(sc, a_console(sc), peer_outcome(b_console(splat=True)))
    assert any(x.startswith("peer B: kernel bug at console line") and "unable to handle page fault" in x
               for x in r.reasons), r.reasons


def test_a_peer_that_never_served_is_the_reason_and_a_is_not_judged_unbooted():
    sc = get("ramster")
    why = "peer B printed no peer-ready record within 120 s (log: /runs/ramster/peer/console.log)"
    r = verdict(sc, "", peer_outcome("[    0.1] Linux version 6.1.0\n" + rec({"kind": "boot", "name": "x"}),
                                     error=why, exit_kind="qemu-error"),
                RunOutcome(exit_kind="peer-error", guest_status=None, ended_by=why))
    assert r.reasons == [why]
    assert r.peer["story"] == f"peer B never served: {why}"


def kill_run(lost: int = 120, corrupted: int = 0, failed_gets: int = 120, puts: int = 12000):
    sc = get("ramster-peer-dies")
    final = {**LOADED, "zcache.remote_conn_lost": 1, "zcache.failed_remote_gets": failed_gets,
             "zcache.remote_puts": puts, "zcache.remote_pages": 0}
    b = b_console(phases=("before",), done=False)
    return sc, verdict(sc, a_console(sc, lost=lost, corrupted=corrupted, final=final),
                       peer_outcome(b, exit_kind="qemu-error", guest_status=None, kill_after_s=25,
                                    loaded_at_s=16.0, killed_at_s=41.0))


def test_a_killed_peer_loses_pages_as_sigbus_and_the_verdict_says_what_happened():
    sc, r = kill_run()
    assert r.passed, r.reasons
    assert r.peer["story"] == ("peer killed at 41 s (25 s after A was loaded); A: 12,000 pages remotified "
                               "before, 120 remote gets failed -> 120 pages lost (SIGBUS), 0 wrong pages, "
                               "remote_conn_lost 1")
    assert r.summary["lost_pages"] == 120 and r.summary["peer_killed_at_s"] == 41.0
    assert r.summary["peer_puts"] is None  # not read after B's death: unknown, not 0
    assert "ramster-peer-dies: peer killed at 41 s" in report.render_table([r])


def test_a_killed_peer_never_excuses_a_wrong_page():
    _, r = kill_run(corrupted=2)
    assert not r.passed
    assert any("2 corrupted pages in the 'recheck' phase" in x for x in r.reasons), r.reasons


def test_a_page_lost_without_a_failed_remote_get_is_lost_for_another_reason():
    _, r = kill_run(failed_gets=0)
    assert "A lost 120 pages (SIGBUS) with no failed remote get: they were lost for another reason than " \
           "the dead peer" in r.reasons


def test_killing_a_peer_that_held_nothing_proves_nothing():
    _, r = kill_run(lost=0, failed_gets=0, puts=0)
    assert any(x.startswith("A had moved no page to its peer when the peer was killed") for x in r.reasons)


def test_a_hang_of_a_is_still_a_hang_with_a_peer():
    sc = get("ramster")
    r = verdict(sc, a_console(sc).split("ZCF-DONE")[0], peer_outcome(b_console(done=False),
                stopped="A ended (hang): peer B killed", exit_kind="qemu-error"),
                RunOutcome(exit_kind="hang", guest_status=None, seconds=200.0))
    assert r.reasons[0].startswith("hang: console silent for 120 s: QEMU was killed after 200 s")
    assert any(x.startswith("A ended (hang): peer B killed") for x in r.reasons)


def hang_run(lost: int = 120, corrupted: int = 0, failed_gets: int = 120, conn_lost: int | None = 1,
             hung: bool = True, b_text: str | None = None, expect: bool = True, **b_kw):
    """ramster-peer-hangs on synthetic consoles: B stopped at 20 s of A (15 s after A was loaded) and
    continued at 32 s; it lived on, answered every phase and exited by itself (unless b_text, b_kw)."""
    sc = get("ramster-peer-hangs")
    sc = sc if expect else dataclasses.replace(sc, expect=())
    final = {**LOADED, "zcache.remote_conn_lost": conn_lost, "zcache.failed_remote_gets": failed_gets,
             "zcache.remote_pages": 0}
    if conn_lost is None:
        del final["zcache.remote_conn_lost"]
    when = {"hung_at_s": 20.0, "resumed_at_s": 32.0} if hung else {}
    peer = peer_outcome(b_text or b_console(), **{"hang_after_s": 15, "hang_for_s": 12, "loaded_at_s": 5.0,
                                                  **when, **b_kw})
    return sc, verdict(sc, a_console(sc, lost=lost, corrupted=corrupted, final=final), peer)


def test_a_hung_peer_loses_pages_as_sigbus_lives_on_and_the_verdict_says_what_happened():
    _, r = hang_run()
    assert r.passed, r.reasons
    assert r.peer["story"] == ("peer hung at 20 s (15 s after A was loaded) for 12 s; A: 12,000 pages "
                               "remotified, 120 remote gets failed -> 120 pages lost (SIGBUS), 0 wrong "
                               "pages, remote_conn_lost 1; B took 12,000, held at most 11,000")
    assert r.summary["peer_hung_at_s"] == 20.0 and r.summary["peer_killed_at_s"] is None
    assert r.summary["lost_pages"] == 120 and r.summary["peer_puts"] == 12000  # B's last word is read
    assert (r.peer["hang_after_s"], r.peer["hang_for_s"], r.peer["hung_at_s"], r.peer["resumed_at_s"]) == (
        15, 12, 20.0, 32.0)
    assert json.loads(report.to_json([r]))[0]["peer"]["hung_at_s"] == 20.0
    assert "ramster-peer-hangs: peer hung at 20 s" in report.render_table([r])


def test_a_hung_peer_never_excuses_a_wrong_page():
    _, r = hang_run(corrupted=2)
    assert not r.passed
    assert any("2 corrupted pages in the 'recheck' phase" in x for x in r.reasons), r.reasons


def test_a_page_lost_to_a_hung_peer_needs_a_failed_remote_get():
    _, r = hang_run(failed_gets=0)
    assert "A lost 120 pages (SIGBUS) with no failed remote get: they were lost for another reason than " \
           "the hung peer" in r.reasons


@pytest.mark.parametrize("conn_lost, found", [(0, "0"), (None, "not reported")])
def test_a_must_notice_its_peer_hang(conn_lost, found):
    """Without the expect line too: the rule is the verdict's own."""
    _, r = hang_run(lost=0, failed_gets=0, conn_lost=conn_lost, expect=False)
    assert r.reasons == [f"A never noticed its peer hang: zcache.remote_conn_lost is {found} in A's last "
                         "counters record (expected > 0: a request the stopped peer left unanswered for "
                         "zcache.ramster_timeout_ms drops the connection)"]


def test_a_hung_peer_must_still_answer_every_phase_get_done_exit_by_itself_and_take_pages():
    """B was stopped, not killed: once continued, the rules of a live peer hold."""
    b = b_console(phases=("before", "pressure"), done=False).replace('"zcache.peer_puts":12000',
                                                                      '"zcache.peer_puts":0', 1)
    _, r = hang_run(b_text=b, stopped="peer B did not exit within 30 s after A finished: killed",
                    exit_kind="qemu-error", guest_status=None)
    assert not r.passed
    assert "peer B printed no counters record for A's 'after-swapoff' phase" in r.reasons
    assert any(x.startswith("peer B did not exit within 30 s after A finished: killed") for x in r.reasons)
    assert "peer B took none of A's pages under load (peer.zcache.peer_puts 0 at pressure)" in r.reasons


def test_a_peer_that_was_to_hang_but_did_not_fails_and_its_lost_pages_too():
    _, r = hang_run(hung=False)
    assert not r.passed
    assert "peer B was to be stopped 4 s after A was loaded, but A finished first: the run says nothing " \
           "about a hung peer" in r.reasons
    assert any("120 pages raised SIGBUS in the 'run' phase" in x for x in r.reasons), r.reasons
    assert r.peer["story"] == ("peer B on 127.0.0.1:40123 (ready after 6 s): was to be stopped 4 s after A "
                               "was loaded, but was not")
    _, r = hang_run(hung=False, loaded_at_s=None)
    assert any(x.startswith("peer B was to be stopped 4 s after A was loaded, but A's console never showed "
                            "it was loaded") for x in r.reasons), r.reasons


# ---------------------------------------------------------------- bench

def test_the_ramster_backend_keeps_the_peer_and_the_others_drop_it():
    sc = get("bench-ramster")
    by = {b.name: b for b in bench.BACKENDS}
    ram, alone, plain = (bench.variant(sc, by[n]) for n in ("ramster", "zcache", "plain-swap"))
    assert ram.peer == sc.peer and ram.backend == "zcache"
    assert alone.peer is None and plain.peer is None and plain.backend == "none"
    killed = dataclasses.replace(sc, peer=dataclasses.replace(sc.peer, kill_after_s=5),
                                 expect=(get("ramster").expect[1],))
    assert bench.variant(killed, by["ramster"]).peer.kill_after_s is None  # a bench never kills its peer
    hung = dataclasses.replace(sc, peer=dataclasses.replace(sc.peer, hang_after_s=5, hang_for_s=3))
    assert not bench.variant(hung, by["ramster"]).peer.hung  # nor stops it
    assert bench.variant(killed, by["zcache"]).expect == ()  # no peer: its peer.* checks go too
    assert bench.variant(get("bench-mixed"), by["ramster"]).peer == peer_mod.PeerSpec()  # a default peer
    assert [b.name for b in bench.DEFAULT_BACKENDS] == ["zcache", "zswap-zbud", "zswap-zsmalloc",
                                                         "plain-swap"]


def test_bench_figures_of_a_two_guest_run():
    sc = get("bench-ramster")
    ramster = bench.variant(sc, next(b for b in bench.BACKENDS if b.name == "ramster"))
    text = a_console(sc).replace(counters("after-swapoff", {**LOADED, "meminfo.SwapFree_kib": 524284,
                                                            "zcache.remote_pages": 0}), "")
    res = verdict(ramster, text, peer_outcome(b_console(phases=("before", "pressure"))))
    m = bench.metrics(res)
    assert (m["remote_puts"], m["remote_gets"], m["remote_get_mean_us"], m["peer_pages_max"]) == (
        12000, 4000, 850.0, 11000)
    assert m["pswpout"] == 30000
    res.peer = None  # a run without a peer has no RAMster figures
    assert "remote_puts" not in bench.metrics(res)


def test_the_bench_table_compares_ramster_with_zcache_alone():
    def cell(name: str, pswpout: float, ramster: bool) -> bench.Cell:
        figures = {"pswpout": pswpout, "elapsed_s": 50.0, "throughput_mbps": 10.0}
        if ramster:
            figures.update(remote_puts=12000, remote_gets=4000, failed_remote_gets=0,
                           remote_get_mean_us=850.0, peer_pages_max=11000)
        ok = SimpleNamespace(passed=True, reasons=[])
        run = bench.Run(result=ok, figures=figures)  # type: ignore[arg-type]
        return bench.Cell(name, "bench-ramster", "ssd", runs=[run])

    res = bench.BenchResult(image=None, accelerator="tcg", reps=1, disks=("ssd",),  # type: ignore[arg-type]
                            cells=[cell("zcache", 40000, False), cell("ramster", 10000, True),
                                   cell("plain-swap", 80000, False)])
    assert res.comparisons(res.cells[1])["pswpout_vs_zcache_pct"] == 75.0
    assert "pswpout_vs_zcache_pct" not in res.comparisons(res.cells[0])
    rows = report.markdown(res)
    assert "| ramster | 10,000 | 75% | 12,000 | 4,000 | 850 | 0 | 11,000 |" in rows
    assert "| zcache | 40,000 | - | - | - | - | - | - |" in rows


# ---------------------------------------------------------------- LAVA: one guest per job

def test_the_lava_runners_refuse_a_two_guest_scenario():
    runners.check_scenarios("local", [get("ramster")])
    for runner in ("lava-run", "lava"):
        with pytest.raises(ForgeError) as info:
            runners.check_scenarios(runner, [get("basic"), get("ramster"), get("ramster-peer-dies")])
        assert str(info.value) == (f"--runner {runner}: ramster, ramster-peer-dies are two-guest "
                                   "scenarios (peer:), which only --runner local runs: multi-node LAVA "
                                   "jobs are not built")
    with pytest.raises(ForgeError, match="--runner lava-run: bench-mixed is a two-guest scenario"):
        bench.check_runner("lava-run", [get("bench-mixed")],
                           [b for b in bench.BACKENDS if b.name == "ramster"])
    bench.check_runner("lava-run", [get("bench-ramster")], list(bench.DEFAULT_BACKENDS))  # no peer: fine
    with pytest.raises(ForgeError, match="multi-node LAVA jobs are not built"):
        runners.get("lava-run")(Path("k"), Path("i"), get("ramster"), Path("w"), "tcg")


# ---------------------------------------------------------------- recorded consoles

def test_recorded_two_guest_runs_of_a_kernel_without_ramster():
    """Both guests' consoles of real runs (tests/data/ramster*-nokernel*, the series before RAMster, which
    ignores the zcache.ramster_* parameters): the network came up on both sides, B answered every phase
    of A's, and the verdict names what is missing, the kernel side, and nothing else."""
    sc = get("ramster")
    a = parse_console(recorded("ramster-nokernel"))
    b = recorded("ramster-nokernel-peer")
    net = {s.raw["addr"]: s.raw["mac"] for c in (a, parse_console(b)) for s in c.steps if s.step == "net"}
    assert net == {"169.254.0.1/16": "52:54:00:12:34:01", "169.254.0.2/16": "52:54:00:12:34:02"}
    assert next(s for s in a.steps if s.step == "ramster-peer").raw["set"] is False
    r = verdict(sc, recorded("ramster-nokernel"), peer_outcome(b))
    for phase in ("before", "pressure", "after-swapoff"):
        assert "peer.zcache.pers_puts" in r.counters[phase] and "zcache.pers_puts" in r.counters[phase]
    assert r.summary["corrupted"] == 0 and r.summary["lost_pages"] == 0
    assert r.reasons == [
        "expect 'pressure zcache.remote_pages_max > 0': the guest did not report zcache.remote_pages_max",
        "expect 'pressure peer.zcache.peer_pages_max > 0': peer B did not report peer.zcache.peer_pages_max",
        "expect 'after-swapoff zcache.remote_pages == 0': the guest did not report zcache.remote_pages",
        "expect 'after-swapoff peer.zcache.peer_pages == 0': peer B did not report peer.zcache.peer_pages",
        "A reports no zcache.remote_puts: this kernel has no RAMster (see A's ramster-peer step)",
        "peer B reports no zcache.peer_puts: its kernel has no RAMster"]


def test_a_recorded_run_whose_peer_was_killed():
    """ramster-peer-dies on the same kernel: B killed 12 s after A was loaded (it had answered A's before
    only), A's /init gave up on it once and went on to the end; the verdict misses only RAMster's counter."""
    sc = get("ramster-peer-dies")
    a = recorded("ramster-peer-dies-nokernel")
    b = peer_outcome(recorded("ramster-peer-dies-nokernel-peer"), exit_kind="qemu-error", guest_status=None,
                     kill_after_s=12, loaded_at_s=5.3, killed_at_s=17.3)
    assert [c.phase for c in b.console.counters] == ["before"]
    assert [s.raw["message"] for s in parse_console(a).steps if s.step == "peer-unreachable"] == ["pressure"]
    r = verdict(sc, a, b)
    assert r.reasons == ["expect 'after-swapoff zcache.remote_conn_lost > 0': the guest did not report "
                         "zcache.remote_conn_lost"]
    assert r.peer["story"].startswith("peer killed at 17 s (12 s after A was loaded); A: - pages remotified")


def test_recorded_run_of_the_ramster_kernel_holds_a_s_pages_on_b():
    """Both consoles of a real ramster run (the series with RAMster, tests/test_ramster_kernel.py's): A
    moved 9,906 pages to B and got 9,325 back, swapoff emptied both sides, every page verified."""
    sc = get("ramster")
    r = verdict(sc, recorded("ramster"), peer_outcome(recorded("ramster-peer"), port=56875, ready_s=2.5))
    assert r.passed, r.reasons
    pressure, after = r.counters["pressure"], r.counters["after-swapoff"]
    assert pressure["zcache.remote_puts"] == pressure["peer.zcache.peer_puts"] == 9906
    assert after["zcache.remote_pages"] == after["peer.zcache.peer_pages"] == 0
    assert r.summary["failed_remote_gets"] == 0 and r.summary["lost_pages"] == 0
    assert r.peer["story"] == ("peer B on 127.0.0.1:56875 (ready after 2 s): A remotified 9,906 pages, got "
                               "9,325 back (mean 9,620 us); B took 9,906, held at most 6,983; 0 pages lost, "
                               "0 wrong")
    assert all(w["pages_verified"] == w["pages_checked"] for w in r.workloads)


def recorded_kill(sc=None):
    sc = sc or get("ramster-peer-dies")
    peer = peer_outcome(recorded("ramster-peer-dies-peer"), port=45063, exit_kind="qemu-error",
                        guest_status=None, kill_after_s=15, loaded_at_s=5.0, killed_at_s=20.0)
    return sc, peer


def test_recorded_run_whose_peer_the_host_killed():
    """A real ramster-peer-dies: B killed 15 s after A was loaded; the 1,916 pages A still had on it came
    back as SIGBUS (memhog's lost pages), none wrong, and A finished by itself."""
    sc, peer = recorded_kill()
    r = verdict(sc, recorded("ramster-peer-dies"), peer)
    assert r.passed, r.reasons
    assert r.counters["pressure"]["zcache.remote_pages"] == r.summary["lost_pages"] == 1916
    assert r.peer["story"] == ("peer killed at 20 s (15 s after A was loaded); A: 2,729 pages remotified "
                               "before, 3,018 remote gets failed -> 1,916 pages lost (SIGBUS), 0 wrong "
                               "pages, remote_conn_lost 1")
    # the same consoles, had the host not killed B: the lost pages fail the run
    alive = dataclasses.replace(peer, killed_at_s=None)
    r = verdict(dataclasses.replace(sc, peer=dataclasses.replace(sc.peer, kill_after_s=None), expect=()),
                recorded("ramster-peer-dies"), alive)
    assert not r.passed
    assert any("pages raised SIGBUS in the 'run' phase" in x for x in r.reasons)
    # and a wrong page is never excused by a dead peer
    bad = recorded("ramster-peer-dies").replace('"pages_corrupted":0', '"pages_corrupted":1', 1)
    assert not verdict(sc, bad, peer).passed
