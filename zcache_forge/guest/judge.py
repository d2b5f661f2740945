"""The judging rules: a scenario, its parsed console and how QEMU ended -> a ScenarioResult (the verdict)
with every reason the run failed.

evaluate() is pure: typed records in (console.Console, ktap.KtapResult, RunOutcome), a verdict out.
judge() and judge_run() read the console first (console.parse_console, ktap.parse_ktap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcache_forge.guest import ktap, peerverdict
from zcache_forge.guest.console import (
    CONTEXT_BEFORE,
    TAIL_LINES,
    Console,
    FsRecord,
    ParseError,
    Splat,
    parse_console,
)
from zcache_forge.guest.ktap import KtapResult
from zcache_forge.guest.peerverdict import PeerOutcome
from zcache_forge.guest.qemu import GuestRun
from zcache_forge.guest.scenarios import FS_PHASES, Scenario

MIB = 1 << 20
SECTOR = 512
# filehog's actions, in the order /init runs them
FS_ACTIONS = ("write", "pass1", "mutate", "pass2")
# zcache's cleancache counters (debugfs) the fs job reports, when the kernel has them
EPH_COUNTERS = ("eph_puts", "failed_eph_puts", "eph_gets", "failed_eph_gets", "eph_flushes", "eph_zpages",
                "eph_pageframes", "evicted_eph_pageframes")
# what zcache holds for cleancache: all of it must be gone once the file system is unmounted
EPH_LEVELS = ("eph_zpages", "eph_zbytes", "eph_pageframes", "eph_pools")


@dataclass(frozen=True)
class RunOutcome:
    """How QEMU ended, as far as the verdict cares."""

    # "exit", "reset", "hang", "timeout", "qemu-error" (qemu.GuestRun.exit_kind), "lava-error" (a LAVA
    # job that ended before the guest did: ended_by names the job, LAVA's errors and the log), "peer-error"
    # (a two-guest run whose peer never became ready: ended_by says why, naming its log)
    exit_kind: str = "exit"
    guest_status: int | None = 0
    seconds: float = 0.0
    accel: str = ""
    qemu_stderr: str = ""
    console_log: Path | None = None
    ended_by: str = "guest"  # the watchdog's words when it killed QEMU
    last_console: str = ""  # the console's last line when the run ended ("": take it from the console)
    max_silence_s: float | None = None  # the console's longest silence (None: not measured)


@dataclass
class ScenarioResult:
    """The verdict on one run of a scenario."""

    name: str
    backend: str
    passed: bool
    reasons: list[str]
    workloads: list[dict[str, Any]]  # memhog's records as printed, run and recheck phases
    counters: dict[str, dict[str, float]]  # phase -> counter -> value
    accelerator: str
    seconds: float
    splats: list[Splat]
    exit_kind: str
    guest_status: int | None
    boot: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)  # swapoff timing etc.
    summary: dict[str, float | None] = field(default_factory=dict)
    console_log: str | None = None
    kunit: list[KtapResult] = field(default_factory=list)  # KUnit results, when the kernel has tests
    parse_errors: list[ParseError] = field(default_factory=list)  # ZCF-RESULT lines that could not be read
    # what ended the run: "guest", "hang: console silent for 120 s", "timeout: wall-clock limit 900 s"
    ended_by: str = "guest"
    last_console: str = ""  # the console's last line when the run ended
    max_silence_s: float | None = None  # the console's longest silence (None: not measured)
    fs: list[dict[str, Any]] = field(default_factory=list)  # filehog's records as printed (the fs job)
    peer: dict[str, Any] | None = None  # a two-guest run: its peer B (peerverdict.peer_record) and story


Verdict = ScenarioResult


# ---------------------------------------------------------------- rules

def counters_by_phase(con: Console) -> dict[str, dict[str, float]]:
    return {rec.phase: rec.values for rec in con.counters}


def _delta(counters: dict[str, dict[str, float]], key: str, start: str, end: str) -> float | None:
    a, b = counters.get(start, {}).get(key), counters.get(end, {}).get(key)
    return None if a is None or b is None else b - a


def what_ended(out: RunOutcome, scenario: Scenario) -> str:
    """The watchdog's words for a killed run ("guest" when QEMU exited by itself)."""
    if out.exit_kind not in ("hang", "timeout") or out.ended_by not in ("", "guest"):
        return out.ended_by or "guest"
    if out.exit_kind == "hang":
        return f"hang: console silent for {scenario.silence_timeout_s} s"
    return f"timeout: wall-clock limit {scenario.wall_limit_s} s"


