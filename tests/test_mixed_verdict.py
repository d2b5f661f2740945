"""The mixed job's records and verdict (workloads and the fs job at once, issue 11) on a console
recorded from a real boot of mixed-cache (tests/data/mixed-cache.console.log), and on edits of it:
a corrupted swap page, no fs-job step, workloads that had finished before the fs job began, no swap
while the file set was in the pool, ephemeral pages left after umount; and the bench's figures of
it. Nothing is built or booted."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from zcache_forge import bench, report
from zcache_forge.guest import judge
from zcache_forge.guest.console import FsJobStep, parse_console
from zcache_forge.guest.qemu import GuestRun
from zcache_forge.guest.scenarios import get

from .conftest import recorded
from .test_fs_verdict import edit, fs_phase

LOG = "mixed-cache"


@pytest.fixture(scope="module")
def text() -> str:
    return recorded(LOG)


def verdict(text: str, name: str = "mixed-cache", **changes: Any) -> judge.ScenarioResult:
    sc = dataclasses.replace(get(name), **changes)
    return judge.judge(sc, text, seconds=80.0, accel="tcg")


def counters_of(phase: str):
    return lambda o: o.get("kind") == "counters" and o.get("phase") == phase


def fs_job_step(o: dict[str, Any]) -> bool:
    return o.get("kind") == "step" and o.get("step") == "fs-job"


def workload_phase(phase: str):
    return lambda o: o.get("kind") == "workload" and o.get("phase") == phase


# ---------------------------------------------------------------- the recording

def test_the_recorded_boot_parses_into_both_jobs_records(text):
    con = parse_console(text)
    assert con.errors == [] and con.done_status == 0 and con.splats == []
    assert [c.phase for c in con.counters] == list(get(LOG).phases())
    assert [r.phase for r in con.fs] == ["write", "pass1", "mutate", "pass2"]
    assert [(w.id, w.phase) for w in con.workloads] == [("w0", "run"), ("w0", "recheck")]
    step = con.fs_job
    assert isinstance(step, FsJobStep) and step in con.steps
    assert step.workloads_running_at_start == 1 and step.end_s > step.start_s
    assert [s.step for s in con.steps] == ["fs-job", "umount", "swapoff"]


def test_the_recorded_boot_passes_with_both_pools_used_and_every_page_verified(text):
    r = verdict(text)
    assert r.passed, r.reasons
    c = r.counters
    # both kinds of page went to zcache, and something was swapped while the file set was in the pool
    assert c["fs-pass2"]["zcache.eph_puts"] > 0 and c["pressure"]["zcache.pers_puts"] > 0
    s = r.summary
    assert s["pers_puts_during_fs"] > 0 and s["fs_job_s"] > 0
    # every swap page verified in the run phase and again after swapoff; every file page in both passes
    runs = [w for w in r.workloads if w["phase"] == "run"]
    rechecks = [w for w in r.workloads if w["phase"] == "recheck"]
    assert runs[0]["pages_checked"] == runs[0]["pages"] * runs[0]["passes"]
    assert rechecks[0]["pages_checked"] == runs[0]["pages"]
    assert s["corrupted"] == 0 and s["fs_corrupted"] == 0
    # nothing of the file system left after umount, nothing of swap after swapoff
    after = c["after-swapoff"]
    assert [after[f"zcache.{k}"] for k in judge.EPH_LEVELS] == [0, 0, 0, 0]
    assert after["zcache.pers_zpages"] == 0 and after["zcache.obj_count"] == 0


def test_the_table_has_a_mixed_part(text):
    r = verdict(text)
    table = report.render_table([r])
    assert "file-system job" in table and "mixed job" in table
    row = next(ln for ln in table.split("mixed job", 1)[1].splitlines() if ln.startswith("mixed-cache "))
    s = r.summary
    assert f" {s['pers_puts_during_fs']:.0f}/{s['frontswap_stores_during_fs']:.0f} " in row
    assert "mixed job" not in report.render_table([verdict(recorded("fs-reread-cleancache"), "fs-reread")])


# ---------------------------------------------------------------- failures

def test_a_corrupted_swap_page_fails_the_mixed_run(text):
    r = verdict(edit(text, workload_phase("recheck"), lambda o: {**o, "pages_corrupted": 3}))
    assert "workload w0 (256 MiB text): 3 corrupted pages in the 'recheck' phase" in r.reasons
    r = verdict(edit(text, workload_phase("run"), lambda o: {**o, "pages_checked": o["pages_checked"] - 1}))
    assert any("pages checked in the 'run' phase" in x and "not every page was verified" in x
               for x in r.reasons), r.reasons


def test_the_fs_job_is_judged_in_the_mixed_run_too(text):
    bad = "f007 page 12: stale: holds f007 page 12 generation 0 (another generation of this page)"
    r = verdict(edit(text, fs_phase("pass2"), lambda o: {**o, "pages_corrupted": 1, "pages_stale": 1,
                                                         "bad": [bad]}))
    assert f"file-system pass2: 1 wrong pages, 1 of them stale (another page's content): {bad}" in r.reasons
    r = verdict(edit(text, counters_of("fs-pass1"), lambda o: None))
    assert r.reasons == ["file-system job: no 'fs-pass1' counters record"]


def test_without_the_fs_job_step_the_competition_is_not_shown(text):
    r = verdict(edit(text, fs_job_step, lambda o: None))
    assert r.reasons == ["mixed job: no 'fs-job' step record: /init did not run the file-system job beside "
                         "the workloads (is qemu/init older than the mixed job?)"]
    r = verdict(edit(text, fs_job_step, lambda o: {**o, "workloads_running_at_start": 0}))
    assert r.reasons == ["mixed job: only 0 of 1 workloads were in their run phase when the file-system "
                         "job began"]
    r = verdict(edit(text, fs_job_step, lambda o: {k: v for k, v in o.items()
                                                   if k != "workloads_running_at_end"}))
    assert any("step record: no 'workloads_running_at_end'" in x for x in r.reasons), r.reasons


def test_no_swap_while_the_file_set_was_in_the_pool_fails(text):
    """pswpout and frontswap's stores flat from fs-written to fs-pass2: the workloads and the page
    cache did not compete (they ran one after the other, or the workloads fit in RAM)."""
    written = next(c.values for c in parse_console(text).counters if c.phase == "fs-written")
    flat = {k: written[k] for k in ("pswpout", "frontswap.succ_stores")}
    for phase in ("fs-pass1", "fs-mutated", "fs-pass2"):
        text = edit(text, counters_of(phase), lambda o: {**o, "values": {**o["values"], **flat}})
    r = verdict(text)
    assert r.reasons == ["mixed job: nothing was swapped out while the file-system job read its files "
                         "(pswpout and frontswap stores +0 from fs-written to fs-pass2): swap and page cache "
                         "did not compete (raise the workloads' size_mib or passes)"]


def test_ephemeral_pages_left_after_umount_fail_in_the_last_record(text):
    """The mixed job unmounts before swapoff: its last record (after-swapoff) must hold no ephemeral
    page, frame or pool."""
    leak = edit(text, counters_of("after-swapoff"),
                lambda o: {**o, "values": {**o["values"], "zcache.eph_zpages": 5, "zcache.eph_pools": 1}})
    r = verdict(leak)
    assert "after umount zcache still holds ephemeral pages of the file system (eph_zpages 5, " \
        "eph_pools 1): its cleancache pool was not destroyed" in r.reasons
    r = verdict(edit(text, counters_of("after-swapoff"), lambda o: None))
    assert "file-system job: no 'after-swapoff' counters record" in r.reasons


# ---------------------------------------------------------------- bench

def guest_run(tmp_path: Path, text: str) -> GuestRun:
    (tmp_path / "console.log").write_text(text)
    return GuestRun(name="run", console_log=tmp_path / "console.log", exit_kind="exit", guest_status=0,
                    qemu_exit_code=1, seconds=80.0, accel="tcg")


def test_bench_figures_of_a_mixed_run(text, tmp_path):
    run = bench.measure(get(LOG), guest_run(tmp_path, text))
    assert run.passed, run.result.reasons
    f, c = run.figures, run.result.counters
    before, pressure = c["before"], c["pressure"]
    assert f["pswpout"] == pressure["pswpout"] - before["pswpout"]
    assert f["fs_pass1_disk_mib"] == run.result.summary["fs_pass1_disk_mib"] > 0
    assert f["eph_gets"] == pressure["zcache.eph_gets"] - before["zcache.eph_gets"]
    assert f["evicted_eph_pageframes"] == pressure["zcache.evicted_eph_pageframes"]
    assert f["pers_puts_took_eph_frame"] == pressure["zcache.pers_puts_took_eph_frame"]
    assert f["fs_corrupted"] == 0
    # a run without the fs job has none of these figures
    (tmp_path / "plain").mkdir()
    plain = bench.measure(get("bench-overpool"), guest_run(tmp_path / "plain", recorded("bench-zcache")))
    assert plain.passed and plain.figures and not set(bench.FS_FIGURES) & set(plain.figures)


def test_the_bench_variants_of_a_mixed_scenario():
    sc = dataclasses.replace(get("bench-mixed-cache"), expect_eph_hits=True)
    zswap = bench.variant(sc, bench.BACKENDS[1])
    assert zswap.backend == "zswap" and not zswap.expect_eph_hits and zswap.mixed
    assert bench.variant(sc, bench.BACKENDS[0]).expect_eph_hits


def test_bench_markdown_has_a_page_cache_table_for_the_mixed_scenario(text, tmp_path):
    run = bench.measure(get(LOG), guest_run(tmp_path, text))
    cell = bench.Cell("zcache", LOG, "ssd", [run])
    res = bench.BenchResult(image=None, accelerator="tcg", reps=1, disks=("ssd",),  # type: ignore[arg-type]
                            cells=[cell])
    md = report.markdown(res)
    head = next(ln for ln in md.splitlines() if ln.startswith("| backend | fs disk read"))
    assert [h.strip() for h in head.strip("|").split("|")] == report.FS_HEAD
    row = next(ln for ln in md.splitlines()
               if ln.startswith("| zcache |") and ln.count("|") == len(report.FS_HEAD) + 1)
    assert f"| {run.figures['fs_pass1_disk_mib']:,.1f} |" in row
