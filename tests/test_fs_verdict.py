"""The fs job's records and verdict on a console recorded from a real boot of fs-reread
(tests/data/fs-reread.console.log, a kernel without cleancache: no eph counters), and on edits of
it: a wrong page, a missing record, a short pass, and the eph counters the kernel with cleancache
will print. Nothing is built or booted."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from zcache_forge import report
from zcache_forge.guest import judge
from zcache_forge.guest.console import FsRecord, parse_console
from zcache_forge.guest.scenarios import get

from .conftest import recorded

LOG = "fs-reread"
MARK = "ZCF-RESULT "


@pytest.fixture(scope="module")
def text() -> str:
    """The recording, with the hole punch filehog now does between the passes: the run predates it,
    so its mutate and pass2 records get the fields today's filehog prints (P/4 = 2048 pages)."""
    return edit(edit(recorded(LOG), fs_phase("mutate"),
                     lambda o: {**o, "punched": "f000", "punched_first_page": 2048, "punched_pages": 2048}),
                fs_phase("pass2"), lambda o: {**o, "punched_pages_checked": 2048})


def edit(text: str, pick: Callable[[dict[str, Any]], bool], change: Callable[[dict[str, Any]], Any]) -> str:
    """The console with every record that pick() selects changed in place (None from change: the
    line is dropped)."""
    out = []
    for line in text.split("\n"):
        if MARK in line:
            head, _, body = line.partition(MARK)
            obj = json.loads(body.strip())
            if pick(obj):
                changed = change(obj)
                if changed is None:
                    continue
                line = head + MARK + json.dumps(changed, separators=(",", ":")) + "\r"
        out.append(line)
    return "\n".join(out)


