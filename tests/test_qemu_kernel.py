"""qemu-test for real: build the series' kernel, boot it under TCG, and check what a user relies on.

Marked `kernel`. Shares the build directory and ccache with the other kernel tests."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from zcache_forge import cli, report
from zcache_forge.guest import judge, qemutest

from .conftest import ROOT

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> qemutest.KernelImage:
    return qemutest.build_kernel(ROOT / "series.yaml", tmp_path_factory.mktemp("patches"))


# The scenarios whose checks need no timing of their own run once, two guests side by side (CI
# wants verdicts; see guest/schedule.py); smoke, the silence and hang checks run alone.
BATCH = ["thp", "thp-zswap", "swap-devices", "load-fail", "memcg", "basic", "random", "bad-params",
         "pool-limit", "fs-reread", "fs-reread-nocleancache", "mixed-cache"]
JOBS = 2


@pytest.fixture(scope="module")
def batch(image, tmp_path_factory) -> dict[str, judge.ScenarioResult]:
    tmp_path = tmp_path_factory.mktemp("batch")
    res = qemutest.run_scenarios(image, qemutest.choose(BATCH), tmp_path, jobs=JOBS)
    print(report.render_table(res.results))
    assert [r.name for r in res.results] == BATCH
    return {r.name: r for r in res.results}


def run(image, name: str, tmp_path, **changes) -> judge.ScenarioResult:
    sc = dataclasses.replace(qemutest.choose([name])[0], **changes)
    res = qemutest.run_scenarios(image, [sc], tmp_path)
    print(report.render_table(res.results))
    return res.results[0]


def test_basic_zcache_stores_loads_and_swapoff_empties_it(batch):
    r = batch["basic"]
    assert r.passed, r.reasons
    pressure, after = r.counters["pressure"], r.counters["after-swapoff"]
    assert pressure["zcache.pers_zpages"] > 0 and pressure["zcache.pers_pageframes"] > 0
    assert pressure["frontswap.succ_stores"] > 0 and pressure["frontswap.loads"] > 0
    # swapoff brought every page back: zcache holds nothing, and every page re-verified intact
    assert after["zcache.pers_zpages"] == 0 and after["zcache.pers_pageframes"] == 0
    assert after["zcache.obj_count"] == 0 and after["zcache.zero_filled_pages"] == 0
    runs = [w for w in r.workloads if w["phase"] == "run"]
    rechecks = [w for w in r.workloads if w["phase"] == "recheck"]
    assert runs and rechecks and all(w["pages_corrupted"] == 0 for w in r.workloads)
    assert sum(w["pages_checked"] for w in rechecks) == sum(w["pages"] for w in runs)


def test_random_data_is_refused_as_poorly_compressible(batch):
    r = batch["random"]
    assert r.passed, r.reasons
    assert r.counters["pressure"]["zcache.compress_poor"] > 0
    assert all(w["pages_corrupted"] == 0 for w in r.workloads)


def test_smoke_swaps_through_zcache_and_verifies_every_page(image, tmp_path):
    """The edit loop's check: short, and still through zcache."""
    r = run(image, "smoke", tmp_path)
    assert r.passed, r.reasons
    pressure = r.counters["pressure"]
    assert pressure["zcache.pers_puts"] > 0 and pressure["zcache.pers_gets"] > 0
    runs = [w for w in r.workloads if w["phase"] == "run"]
    assert runs and all(w["pages_corrupted"] == 0 and w["pages_checked"] == w["pages"] * w["passes"]
                        for w in runs)
    assert r.seconds < 60, f"smoke took {r.seconds:.0f} s of guest time"


def test_a_guest_that_keeps_printing_outlives_a_short_silence_limit(image, tmp_path):
    """A slow guest is not a hung one: smoke (14-20 s here) runs past a 10 s silence limit (its
    heartbeat every second while swapping moves on, memhog's progress) and is not killed.
    (Not shorter: the kernel's own boot was once silent 8 s on a loaded host.)"""
    r = run(image, "smoke", tmp_path, silence_timeout_s=10)
    assert r.passed, r.reasons
    assert r.ended_by == "guest" and r.exit_kind == "exit"
    assert r.seconds > 10, "smoke ended before the silence limit: the test proves nothing"
    assert r.max_silence_s < 10
    log = (tmp_path / "smoke" / "console.log").read_text(errors="replace")
    assert "zcf-init: heartbeat " in log