def exit_reasons(out: RunOutcome, scenario: Scenario, last_console: str = "") -> list[str]:
    if out.exit_kind in ("hang", "timeout"):
        return [f"{what_ended(out, scenario)}: QEMU was killed after {out.seconds:.0f} s; the console said "
                f"last: {last_console or '(nothing)'!r}"]
    if out.exit_kind == "qemu-error":
        said = out.qemu_stderr.strip().splitlines()[-1:] or ["(nothing on stderr)"]
        return [f"QEMU failed: {said[0]}"]
    if out.exit_kind in ("lava-error", "peer-error"):
        return [out.ended_by]
    if out.exit_kind == "reset":
        return ["the guest rebooted or halted instead of exiting through isa-debug-exit "
                "(kernel panic, or /init died)"]
    if out.guest_status not in (0, None):
        return [f"the guest exited with status {out.guest_status}"]
    return []


def boot_reasons(con: Console, scenario: Scenario | None = None) -> list[str]:
    if con.boots:
        nproc = con.boots[-1].nproc
        if scenario is not None and nproc is not None and nproc < scenario.cpus:
            return [f"the guest has {nproc} CPU(s) but the scenario asks for {scenario.cpus}: "
                    "the kernel did not find them (CONFIG_ACPI?)"]
        return []
    tail = "\n".join(f"    {ln}" for ln in con.tail) or "    (the console is empty)"
    return [f"the guest never booted (no boot record); last {TAIL_LINES} console lines:\n{tail}"]


def parse_error_reason(err: ParseError) -> str:
    if err.unreadable:
        return f"unreadable ZCF-RESULT line at console line {err.line}: {err.text[:200]}"
    return f"malformed console records: console line {err.line}: {err.kind} record: {err.why}"


def done_reasons(con: Console) -> list[str]:
    reasons = [f"guest /init: {rec.message}" for rec in con.guest_errors]
    if con.done_status is None:
        reasons.append("no ZCF-DONE line: the guest stopped before /init finished")
    elif con.done_status != 0:
        reasons.append(f"/init finished with ZCF-DONE status={con.done_status}")
    return reasons + [parse_error_reason(e) for e in con.errors]


def workload_reasons(scenario: Scenario, con: Console, lost_ok: bool = False) -> list[str]:
    """Every workload ran and rechecked, every page checked, none wrong. A page lost to SIGBUS is a
    failure unless loads failed on purpose (load_fail_percent) or lost_ok (the peer holding it was killed,
    or stopped long enough for A's requests to it to time out)."""
    reasons = []
    records = con.workloads
    sigbus = 0
    for i, w in enumerate(scenario.workloads):
        wid = f"w{i}"
        label = f"workload {wid} ({w.size_mib} MiB {w.pattern})"
        for phase in ("run", "recheck"):
            recs = [r for r in records if r.id == wid and r.phase == phase]
            if not recs:
                reasons.append(f"{label}: no {phase!r} result")
                continue
            rec = recs[-1]
            if rec.pages_corrupted:
                reasons.append(f"{label}: {rec.pages_corrupted} corrupted pages in the {phase!r} phase")
            sigbus += rec.pages_sigbus
            if rec.pages_sigbus and not (scenario.load_fail_percent or lost_ok):
                reasons.append(f"{label}: {rec.pages_sigbus} pages raised SIGBUS in the {phase!r} phase "
                               "(the kernel could not read them back)")
            passes = rec.passes if phase == "run" else 1
            expected = rec.pages * passes
            if rec.pages_checked != expected:
                reasons.append(f"{label}: {rec.pages_checked} pages checked in the {phase!r} "
                               f"phase, expected {expected}: not every page was verified")
            verified = rec.raw.get("pages_verified")  # memhog counts intact pages; a lost one never is
            if isinstance(verified, int) and not rec.pages_sigbus and not rec.pages_corrupted \
                    and verified != rec.pages_checked:
                reasons.append(f"{label}: {verified} of {rec.pages_checked} page checks verified in the "
                               f"{phase!r} phase, with no page lost or wrong")
    if scenario.load_fail_percent and not sigbus and records:
        reasons.append("zcache loads were made to fail, yet no workload page raised SIGBUS: "
                       "a failed load must never pass for a good page")
    return reasons