def fs_phase(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda o: o.get("kind") == "fs" and o.get("phase") == phase


def verdict(text: str, name: str = "fs-reread", **changes: Any) -> judge.ScenarioResult:
    """The verdict on the console; expect_eph_hits off unless asked for, since the recording's kernel
    had no cleancache."""
    changes.setdefault("expect_eph_hits", False)
    sc = dataclasses.replace(get(name), **changes)
    return judge.judge(sc, text, seconds=60.0, accel="tcg")


def with_eph(text: str, gets: dict[str, int], puts: int = 5000, after_zpages: int = 0,
             param: bool = True, after: dict[str, int] | None = None) -> str:
    """The recording as a kernel with cleancache would print it: zcache's eph counters in every
    counters record (eph_gets by phase) and the cleancache parameter in the boot record."""
    def add(o: dict[str, Any]) -> dict[str, Any]:
        phase = o["phase"]
        g = gets.get(phase, 0)
        o["values"].update({"zcache.eph_puts": 0 if phase == "before" else puts, "zcache.eph_gets": g,
                            "zcache.failed_eph_gets": 10, "zcache.eph_flushes": 7,
                            "zcache.eph_zpages": after_zpages if phase == "after" else 900,
                            "zcache.eph_pageframes": 0 if phase in ("before", "after") else 500,
                            "zcache.eph_pools": 0 if phase in ("before", "after") else 1})
        if phase == "after":
            o["values"].update({f"zcache.{k}": v for k, v in (after or {}).items()})
        return o
    text = edit(text, lambda o: o.get("kind") == "counters", add)
    return edit(text, lambda o: o.get("kind") == "boot", lambda o: {**o, "zcache_cleancache": param})


# ---------------------------------------------------------------- the recording

def test_the_recorded_boot_parses_into_fs_records(text):
    con = parse_console(text)
    assert con.errors == [] and con.done_status == 0 and con.splats == []
    assert [r.phase for r in con.fs] == ["write", "pass1", "mutate", "pass2"]
    assert all(isinstance(r, FsRecord) and r.pages_corrupted == 0 and r.file_errors == 0 for r in con.fs)
    assert [c.phase for c in con.counters] == ["before", "fs-written", "fs-pass1", "fs-mutated", "fs-pass2",
                                               "after"]
    assert con.boots[0].raw["zcache_cleancache"] is None  # this kernel has no cleancache (yet)


def test_the_recorded_boot_passes_with_every_page_verified(text):
    r = verdict(text)
    assert r.passed, r.reasons
    p1, p2 = (next(f for f in r.fs if f["phase"] == p) for p in ("pass1", "pass2"))
    expected = judge.fs_pages_expected(get("fs-reread"), 4096)
    checked = (p1["pages_checked"], p2["pages_checked"])
    assert checked == (expected["pass1"], expected["pass2"]) == (65536, 59392)
    s = r.summary
    assert s["fs_pass1_sectors_read"] == p1["sectors_read"]
    assert s["fs_pass2_sectors_read"] == p2["sectors_read"]
    assert s["fs_pass1_disk_mib"] == round(p1["sectors_read"] * 512 / 2**20, 1)
    assert s["fs_corrupted"] == s["corrupted"] == 0
    assert s["eph_gets"] is None and s["eph_gets_pass2"] is None  # absent, and not required
    # the sectors read per pass are the disk's own counter between the counters records
    c = r.counters
    assert p1["sectors_read"] <= c["fs-pass1"]["fsdisk.sectors_read"] - c["fs-written"]["fsdisk.sectors_read"]


def test_the_table_has_an_fs_part_and_the_json_the_records(text):
    r = verdict(text)
    table = report.render_table([r])
    assert "file-system job" in table and "pass1-disk-MiB" in table and "eph-gets(p1/p2)" in table
    fs_part = table.split("file-system job", 1)[1]
    row = next(ln for ln in fs_part.splitlines() if ln.startswith("fs-reread "))
    for key in ("fs_pass1_disk_mib", "fs_pass2_disk_mib"):
        assert f" {r.summary[key]:,.1f} " in row
    data = json.loads(report.to_json([r]))[0]
    assert [f["phase"] for f in data["fs"]] == ["write", "pass1", "mutate", "pass2"]
    assert data["summary"]["fs_pass2_sectors_read"] == r.summary["fs_pass2_sectors_read"]
    # a scenario without the fs job gets no fs part
    assert "file-system job" not in report.render_table([dataclasses.replace(r, summary={})])


# ---------------------------------------------------------------- failures

def test_a_stale_page_fails_the_run_naming_file_and_page(text):
    bad = "f007 page 12: stale: holds f007 page 12 generation 0 (another generation of this page)"
    broken = edit(text, fs_phase("pass2"),
                  lambda o: {**o, "pages_corrupted": 1, "pages_stale": 1, "bad": [bad]})
    r = verdict(broken)
    assert not r.passed
    assert f"file-system pass2: 1 wrong pages, 1 of them stale (another page's content): {bad}" in r.reasons
    assert r.summary["corrupted"] == 1 and r.summary["fs_stale"] == 1


def test_a_missing_record_or_a_short_pass_fails(text):
    r = verdict(edit(text, fs_phase("pass2"), lambda o: None))
    assert "file-system job: no 'pass2' record from filehog" in r.reasons
    mutated = lambda o: o.get("kind") == "counters" and o["phase"] == "fs-mutated"  # noqa: E731
    r = verdict(edit(text, mutated, lambda o: None))
    assert "file-system job: no 'fs-mutated' counters record" in r.reasons
    r = verdict(edit(text, fs_phase("pass1"), lambda o: {**o, "pages_checked": o["pages_checked"] - 1}))
    assert "file-system pass1: 65535 pages checked, expected 65536: not every page was verified" in r.reasons
    r = verdict(edit(text, fs_phase("pass1"), lambda o: {**o, "disk_stat": False}))
    assert "file-system pass1: no sectors read: filehog could not read /sys/block/vdb/stat" in r.reasons
    r = verdict(edit(text, fs_phase("mutate"), lambda o: {**o, "file_errors": "x"}))
    assert any("console line" in reason and "fs record" in reason for reason in r.reasons), r.reasons


def test_a_wrong_file_fails_the_run(text):
    bad = "f006: exists, but should not (deleted, or not created yet)"
    r = verdict(edit(text, fs_phase("pass2"), lambda o: {**o, "file_errors": 1, "bad": [bad]}))
    assert f"file-system pass2: 1 wrong files: {bad}" in r.reasons


# ---------------------------------------------------------------- cleancache

def test_expect_eph_hits_fails_on_a_kernel_without_cleancache(text):
    r = verdict(text, expect_eph_hits=True)
    assert r.reasons == ["expect_eph_hits: the guest did not report zcache.eph_gets"]
    off = verdict(with_eph(text, {"fs-pass2": 50}, param=False), expect_eph_hits=True)
    assert "expect_eph_hits: zcache's cleancache is off (/sys/module/zcache/parameters/cleancache is N)" \
        in off.reasons


def test_expect_eph_hits_passes_when_pass_two_gets_pages_from_zcache(text):
    eph = with_eph(text, {"fs-pass1": 300, "fs-mutated": 300, "fs-pass2": 2300, "after": 2300})
    r = verdict(eph, expect_eph_hits=True)
    assert r.passed, r.reasons
    s = r.summary
    assert (s["eph_puts"], s["eph_gets"], s["eph_gets_pass1"], s["eph_gets_pass2"]) == (5000, 2300, 300,
                                                                                          2000)
    assert (s["failed_eph_gets"], s["eph_flushes"], s["eph_zpages_after_umount"]) == (10, 7, 0)
    row = next(ln for ln in report.render_fs_table([r]).splitlines() if ln.startswith("fs-reread "))
    assert " on " in row and " 300/2000 " in row
    flat = with_eph(text, {"fs-pass1": 300, "fs-mutated": 300, "fs-pass2": 300})
    none = verdict(flat, expect_eph_hits=True)
    assert "expect_eph_hits: pass 2 got no page back from zcache (eph_gets +0; eph_puts 5000)" \
        in none.reasons


def test_umount_must_flush_the_eph_pages_and_cleancache_off_must_take(text):
    r = verdict(with_eph(text, {}, after_zpages=42))
    assert "after umount zcache still holds ephemeral pages of the file system (eph_zpages 42): " \
        "its cleancache pool was not destroyed" in r.reasons
    off = verdict(with_eph(text, {}), "fs-reread-nocleancache")
    assert "zcache.cleancache=0 did not take: /sys/module/zcache/parameters/cleancache is Y" in off.reasons
    assert "zcache.cleancache=0, yet zcache took 5000 ephemeral pages (eph_puts)" in off.reasons
    quiet = verdict(with_eph(text, {}, puts=0, param=False), "fs-reread-nocleancache")
    assert quiet.passed, quiet.reasons
    assert verdict(text, "fs-reread-nocleancache").passed  # today's kernel: nothing to compare yet


def test_any_eph_level_or_tmem_object_left_after_umount_fails(text):
    """The table of an earlier run showed eph_zpages 4,511 in its eph-zpages column: that was the level
    at the end of pass 2. The verdict reads the counters taken after umount and drop_caches, and every
    eph level there must be 0, the pool count included; with no page held, no tmem object either."""
    r = verdict(with_eph(text, {}, after={"eph_pageframes": 3, "eph_pools": 1}))
    assert "after umount zcache still holds ephemeral pages of the file system (eph_pageframes 3, " \
        "eph_pools 1): its cleancache pool was not destroyed" in r.reasons
    objs = verdict(with_eph(text, {}, after={"obj_count": 2, "objnode_count": 5}))
    assert objs.reasons == ["after umount zcache holds no page, yet tmem objects are left "
                            "(obj_count 2, objnode_count 5)"]
    # swap pages held by zcache keep their objects: no verdict on those
    assert verdict(with_eph(text, {}, after={"obj_count": 2, "pers_zpages": 9})).passed
    clean = verdict(with_eph(text, {}))
    assert clean.passed, clean.reasons
    assert [clean.summary[f"{k}_after_umount"] for k in judge.EPH_LEVELS] == [0, 0, 0, 0]
    row = next(ln for ln in report.render_fs_table([clean]).splitlines() if ln.startswith("fs-reread "))
    assert " 900 " in row and " 0/0/0 " in row  # pass 2's level, then what umount left


def test_the_punched_hole_must_be_checked_in_pass_two(text):
    r = verdict(edit(text, fs_phase("pass2"), lambda o: {**o, "punched_pages_checked": 2000}))
    assert r.reasons == ["file-system pass2: 2000 pages of the punched hole checked, expected 2048"]
    unpunched = edit(text, fs_phase("mutate"), lambda o: {k: v for k, v in o.items() if k != "punched_pages"})
    r = verdict(unpunched)
    assert r.reasons == ["file-system mutate: punched None pages, expected 2048: "
                         "is filehog older than the hole-punch check?"]
    stale = "f000 page 2050: stale: holds f000 page 2050 generation 0 (another generation of this page)"
    r = verdict(edit(text, fs_phase("pass2"), lambda o: {**o, "pages_corrupted": 1, "pages_stale": 1,
                                                         "bad": [stale]}))
    assert f"file-system pass2: 1 wrong pages, 1 of them stale (another page's content): {stale}" in r.reasons


# ---------------------------------------------------------------- a kernel with cleancache

def test_a_recorded_cleancache_boot_passes_and_a_pool_left_after_umount_fails():
    """fs-reread recorded from this series' kernel (the kernel tests' batch, two guests side by side):
    pass 2 got pages back from zcache, the hole read as zeros, and umount left nothing. Edited to
    leave the pool and its frames behind, it fails."""
    text = recorded("fs-reread-cleancache")
    r = verdict(text, expect_eph_hits=True)
    assert r.passed, r.reasons
    s = r.summary
    assert s["eph_gets_pass2"] > 0 and s["fs_pass2_sectors_read"] < s["fs_pass1_sectors_read"]
    assert [s[f"{k}_after_umount"] for k in judge.EPH_LEVELS] == [0, 0, 0, 0]
    assert r.counters["fs-pass2"]["zcache.eph_pools"] == 1 and r.counters["fs-pass2"]["zcache.eph_zpages"] > 0
    leak = edit(text, lambda o: o.get("kind") == "counters" and o["phase"] == "after",
                lambda o: {**o, "values": {**o["values"], "zcache.eph_pools": 1, "zcache.eph_pageframes": 12,
                                           "zcache.obj_count": 3}})
    bad = verdict(leak, expect_eph_hits=True)
    assert bad.reasons == ["after umount zcache still holds ephemeral pages of the file system "
                           "(eph_pageframes 12, eph_pools 1): its cleancache pool was not destroyed",
                           "after umount zcache holds no page, yet tmem objects are left (obj_count 3)"]