def test_a_silent_guest_is_killed_as_a_hang(image, tmp_path):
    """zcf.hang=1: the guest goes silent after its boot record; it is killed once the console has
    been silent for the limit, long before the wall clock, and the verdict names a hang."""
    sc = qemutest.choose(["smoke"])[0]
    r = run(image, "smoke", tmp_path, silence_timeout_s=15, cmdline_extra=sc.cmdline_extra + " zcf.hang=1")
    assert not r.passed
    assert r.exit_kind == "hang"
    assert r.ended_by == "hang: console silent for 15 s"
    assert r.seconds < 15 + 30, r.seconds  # the boot, then 15 s of silence; the wall clock is 180 s
    # /init's last words; the kernel may still log a line or two after them (a late tsc
    # calibration, an input device), and the verdict quotes whatever came last
    log = (tmp_path / "smoke" / "console.log").read_text(errors="replace").splitlines()
    assert "zcf-init: zcf.hang=1: hanging on purpose" in log[-8:], log[-8:]
    assert r.last_console == [x for x in log if x.strip()][-1].strip()
    assert r.reasons[0].startswith("hang: console silent for 15 s: QEMU was killed after"), r.reasons


def test_boot_check_of_the_tip_goes_through_zcache(image, tmp_path):
    """build-patches --boot's check, on the tip only (a boot of all eleven patches is too long for
    CI): the smoke boot passes and counts as through zcache."""
    from zcache_forge.series import patchbuild

    booter = patchbuild.Booter(tmp_path, accel=None)
    pb = patchbuild.PatchBuild(image.series, 2, "tip", image.commit, "pass", 0.0, image=image.image)
    boot = booter.boot(pb, image.image)
    assert boot.passed and boot.through_zcache, boot.reasons
    assert booter.zcache_since == f"{image.series} 2"


def test_bad_boot_parameters_fall_back_and_still_verify(batch):
    r = batch["bad-params"]
    assert r.passed, r.reasons
    log = Path(r.console_log).read_text(errors="replace")
    assert "zcache: compressor nosuch not available, falling back to lzo" in log
    assert "zcache: poor_percent=500 out of range 1..95, using 87" in log
    assert "zcache: max_pool_percent=0 out of range 1..100, using 20" in log
    assert r.counters["pressure"]["zcache.pers_zpages"] > 0


def test_pool_limit_caps_the_page_frames(batch):
    """zcache.max_pool_percent=3: the frames stay within 3% of the guest's RAM (plus at most one
    frame per CPU that raced past the check), the rest goes to the swap disk, and every page
    still comes back intact."""
    r = batch["pool-limit"]
    assert r.passed, r.reasons
    pressure = r.counters["pressure"]
    limit = r.boot["memtotal_kib"] // 4 * 3 // 100
    assert pressure["zcache.pool_limit_hit"] > 0
    assert 0.8 * limit <= pressure["zcache.pers_pageframes_max"] <= limit + r.boot["nproc"], (limit, pressure)
    assert pressure["pswpout"] > 0  # what did not fit went to the disk


def test_huge_pages_swap_out_whole_and_zcache_refuses_them(batch):
    """THP_SWAP on a non-rotational disk hands frontswap a huge page whole: zcache must refuse it
    (the landed series stored its head and lost 511 subpages: 49,106 pages came back wrong), and
    every page of the THP-backed workload verifies, with zcache and with zswap."""
    for name, stored in (("thp", "zcache.pers_zpages_max"), ("thp-zswap", "zswap.stored_pages")):
        r = batch[name]
        assert r.passed, (name, r.reasons)
        pressure = r.counters["pressure"]
        assert r.boot["thp_enabled"].startswith("[always]")
        assert pressure["thp_fault_alloc"] > 0 and pressure["thp_swpout"] > 0, pressure
        assert pressure[stored] > 0
        assert all(w["thp"] and w["pages_corrupted"] == 0 and w["pages_sigbus"] == 0 for w in r.workloads)
        run_rec = next(w for w in r.workloads if w["phase"] == "run")
        assert run_rec["anon_huge_kib"] > 0  # the workload's memory really was in huge pages
        if name == "thp":
            assert pressure["zcache.thp_refused"] == pressure["thp_swpout"]