def fs_pages_expected(scenario: Scenario, page_size: int) -> dict[str, int]:
    """Pages each read pass must check, as filehog's mutate leaves the file set (qemu/filehog.c):
    pass 1 every page; pass 2 without the deleted file, with the truncated file at P/2 + P/4 pages
    and the new file's P/2 (the punched hole of file 0, P/4 pages, keeps the file's size: its pages
    are checked, as zeros)."""
    p = scenario.fs_mib * MIB // page_size // scenario.fs_files
    return {"pass1": scenario.fs_files * p, "pass2": (scenario.fs_files - 2) * p + p // 2 + p // 4 + p // 2,
            "punched": p // 4}


def _eph_delta(counters: dict[str, dict[str, float]], name: str, start: str, end: str) -> float | None:
    return _delta(counters, f"zcache.{name}", start, end)


def fs_reasons(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]]) -> list[str]:
    """The file-system job: every action reported, every page of both passes checked and intact
    (any wrong page is named), the disk's counters and the kernel's counters after every step."""
    reasons = []
    by_phase = {r.phase: r for r in con.fs}
    for action in FS_ACTIONS:
        if action not in by_phase:
            reasons.append(f"file-system job: no {action!r} record from filehog")
    for phase in ("pass1", "pass2"):
        rec = by_phase.get(phase)
        if rec is None:
            continue
        named = "; ".join(rec.bad)
        if rec.pages_corrupted:
            stale = f", {rec.pages_stale} of them stale (another page's content)" if rec.pages_stale else ""
            reasons.append(f"file-system {phase}: {rec.pages_corrupted} wrong pages{stale}: {named}")
        if rec.file_errors:
            reasons.append(f"file-system {phase}: {rec.file_errors} wrong files: {named}")
        want = fs_pages_expected(scenario, rec.page_size)[phase]
        if rec.pages_checked != want:
            reasons.append(f"file-system {phase}: {rec.pages_checked} pages checked, expected {want}: "
                           "not every page was verified")
        if rec.sectors_read is None:
            reasons.append(f"file-system {phase}: no sectors read: filehog could not read "
                           f"/sys/block/{scenario.fs_disk}/stat")
    reasons += punch_reasons(scenario, by_phase)
    # the mixed job's pressure record is the workloads' (swap_reasons says when it is missing)
    for phase in ("before", *FS_PHASES, scenario.final_phase):
        if phase not in counters:
            reasons.append(f"file-system job: no {phase!r} counters record")
    pass2 = counters.get("fs-pass2", {})
    if scenario.backend == "zcache" and pass2 and "zcache.pers_puts" not in pass2:
        reasons.append("no zcache counters in /sys/kernel/debug/zcache: is zcache built in "
                       "(CONFIG_ZCACHE=y, CONFIG_DEBUG_FS=y) and not disabled?")
    return reasons + cleancache_reasons(scenario, con, counters)


def punch_reasons(scenario: Scenario, by_phase: dict[str, FsRecord]) -> list[str]:
    """mutate punches a hole of P/4 pages in file 0 (after dropping them from the page cache, so
    cleancache had copies); pass 2 must have checked every page of it, as zeros."""
    mutate, pass2 = by_phase.get("mutate"), by_phase.get("pass2")
    if mutate is None or pass2 is None:
        return []
    want = fs_pages_expected(scenario, pass2.page_size)["punched"]
    if mutate.raw.get("punched_pages") != want:
        return [f"file-system mutate: punched {mutate.raw.get('punched_pages')} pages, expected {want}: "
                "is filehog older than the hole-punch check?"]
    checked = pass2.raw.get("punched_pages_checked")
    if checked != want:
        return [f"file-system pass2: {checked} pages of the punched hole checked, expected {want}"]
    return []


def final_counters(scenario: Scenario, counters: dict[str, dict[str, float]]) -> dict[str, float]:
    """The last counters record, taken after the umount: after swapoff when the workloads recheck (or
    "after" when swapoff failed and /init went on), else after."""
    return counters.get(scenario.final_phase) or counters.get("after", {})


