"""build-patches --boot's judgement of a patch's smoke boot, on synthetic consoles (no QEMU)."""

from __future__ import annotations

import json
from pathlib import Path

from zcache_forge.guest import scenarios
from zcache_forge.guest.qemu import GuestRun
from zcache_forge.series import patchbuild


def rec(obj) -> str:
    return "ZCF-RESULT " + json.dumps(obj)


def console(zcache: bool) -> str:
    """A smoke run's console: 96 MiB of text swapped; with zcache, through it."""
    counters = {"pswpout": 9000, "meminfo.SwapTotal_kib": 131068, "meminfo.SwapFree_kib": 60000,
                "frontswap.succ_stores": 20000 if zcache else 0, "frontswap.loads": 15000 if zcache else 0}
    if zcache:
        counters.update({"zcache.pers_puts": 20000, "zcache.failed_pers_puts": 0, "zcache.pers_gets": 15000})
    before = {k: 0 for k in counters} | {"meminfo.SwapTotal_kib": 131068, "meminfo.SwapFree_kib": 131068}
    wl = {"kind": "workload", "id": "w0", "pattern": "text", "bytes": 96 << 20, "pages": 24576,
          "pages_corrupted": 0}
    lines = [
        "Run /init as init process",
        rec({"kind": "boot", "name": "smoke", "nproc": 1, "zcache_enabled": True if zcache else None,
             "zcache_debugfs": zcache}),
        rec({"kind": "counters", "phase": "before", "values": before}),
        rec({**wl, "phase": "run", "passes": 1, "pages_checked": 24576}),
        rec({"kind": "counters", "phase": "pressure", "values": counters}),
        rec({**wl, "phase": "recheck", "passes": 1, "pages_checked": 24576}),
        rec({"kind": "exit", "id": "w0", "status": 0}),
        rec({"kind": "counters", "phase": "after", "values": counters}),
        "ZCF-DONE status=0",
    ]
    return "\r\n".join(lines) + "\r\n"


def judge(booter: patchbuild.Booter, tmp_path: Path, number: int, zcache: bool) -> patchbuild.PatchBoot:
    log = tmp_path / f"console-{number}.log"
    log.write_text(console(zcache))
    run = GuestRun(name="smoke", console_log=log, exit_kind="exit", guest_status=0, qemu_exit_code=1,
                   seconds=21.0, accel="tcg")
    pb = patchbuild.PatchBuild("zcache-staging", number, f"patch {number}", "0" * 40, "pass", 1.0)
    return booter.judge(pb, scenarios.get("smoke"), run)


def test_before_the_glue_the_guest_only_has_to_boot_and_verify(tmp_path):
    booter = patchbuild.Booter(tmp_path)
    first = judge(booter, tmp_path, 1, zcache=False)
    assert first.passed and not first.through_zcache, first.reasons
    assert first.cell() == "pass 21 s (no zcache counters yet)"
    glue = judge(booter, tmp_path, 5, zcache=True)
    assert glue.passed and glue.through_zcache, glue.reasons
    assert glue.cell() == "pass 21 s (zcache)"
    assert booter.zcache_since == "zcache-staging 5"


def test_losing_zcache_after_an_earlier_patch_had_it_fails(tmp_path):
    booter = patchbuild.Booter(tmp_path)
    judge(booter, tmp_path, 5, zcache=True)
    lost = judge(booter, tmp_path, 6, zcache=False)
    assert not lost.passed
    assert lost.reasons == ("zcache did not register (or shows no counters), which it did since patch "
                            "zcache-staging 5",)


def test_send_patches_shows_the_boot_stamp(tmp_path, cache):
    from zcache_forge.series import stamps

    folder = tmp_path / "v1"
    folder.mkdir()
    (folder / "0001-a.patch").write_text("a\n")
    assert stamps.boot_line(stamps.load(folder)) == (
        "boot (smoke, every patch): not run (invoke build-patches --build --boot)")
    stamps.record(folder, "boot", True, {"patches": 9, "through_zcache": [5, 6, 7, 8, 9], "failed": []})
    assert stamps.boot_line(stamps.load(folder)) == (
        "boot (smoke, every patch): passed, 9 patches, through zcache from patch 5")
    stamps.record(folder, "boot", False, {"patches": 9, "failed": ["6 writeback: hang: console silent"]})
    assert stamps.boot_line(stamps.load(folder)) == (
        "boot (smoke, every patch): FAILED: 6 writeback: hang: console silent")
    assert stamps.load(folder).missing() == ["checkpatch", "build"]  # boot is shown, not required


def test_build_patches_stamps_the_boot_of_every_patch(tmp_path, cache):
    from zcache_forge import cli
    from zcache_forge.series import pipeline, stamps

    folder = tmp_path / "v1"
    folder.mkdir()
    (folder / "0001-a.patch").write_text("a\n")
    (folder / "0002-b.patch").write_text("b\n")
    s = pipeline.SeriesResult("zcache-staging", 1, "b", "0" * 40, "0" * 40, ["1" * 40, "2" * 40],
                              [folder / "0001-a.patch", folder / "0002-b.patch"])
    res = pipeline.BuildResult(tmp_path / "series.yaml", "0" * 40, series=[s])
    boots = [patchbuild.PatchBoot("pass", 20.0, False), patchbuild.PatchBoot("pass", 25.0, True)]
    sb = patchbuild.SeriesBuild("zcache-staging", [
        patchbuild.PatchBuild("zcache-staging", i, f"p{i}", c, "pass", 1.0, boot=b)
        for i, (c, b) in enumerate(zip(s.commits, boots, strict=True), 1)])
    cli._record_build_stamps(res, [sb], boot=True)
    stamp = stamps.load(folder)
    assert stamp.passed("build") and stamp.passed("boot")
    assert stamp.checks["boot"]["through_zcache"] == [2]
    assert stamps.boot_line(stamp) == ("boot (smoke, every patch): passed, 2 patches, "
                                       "through zcache from patch 2")
