"""Hardening (issue 6): the debug kernel (KASAN, lockdep, DEBUG_VM, DEBUG_LIST, atomic-sleep
checks, fault injection) runs the scenarios with panic_on_warn and must show no splat."""

from __future__ import annotations

import json

import pytest

from zcache_forge import cli

from .conftest import ROOT

pytestmark = pytest.mark.kernel


def run_debug(tmp_path, names: list[str]) -> list[dict]:
    results = tmp_path / "results"
    rc = cli.qemu_test(ROOT / "series.yaml", tmp_path / "patches", names, None, None, False, results,
                       debug=True)
    data = json.loads((results / "qemu-test-zcache-promote-v1-debug.json").read_text())
    for sc in data["scenarios"]:
        print(sc["name"], "PASS" if sc["passed"] else "FAIL", sc["seconds"], sc["reasons"])
    assert rc == 0, [(sc["name"], sc["reasons"]) for sc in data["scenarios"]]
    return data["scenarios"]


def test_debug_kernel_runs_basic_and_hotplug_without_splats(tmp_path):
    scs = {sc["name"]: sc for sc in run_debug(tmp_path, ["basic", "concurrent-hotplug"])}
    for sc in scs.values():
        assert sc["splats"] == [] and sc["summary"]["corrupted"] == 0
    hotplug = [s for s in scs["concurrent-hotplug"]["steps"] if s.get("step") == "hotplug"]
    assert hotplug and hotplug[0]["cycles"] > 0 and hotplug[0]["errors"] == 0
    # the KUnit suites ran at boot, under KASAN and lockdep, and every case passed
    kunit = scs["basic"]["kunit"]
    cases = [k for k in kunit if k["case"] is not None and k["param"] is None]
    assert {k["suite"] for k in cases} == {"zcache_tmem", "zcache_zbud"}
    assert len(cases) >= 20 and all(k["status"] == "ok" for k in cases), kunit


def test_fault_injection_fails_puts_cleanly_and_leaks_nothing(tmp_path):
    (sc,) = run_debug(tmp_path, ["fault-inject"])
    pressure, after = sc["counters"]["pressure"], sc["counters"]["after-swapoff"]
    assert pressure["zcache.failed_pers_puts"] > 0
    assert pressure["zcache.failed_alloc"] + pressure["zcache.failed_get_free_pages"] > 0
    for key in ("obj_count", "objnode_count", "pers_zpages", "pers_pageframes"):
        assert after[f"zcache.{key}"] == 0, key
    assert sc["summary"]["corrupted"] == 0 and sc["splats"] == []


def test_debug_kernel_takes_the_distro_beating(tmp_path):
    """Huge pages, a memory cgroup, two swap devices with swapoff under load, failed loads and
    writeback at the pool limit, under KASAN, lockdep, DEBUG_VM and panic_on_warn."""
    scs = {sc["name"]: sc for sc in run_debug(tmp_path, ["thp", "memcg", "swap-devices", "load-fail",
                                                         "writeback"])}
    for sc in scs.values():
        assert sc["splats"] == [] and sc["summary"]["corrupted"] == 0, sc["name"]
    assert scs["thp"]["counters"]["pressure"]["zcache.thp_refused"] > 0
    assert scs["load-fail"]["summary"]["sigbus"] > 0
    assert scs["writeback"]["counters"]["pressure"]["zcache.written_back_pages"] > 0
    assert scs["memcg"]["counters"]["pressure"]["cgroup.stat_zswap"] > 0