def eph_left_reasons(after: dict[str, float]) -> list[str]:
    """After umount and drop_caches the file system's ephemeral pool is destroyed: every eph
    level is 0, and when zcache holds no swap page no tmem object is left either (after is the
    final counters record: the fs job's after umount, the mixed job's after swapoff)."""
    left = [f"{k} {after[f'zcache.{k}']:.0f}" for k in EPH_LEVELS if after.get(f"zcache.{k}")]
    reasons = []
    if left:
        reasons.append(f"after umount zcache still holds ephemeral pages of the file system "
                       f"({', '.join(left)}): its cleancache pool was not destroyed")
    pers = [after.get(f"zcache.{k}") for k in ("pers_zpages", "zero_filled_pages")]
    if "zcache.eph_zpages" in after and pers == [0, 0]:
        objs = [f"{k} {after[f'zcache.{k}']:.0f}" for k in ("obj_count", "objnode_count")
                if after.get(f"zcache.{k}")]
        if objs:
            reasons.append(f"after umount zcache holds no page, yet tmem objects are left "
                           f"({', '.join(objs)})")
    return reasons


def cleancache_reasons(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]]) -> list[str]:
    """What holds of zcache's ephemeral pages when the kernel reports them (a kernel without
    cleancache reports none, and only expect_eph_hits asks for them)."""
    reasons = []
    param = con.boots[-1].raw.get("zcache_cleancache") if con.boots else None
    puts = _eph_delta(counters, "eph_puts", "before", "fs-pass2")
    if not scenario.cleancache:
        if param is True:
            reasons.append("zcache.cleancache=0 did not take: /sys/module/zcache/parameters/cleancache is Y")
        if puts:
            reasons.append(f"zcache.cleancache=0, yet zcache took {puts:.0f} ephemeral pages (eph_puts)")
    reasons += eph_left_reasons(final_counters(scenario, counters))
    if scenario.expect_eph_hits:
        gets = _eph_delta(counters, "eph_gets", "fs-mutated", "fs-pass2")
        if param is False:  # absent is fine: a parameter without a sysfs file; eph_gets tells
            reasons.append("expect_eph_hits: zcache's cleancache is off "
                           "(/sys/module/zcache/parameters/cleancache is N)")
        if gets is None:
            reasons.append("expect_eph_hits: the guest did not report zcache.eph_gets")
        elif gets <= 0:
            reasons.append(f"expect_eph_hits: pass 2 got no page back from zcache (eph_gets +0; eph_puts "
                           f"{'-' if puts is None else f'{puts:.0f}'})")
    return reasons


def swapped_out(counters: dict[str, dict[str, float]], start: str, end: str) -> float | None:
    """Pages that left memory for swap between two phases: to the disk (pswpout) or to the frontswap
    backend (frontswap.succ_stores); None when neither is reported."""
    known = [d for d in (_delta(counters, "pswpout", start, end),
                         _delta(counters, "frontswap.succ_stores", start, end)) if d is not None]
    return sum(known) if known else None


def mixed_reasons(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]]) -> list[str]:
    """The mixed job: the fs job ran beside the workloads (its fs-job step), they started together, and
    swap went on while the fs job's file pages were in the pool (between fs-written, when the dropped
    page cache went to cleancache, and the end of pass 2): swap and page cache competed."""
    step = con.fs_job
    if step is None:
        return ["mixed job: no 'fs-job' step record: /init did not run the file-system job beside the "
                "workloads (is qemu/init older than the mixed job?)"]
    reasons = []
    if step.workloads_running_at_start < len(scenario.workloads):
        reasons.append(f"mixed job: only {step.workloads_running_at_start} of {len(scenario.workloads)} "
                       "workloads were in their run phase when the file-system job began")
    out = swapped_out(counters, "fs-written", "fs-pass2")
    if out is not None and out <= 0:
        reasons.append("mixed job: nothing was swapped out while the file-system job read its files "
                       "(pswpout and frontswap stores +0 from fs-written to fs-pass2): swap and page cache "
                       "did not compete (raise the workloads' size_mib or passes)")
    return reasons


