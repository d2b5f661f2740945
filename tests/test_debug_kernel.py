"""Hardening (issue 6): the debug kernel (KASAN, lockdep, DEBUG_VM, DEBUG_LIST, atomic-sleep
checks, fault injection) runs the scenarios with panic_on_warn and must show no splat."""

from __future__ import annotations

import json

import pytest

from zcache_forge import cli

from .conftest import ROOT

pytestmark = pytest.mark.kernel


# Every debug scenario of the tests in one qemu-test run, two guests side by side (CI wants the
# verdicts; each guest's seconds are then not its own). The two-CPU hotplug guest runs alone, then
# the longest first, so that no long one runs alone at the end. basic is not among them: thp and
# swap-devices run its mixed workload (zero, text, random and half pages) and its swapoff, and the
# KUnit suites run at every boot.
DEBUG_RUN = ["concurrent-hotplug", "writeback", "mixed-cache", "swap-devices", "load-fail", "fault-inject",
             "fs-reread", "thp", "memcg"]
JOBS = 2


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory) -> dict[str, dict]:
    tmp_path = tmp_path_factory.mktemp("debug")
    results = tmp_path / "results"
    rc = cli.qemu_test(ROOT / "series.yaml", tmp_path / "patches", DEBUG_RUN, None, None, False, results,
                       debug=True, jobs=JOBS)
    data = json.loads((results / "qemu-test-zcache-promote-v1-debug.json").read_text())
    assert data["jobs"] == JOBS
    for sc in data["scenarios"]:
        print(sc["name"], "PASS" if sc["passed"] else "FAIL", sc["seconds"], sc["reasons"])
    assert [sc["name"] for sc in data["scenarios"]] == DEBUG_RUN
    scs = {sc["name"]: sc for sc in data["scenarios"]}
    scs["exit status"] = rc
    return scs


def run_debug(debug_run: dict, names: list[str]) -> list[dict]:
    """The named scenarios of the module's one debug run, each of which must have passed."""
    chosen = [debug_run[n] for n in names]
    assert all(sc["passed"] for sc in chosen), [(sc["name"], sc["reasons"]) for sc in chosen]
    return chosen


def test_debug_run_exits_0_when_every_scenario_passed(debug_run):
    failed = [(n, sc["reasons"]) for n, sc in debug_run.items() if n != "exit status" and not sc["passed"]]
    assert debug_run["exit status"] == (2 if failed else 0), failed


def test_debug_kernel_runs_hotplug_and_kunit_without_splats(debug_run):
    scs = {sc["name"]: sc for sc in run_debug(debug_run, ["memcg", "concurrent-hotplug"])}
    for sc in scs.values():
        assert sc["splats"] == [] and sc["summary"]["corrupted"] == 0
    hotplug = [s for s in scs["concurrent-hotplug"]["steps"] if s.get("step") == "hotplug"]
    assert hotplug and hotplug[0]["cycles"] > 0 and hotplug[0]["errors"] == 0
    # the KUnit suites ran at boot (of every scenario; memcg's is checked), under KASAN and
    # lockdep, and every case passed
    kunit = scs["memcg"]["kunit"]
    cases = [k for k in kunit if k["case"] is not None and k["param"] is None]
    assert {k["suite"] for k in cases} == {"zcache_tmem", "zcache_zbud", "zcache_ramster"}
    assert len(cases) >= 20 and all(k["status"] == "ok" for k in cases), kunit


def test_ramster_refuses_and_counts_every_malformed_message_under_kasan(debug_run):
    """Issue 12, must-show 3: ramster's receive side fed a bad length, an unknown op, a wrong pool
    and a duplicate sequence number, and the sending side's check of replies fed garbage
    (ramster_test.c's cases), on the KASAN kernel."""
    (sc,) = run_debug(debug_run, ["memcg"])
    ramster = {k["case"]: k["status"] for k in sc["kunit"] if k["suite"] == "zcache_ramster" and k["case"]}
    assert ramster == {f"ramster_test_{c}": "ok" for c in (
        "put_get_flush", "flush_obj_and_pool", "bad_len", "bad_op", "bad_pool", "bad_seq",
        "stale_connection", "bad_reply")}
    assert sc["splats"] == []


def test_fault_injection_fails_puts_cleanly_and_leaks_nothing(debug_run):
    (sc,) = run_debug(debug_run, ["fault-inject"])
    pressure, after = sc["counters"]["pressure"], sc["counters"]["after-swapoff"]
    assert pressure["zcache.failed_pers_puts"] > 0
    assert pressure["zcache.failed_alloc"] + pressure["zcache.failed_get_free_pages"] > 0
    for key in ("obj_count", "objnode_count", "pers_zpages", "pers_pageframes"):
        assert after[f"zcache.{key}"] == 0, key
    assert sc["summary"]["corrupted"] == 0 and sc["splats"] == []


def test_debug_kernel_takes_the_distro_beating(debug_run):
    """Huge pages, a memory cgroup, two swap devices with swapoff under load, failed loads and
    writeback at the pool limit, under KASAN, lockdep, DEBUG_VM and panic_on_warn."""
    scs = {sc["name"]: sc for sc in run_debug(debug_run, ["thp", "memcg", "swap-devices", "load-fail",
                                                          "writeback"])}
    for sc in scs.values():
        assert sc["splats"] == [] and sc["summary"]["corrupted"] == 0, sc["name"]
    assert scs["thp"]["counters"]["pressure"]["zcache.thp_refused"] > 0
    assert scs["load-fail"]["summary"]["sigbus"] > 0
    assert scs["writeback"]["counters"]["pressure"]["zcache.written_back_pages"] > 0
    assert scs["memcg"]["counters"]["pressure"]["cgroup.stat_zswap"] > 0


def test_debug_kernel_rereads_files_through_cleancache(debug_run):
    """cleancache's put under the page cache's lock with interrupts off, its gets and every
    invalidation (truncate, hole punch, delete, umount), under KASAN, lockdep and DEBUG_VM."""
    (sc,) = run_debug(debug_run, ["fs-reread"])
    assert sc["splats"] == []
    assert all(f["pages_checked"] == f["pages"] and f["pages_corrupted"] == 0
               for f in sc["fs"] if f["phase"] in ("pass1", "pass2"))
    # every path ran: puts, gets (found or not: the debug kernel's shrinker may evict every
    # ephemeral frame before pass 2, see qemutest.for_debug), eviction
    s = sc["summary"]
    assert s["fs_corrupted"] == 0 and s["fs_stale"] == 0
    assert s["eph_puts"] > 0 and s["eph_gets"] + s["failed_eph_gets"] > 0
    after = sc["counters"]["after"]
    for key in ("eph_zpages", "eph_pageframes", "eph_pools"):
        assert after[f"zcache.{key}"] == 0, key


def test_debug_kernel_runs_swap_and_page_cache_in_one_pool(debug_run):
    """The mixed job: memhog swapping through zcache while the fs job writes and rereads its
    files, both kinds of zpage in one pool, under KASAN, lockdep and DEBUG_VM."""
    (sc,) = run_debug(debug_run, ["mixed-cache"])
    assert sc["splats"] == []
    s = sc["summary"]
    assert s["corrupted"] == 0 and s["fs_corrupted"] == 0 and s["fs_stale"] == 0
    pressure = sc["counters"]["pressure"]
    assert pressure["zcache.pers_puts"] > 0 and pressure["zcache.eph_puts"] > 0
    assert pressure["zcache.evicted_eph_pageframes"] > 0