def test_memcg_charges_compressed_pages_within_memory_max(batch):
    r = batch["memcg"]
    assert r.passed, r.reasons
    pressure = r.counters["pressure"]
    assert pressure["cgroup.max"] == 96 << 20
    assert pressure["cgroup.stat_zswap"] > 0 and pressure["cgroup.stat_zswapped"] > 0  # zcache's pages
    assert pressure["cgroup.peak"] <= pressure["cgroup.max"] + (1 << 20), pressure
    assert pressure["cgroup.events_oom_kill"] == 0
    assert r.summary["corrupted"] == 0 and r.summary["sigbus"] == 0
    # swapoff freed every zpage, and with it every charge
    assert r.counters["after-swapoff"]["cgroup.stat_zswap"] == 0


def test_two_swap_devices_and_swapoff_under_load(batch):
    r = batch["swap-devices"]
    assert r.passed, r.reasons
    cycles = [s for s in r.steps if s.get("step") == "swapoff-under-load"]
    assert cycles and cycles[0]["cycles"] > 0 and cycles[0]["errors"] == 0, cycles
    assert {s.get("device") for s in r.steps if s.get("step") == "swapoff"} == {"/dev/vda", "/dev/vdb"}
    assert r.counters["pressure"]["zcache.pers_zpages_max"] > 0
    assert r.counters["after-swapoff"]["zcache.obj_count"] == 0
    assert r.summary["corrupted"] == 0


def test_failed_loads_give_sigbus_never_stale_data(batch):
    """zcache's fault attribute fails some loads as a decompression error would: the task must get
    SIGBUS for exactly those pages (memhog counts them as pages_sigbus) and never a wrong byte."""
    r = batch["load-fail"]
    assert r.passed, r.reasons
    assert r.counters["pressure"]["zcache.load_errors"] > 0
    assert r.summary["sigbus"] > 0, "the failed loads must reach the task as SIGBUS"
    assert r.summary["corrupted"] == 0, "a failed load was handed out as stale data"
    # memhog's exit status 3: pages were lost, and none came back wrong
    log = Path(r.console_log).read_text(errors="replace")
    assert '{"kind":"exit","id":"w0","status":3}' in log


def test_fs_reread_verifies_every_file_page_and_counts_the_disk_reads(batch):
    """The file-system job on an ext4 disk made on the host: a file set twice the guest's RAM,
    read twice around truncate/rewrite, hole punch, delete and create, every byte verified, and
    each pass's sectors read from the fs disk reported; pass 2 gets pages back from zcache."""
    r = batch["fs-reread"]
    assert r.passed, r.reasons
    recs = {f["phase"]: f for f in r.fs}
    assert list(recs) == ["write", "pass1", "mutate", "pass2"]
    assert all(f["pages_corrupted"] == 0 and f["file_errors"] == 0 for f in r.fs)
    assert recs["write"]["bytes"] == 256 << 20 and recs["pass1"]["pages_checked"] == 65536
    # the hole punched in f000 (after its pages were dropped to cleancache) reads back as zeros
    assert recs["mutate"]["punched_pages"] == 2048
    assert recs["pass2"]["punched_pages_checked"] == 2048
    # the page cache was dropped: pass 1 read most of the file set from the disk
    assert recs["pass1"]["sectors_read"] * 512 > (128 << 20), recs["pass1"]
    assert recs["pass2"]["sectors_read"] > 0 and recs["pass2"]["order"] == "reverse"
    assert r.summary["fs_pass1_sectors_read"] == recs["pass1"]["sectors_read"]
    for phase in ("before", "fs-written", "fs-pass1", "fs-mutated", "fs-pass2", "after"):
        assert "fsdisk.sectors_read" in r.counters[phase], phase
    assert r.boot["zcache_enabled"] is True and r.boot["zcache_cleancache"] is True
    assert r.summary["eph_gets_pass2"] > 0
    # umount destroyed the file system's pool: nothing ephemeral is left
    after = r.counters["after"]
    for key in ("eph_zpages", "eph_zbytes", "eph_pageframes", "eph_pools"):
        assert after[f"zcache.{key}"] == 0, key
    if after["zcache.pers_zpages"] == 0:
        assert after["zcache.obj_count"] == 0 and after["zcache.objnode_count"] == 0