def mixed_summary(con: Console, counters: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """The mixed job's figures: how long the fs job ran, what was swapped out while its pages were in
    the pool, and what zcache's pools did to each other (pressure: after both jobs)."""
    step = con.fs_job
    pressure = counters.get("pressure", {})
    return {
        "fs_job_s": None if step is None or step.start_s is None or step.end_s is None
        else round(step.end_s - step.start_s, 2),
        "workloads_running_at_fs_end": None if step is None else step.workloads_running_at_end,
        "pswpout_during_fs": _delta(counters, "pswpout", "fs-written", "fs-pass2"),
        "pers_puts_during_fs": _delta(counters, "zcache.pers_puts", "fs-written", "fs-pass2"),
        # of those, the ones the backend kept (zcache refuses puts at its pool limit)
        "frontswap_stores_during_fs": _delta(counters, "frontswap.succ_stores", "fs-written", "fs-pass2"),
        "pers_puts_took_eph_frame": pressure.get("zcache.pers_puts_took_eph_frame"),
        "evicted_eph_pageframes_pressure": pressure.get("zcache.evicted_eph_pageframes"),
    }


def fs_summary(scenario: Scenario, con: Console,
               counters: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """The fs job's figures: MiB the disk read per pass (sectors), seconds per pass, the eph counters
    at the end of pass 2, eph_gets per pass, the eph levels after umount (the final record)."""
    by_phase = {r.phase: r for r in con.fs}
    out: dict[str, float | None] = {}
    write = by_phase.get("write")
    out["fs_written_mib"] = None if write is None or write.bytes is None else round(write.bytes / MIB, 1)
    for phase in ("pass1", "pass2"):
        rec = by_phase.get(phase)
        sectors = None if rec is None else rec.sectors_read
        out[f"fs_{phase}_sectors_read"] = sectors
        out[f"fs_{phase}_disk_mib"] = None if sectors is None else round(sectors * SECTOR / MIB, 1)
        out[f"fs_{phase}_mib"] = None if rec is None or rec.bytes is None else round(rec.bytes / MIB, 1)
        out[f"fs_{phase}_s"] = None if rec is None or rec.elapsed_s is None else round(rec.elapsed_s, 2)
    end = counters.get("fs-pass2", {})
    for name in EPH_COUNTERS:
        out[name] = end.get(f"zcache.{name}")
    out["eph_gets_pass1"] = _eph_delta(counters, "eph_gets", "fs-written", "fs-pass1")
    out["eph_gets_pass2"] = _eph_delta(counters, "eph_gets", "fs-mutated", "fs-pass2")
    after = final_counters(scenario, counters)
    for name in EPH_LEVELS:
        out[f"{name}_after_umount"] = after.get(f"zcache.{name}")
    out["fs_corrupted"] = sum(r.pages_corrupted for r in con.fs)
    out["fs_stale"] = sum(r.pages_stale for r in con.fs)
    out["fs_file_errors"] = sum(r.file_errors for r in con.fs)
    return out


def swap_used_kib(values: dict[str, float]) -> float | None:
    """Swap in use (KiB) in one counters record; frontswap'd pages hold swap slots too."""
    total, free = values.get("meminfo.SwapTotal_kib"), values.get("meminfo.SwapFree_kib")
    return None if total is None or free is None else total - free


def swapped(counters: dict[str, dict[str, float]]) -> bool | None:
    """Whether pages were swapped out in the run phase; None if nothing tells.

    pswpout counts only pages written to the disk (and only with
    CONFIG_VM_EVENT_COUNTERS), so swap in use and frontswap stores count too.
    """
    pressure = counters.get("pressure", {})
    signs = [_delta(counters, "pswpout", "before", "pressure"), swap_used_kib(pressure),
             _delta(counters, "frontswap.succ_stores", "before", "pressure")]
    known = [v for v in signs if v is not None]
    return any(v > 0 for v in known) if known else None


def swap_reasons(counters: dict[str, dict[str, float]]) -> list[str]:
    if "pressure" not in counters:
        return ["no 'pressure' counters record: the run phase did not complete"]
    if swapped(counters) is False:
        return ["nothing was swapped out during the run phase: the workloads fit in RAM, "
                "so nothing was tested (raise size_mib or lower memory_mib)"]
    return []


def zcache_reasons(counters: dict[str, dict[str, float]]) -> list[str]:
    pressure = counters.get("pressure")
    if pressure is None:
        return []
    if "zcache.pers_puts" not in pressure:
        return ["no zcache counters in /sys/kernel/debug/zcache: is zcache built in "
                "(CONFIG_ZCACHE=y, CONFIG_DEBUG_FS=y) and not disabled?"]
    if not swapped(counters):
        return []
    reasons = []
    stored = pressure["zcache.pers_puts"] - pressure.get("zcache.failed_pers_puts", 0)
    if stored <= 0:
        reasons.append(f"pages were swapped but zcache stored none "
                       f"(pers_puts {pressure['zcache.pers_puts']:.0f}, all refused)")
    if pressure.get("frontswap.succ_stores", 0) <= 0:
        reasons.append("pages were swapped but frontswap.succ_stores is 0: "
                       "zcache is not the active frontswap backend")
    return reasons


def expect_reasons(scenario: Scenario, counters: dict[str, dict[str, float]]) -> list[str]:
    reasons = []
    for e in scenario.expect:
        values = counters.get(e.phase)
        if values is None:
            reasons.append(f"expect '{e}': no {e.phase!r} counters record")
        elif e.key not in values:
            who = "peer B" if e.key.startswith(peerverdict.COUNTER_PREFIX) else "the guest"
            reasons.append(f"expect '{e}': {who} did not report {e.key}")
        elif not e.holds(values[e.key]):
            reasons.append(f"expect '{e}' failed: {e.key} is {values[e.key]:g}")
    return reasons


def kunit_reasons(results: list[KtapResult]) -> list[str]:
    """One reason per failing KUnit result; a suite or case that failed only because some of its
    cases or parameters failed is not listed again."""
    failed = [r for r in results if r.status == "not ok"]
    reasons = []
    for r in failed:
        if r.case is None and any(f.suite == r.suite and f.case is not None for f in failed):
            continue
        if r.param is None and r.case is not None and any(
                f.suite == r.suite and f.case == r.case and f.param is not None for f in failed):
            continue
        reasons.append(f"KUnit {r.label}: not ok (console line {r.line})" + (f": {r.note}" if r.note else ""))
    for r in results:
        if r.status == "incomplete":
            reasons.append(f"KUnit {r.label}: incomplete at console line {r.line}: {r.note}")
    return reasons


def splat_reasons(splats: list[Splat]) -> list[str]:
    reasons = []
    for s in splats:
        first = s.text.splitlines()[min(CONTEXT_BEFORE, s.line - 1)]  # the matching line
        reasons.append(f"kernel {s.kind} at console line {s.line}: {first.strip()}")
    return reasons


def summary(con: Console, counters: dict[str, dict[str, float]]) -> dict[str, float | None]:
    pressure = counters.get("pressure", {})
    after = counters.get("after-swapoff", counters.get("after", {}))
    puts = pressure.get("zcache.pers_puts")
    used = swap_used_kib(pressure)
    swapoff = next((s for s in con.steps if s.step == "swapoff"
                    and s.start_s is not None and s.end_s is not None), None)
    return {
        "swap_used_mib": None if used is None else round(used / 1024, 1),
        "pswpout": _delta(counters, "pswpout", "before", "pressure"),
        "zcache_stored": None if puts is None else puts - pressure.get("zcache.failed_pers_puts", 0),
        "zcache_refused": pressure.get("zcache.failed_pers_puts"),
        "frontswap_stores": pressure.get("frontswap.succ_stores"),
        "frontswap_failed": pressure.get("frontswap.failed_stores"),
        "frontswap_loads": after.get("frontswap.loads"),
        "corrupted": sum(w.pages_corrupted for w in con.workloads) + sum(r.pages_corrupted for r in con.fs),
        "sigbus": sum(w.pages_sigbus for w in con.workloads),
        "swapoff_s": None if swapoff is None else round(swapoff.end_s - swapoff.start_s, 2),
    }


# ---------------------------------------------------------------- the verdict

def evaluate(scenario: Scenario, con: Console, kunit: list[KtapResult],
             outcome: RunOutcome = RunOutcome(), peer: PeerOutcome | None = None) -> ScenarioResult:
    """The verdict on one run: every rule applied to the parsed console and how QEMU ended (and, for a
    two-guest run, to its peer's: peerverdict)."""
    counters = counters_by_phase(con)
    if peer is not None:
        peerverdict.merge_counters(counters, peer.console)
    last_console = outcome.last_console or (con.tail[-1] if con.tail else "")
    reasons = exit_reasons(outcome, scenario, last_console)
    if outcome.exit_kind != "peer-error":  # A never ran
        reasons += boot_reasons(con, scenario)
    if con.boots:
        lost_ok = peer is not None and peer.disrupted  # the host really killed or stopped B
        reasons += done_reasons(con) + workload_reasons(scenario, con, lost_ok)
        if scenario.fs_mib:  # the file-system job, alone (nothing need swap) or beside the workloads
            reasons += fs_reasons(scenario, con, counters)
        if scenario.workloads:
            reasons += swap_reasons(counters)
            if scenario.backend == "zcache":
                reasons += zcache_reasons(counters)
        if scenario.mixed:
            reasons += mixed_reasons(scenario, con, counters)
        reasons += expect_reasons(scenario, counters)
    reasons += kunit_reasons(kunit)
    reasons += splat_reasons(con.splats)
    peer_summary: dict[str, float | None] = {}
    peer_rec = None
    if peer is not None:
        reasons += peerverdict.peer_reasons(scenario, con, counters, peer)
        peer_summary = peerverdict.peer_summary(scenario, con, counters, peer)
        line = peerverdict.story(scenario, con, peer_summary, peer)
        peer_rec = peerverdict.peer_record(scenario, peer, line)
    return ScenarioResult(
        name=scenario.name, backend=scenario.backend, passed=not reasons, reasons=reasons,
        workloads=[w.raw for w in con.workloads], counters=counters, accelerator=outcome.accel,
        seconds=round(outcome.seconds, 2), splats=con.splats, exit_kind=outcome.exit_kind,
        guest_status=outcome.guest_status, boot=con.boots[0].raw if con.boots else None,
        steps=[s.raw for s in con.steps],
        summary={**summary(con, counters), **(fs_summary(scenario, con, counters) if scenario.fs_mib else {}),
                 **(mixed_summary(con, counters) if scenario.mixed else {}), **peer_summary},
        console_log=str(outcome.console_log) if outcome.console_log else None, kunit=kunit,
        parse_errors=con.errors, ended_by=what_ended(outcome, scenario), last_console=last_console,
        max_silence_s=outcome.max_silence_s, fs=[r.raw for r in con.fs], peer=peer_rec)


def judge(scenario: Scenario, console_text: str, *, exit_kind: str = "exit", guest_status: int | None = 0,
          seconds: float = 0.0, accel: str = "", qemu_stderr: str = "", console_log: Path | None = None,
          kunit_src: Path | None = None, ended_by: str = "guest", last_console: str = "",
          max_silence_s: float | None = None, peer: PeerOutcome | None = None) -> ScenarioResult:
    """Judge one run of scenario from its console text and how QEMU ended. KTAP on the console is read
    with the KUnit parser of the kernel tree kunit_src (default: ktap.default_source()). peer: a
    two-guest run's peer B (peerverdict.from_run)."""
    con = parse_console(console_text)
    return evaluate(scenario, con, ktap.parse_ktap(con.lines, kunit_src),
                    RunOutcome(exit_kind, guest_status, seconds, accel, qemu_stderr, console_log, ended_by,
                               last_console, max_silence_s), peer)


def judge_run(scenario: Scenario, run: GuestRun, kunit_src: Path | None = None) -> ScenarioResult:
    """Judge a finished QEMU run (reads its console log)."""
    try:
        text = run.console_log.read_text(errors="replace")
    except FileNotFoundError:
        text = ""
    return judge(scenario, text, exit_kind=run.exit_kind, guest_status=run.guest_status,
                 seconds=run.seconds, accel=run.accel, qemu_stderr=run.qemu_stderr,
                 console_log=run.console_log, kunit_src=kunit_src, ended_by=run.ended_by,
                 last_console=run.last_console, max_silence_s=run.max_silence_s,
                 peer=peerverdict.from_run(run.peer) if run.peer is not None else None)