def test_cleancache_saves_disk_reads_and_zcache_cleancache_0_turns_it_off(batch):
    on, off = batch["fs-reread"], batch["fs-reread-nocleancache"]
    assert off.passed, off.reasons
    assert off.boot["zcache_cleancache"] is False
    assert off.summary["eph_puts"] == 0 and off.summary["eph_gets"] == 0
    # the same image, the same reads: pass 2 reads fewer sectors when zcache held pages
    assert on.summary["fs_pass2_sectors_read"] < off.summary["fs_pass2_sectors_read"]


def test_mixed_cache_swap_and_page_cache_compete_and_every_swap_page_verifies(batch):
    """mixed-cache (issue 11, must-show 3): a text workload beyond RAM fills and verifies while the
    fs job writes, reads, mutates and re-reads its file set: both kinds of page reach zcache, swap
    goes on while the file pages are in the pool, every swap page verifies in the run phase and again
    after swapoff, every file byte in both passes, and umount leaves nothing ephemeral behind."""
    r = batch["mixed-cache"]
    assert r.passed, r.reasons
    c = r.counters
    assert c["fs-pass2"]["zcache.eph_puts"] > 0 and c["pressure"]["zcache.pers_puts"] > 0
    assert r.summary["pers_puts_during_fs"] > 0  # swap pages went to zcache while the file set was there
    step = next(s for s in r.steps if s["step"] == "fs-job")
    assert step["workloads_running_at_start"] == 1
    runs = [w for w in r.workloads if w["phase"] == "run"]
    rechecks = [w for w in r.workloads if w["phase"] == "recheck"]
    assert runs[0]["pages_checked"] == runs[0]["pages"] * runs[0]["passes"]
    assert rechecks[0]["pages_checked"] == runs[0]["pages"]
    assert all(w["pages_corrupted"] == 0 and w["pages_sigbus"] == 0 for w in r.workloads)
    assert all(f["pages_corrupted"] == 0 and f["file_errors"] == 0 for f in r.fs)
    after = c["after-swapoff"]
    for key in ("eph_zpages", "eph_zbytes", "eph_pageframes", "eph_pools", "pers_zpages", "obj_count"):
        assert after[f"zcache.{key}"] == 0, key


def test_broken_kernel_fails_with_the_splat_quoted(tmp_path, capsys):
    """A temporary series with one extra patch that BUGs in zcache's store path.

    Last in this file: it rebuilds the shared build directory with the broken kernel, which
    the module's `image` still points at."""
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "templates", proj / "templates")
    data = yaml.safe_load((ROOT / "series.yaml").read_text())
    promote = data["series"][1]
    promote["name"] = "zcache-broken"
    promote["patches"].append({
        "subject": "mm: zcache: break the store path on purpose",
        "message": "messages/promote-docs.j2",
        "ops": [{"op": "insert", "path": "mm/zcache/zcache-main.c",
                 "after": "\tzcache_stat_inc(ZCACHE_STAT_PERS_PUTS);",
                 "text": "\tBUG_ON(zcache_stat_read(ZCACHE_STAT_PERS_PUTS) > 2000);"}],
    })
    (proj / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    rc = cli.qemu_test(proj / "series.yaml", proj / "patches", ["basic"], "zcache-broken", None, False,
                       tmp_path / "results")
    capsys.readouterr()
    assert rc == 2  # a failing scenario: exit 2
    data = yaml.safe_load((tmp_path / "results" / "qemu-test-zcache-broken-v1.json").read_text())
    sc = data["scenarios"][0]
    assert not sc["passed"]
    assert sc["exit_kind"] != "timeout"  # the panic ended the run, not the clock
    assert any("kernel BUG at mm/zcache/zcache-main.c" in s["text"] for s in sc["splats"]), sc["splats"]
    assert any("kernel BUG at mm/zcache/zcache-main.c" in reason for reason in sc["reasons"]), sc["reasons"]

