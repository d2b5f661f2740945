"""bench: the same kernel image, the same scenarios, one boot per backend, disk model and repetition.

Backends: zcache, zswap with zbud, zswap with zsmalloc, and no frontswap backend (plain
swap to the virtio disk); and, when asked for, ramster: zcache with a peer guest its pool remotifies
pages to (a two-guest run, guest/pair.py), whose figures add the remote puts and gets and the mean
time of a remote get. Every backend runs on each swap-disk model (qemu.DISK_MODELS:
a throttled SSD by default, and the unthrottled host file for comparison). Figures are
medians over repetitions, with min and max. The tables and the chart are report's.

A cell that cannot run or be judged (QEMU fails to start, the guest dies, a console record is cut
short or malformed) is a failed cell with its reason; the rest of the matrix still runs.

Runners (guest/runners.py): local and lava-run boot one guest at a time, cell by cell. lava submits
the whole matrix to the lab as a batch, one LAVA job per run, and gathers the runs as their jobs
finish (lava/server.py run_batch); each is judged by the same code, and the results come out in
the matrix's order whatever order the jobs finish in."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zcache_forge import kernel, report
from zcache_forge.errors import ForgeError
from zcache_forge.guest import initramfs, judge, qemu, runners, scenarios
from zcache_forge.guest.peer import COUNTER_PREFIX, PeerSpec

if TYPE_CHECKING:  # qemutest imports report, which imports this module
    from zcache_forge.guest.qemutest import KernelImage
    from zcache_forge.lava.server import LabConfig

log = logging.getLogger(__name__)

PAGE = 4096


@dataclass(frozen=True)
class Backend:
    name: str
    backend: str
    zpool: str | None = None
    peer: bool = False  # zcache with a peer guest (RAMster): the scenario's peer, or a default one


BACKENDS = (
    Backend("zcache", "zcache"),
    Backend("zswap-zbud", "zswap", "zbud"),
    Backend("zswap-zsmalloc", "zswap", "zsmalloc"),
    Backend("plain-swap", "none"),
    Backend("ramster", "zcache", peer=True),
)
DEFAULT_BACKENDS = BACKENDS[:4]  # ramster only when asked for: it boots two guests per run
REFERENCE = "zswap-zbud"   # throughput and elapsed are given as ratios to this backend
BASELINE = "plain-swap"    # swap-device I/O reduction is measured against this one
DEFAULT_SCENARIOS = ("bench-mixed", "bench-zero", "bench-text")
# The RAM budget every compressing backend gets (zcache.max_pool_percent= and
# zswap.max_pool_percent=): the same for both, so density and swap I/O compare
# at equal cost. zswap's own default is 20, zcache's is the series' knob.
POOL_PERCENT_DEFAULT = scenarios.DEFAULT_POOL_PERCENT  # zswap's default, and zcache's
# A device with a real device's speed, so the time compression saves shows; and the host file,
# as before, for comparison. The first throttled model is the one the swap I/O figures come from.
DEFAULT_DISKS = ("ssd", "host")
UNTHROTTLED = qemu.DEFAULT_DISK
# fields of a workload's "run" record that the figures need
RUN_FIELDS = ("bytes", "passes", "elapsed_s")


class MalformedRecords(ForgeError):
    """A run's console records lack a field the figures need, or hold a non-number there."""


def choose_disks(names: list[str] | None) -> tuple[str, ...]:
    """The disk models to bench on (default: DEFAULT_DISKS), duplicates dropped, throttled ones first
    in the order given and the unthrottled host last. The names are not checked here: --disk is
    checked by options.BenchOptions before any work, and qemu.run_guest refuses an unknown model."""
    wanted = list(dict.fromkeys(names or DEFAULT_DISKS))
    return tuple([n for n in wanted if n != UNTHROTTLED] + [n for n in wanted if n == UNTHROTTLED])


def _number(rec: dict[str, Any], key: str, where: str) -> float:
    value = rec.get(key)
    if value is None:
        raise MalformedRecords(f"{where} has no {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedRecords(f"{where}: {key!r} is not a number: {value!r}")
    return value


def _workload_figures(workloads: list[dict[str, Any]]) -> tuple[float, float | None, float]:
    """(bytes moved, elapsed seconds of the slowest, pages corrupted) over the workloads' records."""
    moved, elapsed, corrupted = 0.0, None, 0.0
    for w in workloads:
        where = f"workload record {w.get('id', '?')} ({w.get('phase', 'no phase')})"
        if "pages_corrupted" in w:
            corrupted += _number(w, "pages_corrupted", where)
        if w.get("phase") != "run":
            continue
        size, passes, secs = (_number(w, k, where) for k in RUN_FIELDS)
        moved += size * (1 + passes)  # fill plus every pass
        elapsed = secs if elapsed is None else max(elapsed, secs)
    return moved, elapsed, corrupted


def hit_rate(loads: float | None, pswpin: float | None) -> float | None:
    """The share of swap-ins the frontswap backend served: loads / (loads + pswpin).

    None when a counter is missing or nothing was swapped in at all."""
    if loads is None or pswpin is None or loads + pswpin <= 0:
        return None
    return loads / (loads + pswpin)


def metrics(res: judge.ScenarioResult) -> dict[str, float | None]:
    """The raw figures of one run, over its measured phase (from "before" to "pressure").

    MalformedRecords if a record lacks a field the figures need."""
    c = res.counters
    before, pressure = c.get("before", {}), c.get("pressure", {})

    def delta(key: str) -> float | None:
        if key not in pressure:
            return None
        return pressure[key] - before.get(key, 0)

    def need(key: str) -> float:
        if key not in pressure:
            raise MalformedRecords(f"the 'pressure' counters have no {key!r}")
        return pressure[key]

    moved, elapsed, corrupted = _workload_figures(res.workloads)
    stored = zero = frames = held = written_back = None
    rejects: dict[str, float] = {}
    if "zcache.pers_zpages" in pressure:
        zero = pressure.get("zcache.zero_filled_pages", 0)
        stored = pressure["zcache.pers_zpages"] + zero
        frames = need("zcache.pers_pageframes")
        held = pressure.get("zcache.pers_pageframes_max", frames) * PAGE
        written_back = delta("zcache.written_back_pages")
        for k in ("compress_poor", "pool_limit_hit", "failed_alloc", "failed_get_free_pages",
                  "compress_failed", "bad_offset"):
            rejects[k] = pressure.get(f"zcache.{k}", 0)
    elif "zswap.stored_pages" in pressure:
        zero = pressure.get("zswap.same_filled_pages", 0)
        stored = pressure["zswap.stored_pages"]
        frames = pressure.get("zswap.pool_total_size", 0) / PAGE
        held = pressure.get("zswap.pool_total_size", 0)  # zswap keeps no peak: the value under pressure
        written_back = delta("zswap.written_back_pages")
        for k in ("reject_compress_poor", "reject_alloc_fail", "reject_kmemcache_fail",
                  "reject_reclaim_fail", "pool_limit_hit"):
            rejects[k] = pressure.get(f"zswap.{k}", 0)
    pswpin = delta("pswpin")
    return {
        **fs_metrics(res, delta),
        **ramster_metrics(res, delta),
        "pswpout": delta("pswpout"),
        "pswpin": pswpin,
        "hit_rate": hit_rate(delta("frontswap.loads"), pswpin),
        # pages the backend wrote back to the swap device when its pool was full
        "written_back": written_back,
        "stored_pages": stored,
        "pageframes": frames,
        "zero_pages": zero,
        # compressed (non-zero) pages per page frame: zbud's ceiling is 2
        "density": ((stored - (zero or 0)) / frames) if stored is not None and frames else None,
        "ram_held_bytes": held,
        "throughput_mbps": (moved / 2**20 / elapsed) if elapsed else None,
        "elapsed_s": elapsed,
        "corrupted": corrupted,
        **{f"reject.{k}": v for k, v in rejects.items()},
    }


# the file-system job's figures in a bench run (a scenario with fs_mib): what the fs disk read in each
# read pass, and how zcache's ephemeral pages fared beside the swap pages (zcache only; "-" for zswap,
# which has no cleancache, and plain swap)
FS_FIGURES = ("fs_pass1_disk_mib", "fs_pass2_disk_mib", "eph_puts", "eph_gets", "eph_gets_pass2",
              "evicted_eph_pageframes", "pers_puts_took_eph_frame", "fs_corrupted")


def fs_metrics(res: judge.ScenarioResult, delta: Callable[[str], float | None]) -> dict[str, float | None]:
    """The fs job's figures of a run (none for a run without one): MiB the fs disk read per read pass,
    and over the measured phase (before to pressure: both jobs, in the mixed job) zcache's eph puts,
    eph gets that found their page, ephemeral frames evicted and persistent puts that took an
    ephemeral frame."""
    s = res.summary
    if "fs_pass1_disk_mib" not in s:
        return {}
    if s["fs_pass1_disk_mib"] is None or s["fs_pass2_disk_mib"] is None:
        raise MalformedRecords("the fs job's read passes report no sectors read")
    gets = delta("zcache.eph_gets")
    return {
        "fs_pass1_disk_mib": s["fs_pass1_disk_mib"],
        "fs_pass2_disk_mib": s["fs_pass2_disk_mib"],
        "eph_puts": delta("zcache.eph_puts"),
        "eph_gets": gets,
        "eph_gets_pass2": s.get("eph_gets_pass2"),
        "evicted_eph_pageframes": delta("zcache.evicted_eph_pageframes"),
        "pers_puts_took_eph_frame": delta("zcache.pers_puts_took_eph_frame"),
        "fs_corrupted": s.get("fs_corrupted"),
    }


RAMSTER_FIGURES = ("remote_puts", "remote_gets", "failed_remote_gets", "remote_get_mean_us", "peer_pages_max")


def ramster_metrics(res: judge.ScenarioResult,
                    delta: Callable[[str], float | None]) -> dict[str, float | None]:
    """A two-guest run's figures over the measured phase: pages A moved to its peer and got back, the
    remote gets that failed, the mean time of a remote get (remote_get_us / remote_gets, microseconds), and
    the most pages the peer held for A. None for a run without a peer."""
    if res.peer is None:
        return {}
    gets, us = delta("zcache.remote_gets"), delta("zcache.remote_get_us")
    return {
        "remote_puts": delta("zcache.remote_puts"),
        "remote_gets": gets,
        "failed_remote_gets": delta("zcache.failed_remote_gets"),
        "remote_get_mean_us": us / gets if gets and us is not None else None,
        "peer_pages_max": res.counters.get("pressure", {}).get(f"{COUNTER_PREFIX}zcache.peer_pages_max"),
    }


def spread(values: list[float | None]) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(known), "min": min(known), "max": max(known)}


@dataclass
class Run:
    """One boot: its verdict and its figures (empty when its console records were malformed)."""

    result: judge.ScenarioResult
    figures: dict[str, float | None]
    rep: int = 0  # which repetition (runs from a batch arrive in any order)

    @property
    def passed(self) -> bool:
        return self.result.passed


def _unjudged(job: scenarios.Scenario, run: qemu.GuestRun, why: str) -> judge.ScenarioResult:
    """A failed result for a run the verdict could not be given on."""
    return judge.ScenarioResult(
        name=job.name, backend=job.backend, passed=False, reasons=[f"could not judge the run: {why}"],
        workloads=[], counters={}, accelerator=run.accel, seconds=round(run.seconds, 2), splats=[],
        exit_kind=run.exit_kind, guest_status=run.guest_status, console_log=str(run.console_log),
        ended_by=run.ended_by, last_console=run.last_console, max_silence_s=run.max_silence_s)


def measure(job: scenarios.Scenario, run: qemu.GuestRun, kunit_src: Path | None = None) -> Run:
    """Judge a finished boot and take its figures. Malformed console records make a failed run with the
    reason and no figures (they would stand on records that were lost), never an exception."""
    try:
        result = judge.judge_run(job, run, kunit_src)
    except Exception as exc:  # one run that cannot be judged must not end the matrix
        log.exception("judging %s", run.console_log)
        return Run(_unjudged(job, run, f"{type(exc).__name__}: {exc}"), {})
    if result.parse_errors:
        return Run(result, {})
    try:
        return Run(result, metrics(result))
    except MalformedRecords as exc:
        result.passed = False
        result.reasons.append(f"malformed console records: {exc}")
        return Run(result, {})


@dataclass
class Cell:
    """All repetitions of one backend on one scenario and one disk model."""

    backend: str
    scenario: str
    disk: str = UNTHROTTLED
    runs: list[Run] = field(default_factory=list)
    error: str | None = None

    @property
    def measured(self) -> list[Run]:
        """The runs whose records gave figures."""
        return [r for r in self.runs if r.figures]

    @property
    def figures(self) -> dict[str, dict[str, float | None]]:
        per_run = [r.figures for r in self.measured]
        keys = sorted({k for m in per_run for k in m})
        return {k: spread([m.get(k) for m in per_run]) for k in keys}

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.runs) and all(r.passed for r in self.runs)

    @property
    def failure(self) -> str | None:
        """Why the cell failed, in one line (the first reason), or None."""
        if self.passed:
            return None
        if self.error is not None:
            return self.error
        if not self.runs:
            return "not run"
        reasons = next((r.result.reasons for r in self.runs if not r.passed and r.result.reasons), [])
        return reasons[0].splitlines()[0] if reasons else "failed"


def disk_table(names: tuple[str, ...]) -> list[dict[str, str]]:
    """The disk models, as recorded in the results: name, what it stands for, QEMU's options."""
    return [{"name": m.name, "stands_for": m.stands_for, "qemu_drive_options": m.drive_options().lstrip(",")}
            for m in map(qemu.disk_model, names)]


@dataclass
class BenchResult:
    image: KernelImage
    accelerator: str
    reps: int
    disks: tuple[str, ...] = DEFAULT_DISKS  # the first one is where swap I/O figures come from
    cells: list[Cell] = field(default_factory=list)
    seconds: float = 0.0
    runs_planned: int = 0
    runs_done: int = 0
    complete: bool = False  # False while running, or after an interrupted bench

    @property
    def passed(self) -> bool:
        return bool(self.cells) and all(c.passed for c in self.cells)

    @property
    def primary_disk(self) -> str:
        return self.disks[0] if self.disks else UNTHROTTLED

    def cell(self, backend: str, scenario: str, disk: str | None = None) -> Cell | None:
        """The cell of backend on scenario, on disk (default: the primary disk)."""
        disk = disk or self.primary_disk
        return next((c for c in self.cells
                     if c.backend == backend and c.scenario == scenario and c.disk == disk), None)

    def comparisons(self, c: Cell) -> dict[str, float | None]:
        """Figures relative to the baseline and reference backends of the same scenario and disk."""
        out: dict[str, float | None] = {"pswpout_reduction_pct": None, "throughput_ratio": None,
                                        "elapsed_ratio": None}
        if c.backend == "ramster":  # what the peer saves over zcache alone
            out["pswpout_vs_zcache_pct"] = None
        mine = c.figures
        if not mine:
            return out
        base = self.cell(BASELINE, c.scenario, c.disk)
        ref = self.cell(REFERENCE, c.scenario, c.disk)
        if base and base.measured:
            b = base.figures["pswpout"]["median"]
            m = mine["pswpout"]["median"]
            if b and m is not None:
                out["pswpout_reduction_pct"] = 100.0 * (b - m) / b
        alone = self.cell("zcache", c.scenario, c.disk) if c.backend == "ramster" else None
        if alone and alone.measured:
            z, m = alone.figures["pswpout"]["median"], mine["pswpout"]["median"]
            if z and m is not None:
                out["pswpout_vs_zcache_pct"] = 100.0 * (z - m) / z
        if ref and ref.measured:
            for key, name in (("throughput_mbps", "throughput_ratio"), ("elapsed_s", "elapsed_ratio")):
                r, m = ref.figures[key]["median"], mine[key]["median"]
                if r and m is not None:
                    out[name] = m / r
        return out

    def to_dict(self, environment: dict[str, Any]) -> dict[str, Any]:
        return {
            "environment": environment,
            "passed": self.passed,
            "complete": self.complete,
            "runs_done": self.runs_done,
            "runs_planned": self.runs_planned,
            "seconds": round(self.seconds, 1),
            "disks": disk_table(self.disks),
            "cells": [{
                "backend": c.backend, "scenario": c.scenario, "disk": c.disk, "passed": c.passed,
                "error": c.error, "figures": c.figures, "comparisons": self.comparisons(c),
                "runs": [{"passed": r.passed, "reasons": r.result.reasons, "seconds": r.result.seconds,
                          "metrics": r.figures, "counters": r.result.counters} for r in c.runs],
            } for c in self.cells],
        }


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write data as JSON through a temporary file, so an interrupted write leaves the last whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def variant(sc: scenarios.Scenario, b: Backend,
            pool_percent: int = POOL_PERCENT_DEFAULT) -> scenarios.Scenario:
    """The scenario with another backend and the bench's pool budget; zcache-only expectations do
    not apply to the others. ramster keeps the scenario's peer (a default one when it has none), never
    killed nor stopped in a bench; every other backend runs without a peer (and its peer.* expectations)."""
    zcache = b.backend == "zcache"
    expect = sc.expect if zcache else ()
    peer = (dataclasses.replace(sc.peer or PeerSpec(), kill_after_s=None, hang_after_s=None, hang_for_s=None)
            if b.peer else None)
    if peer is None:
        expect = tuple(e for e in expect if not e.key.startswith(COUNTER_PREFIX))
    budget = f"{b.backend}.max_pool_percent={pool_percent}" if b.backend in ("zcache", "zswap") else ""
    extra = " ".join(x for x in (sc.cmdline_extra, budget) if x)
    return dataclasses.replace(sc, backend=b.backend, zpool=b.zpool, expect=expect, cmdline_extra=extra,
                               expect_eph_hits=sc.expect_eph_hits and zcache, peer=peer)


def check_runner(runner: str, chosen: list[scenarios.Scenario], backends: list[Backend]) -> None:
    """Refuse, before anything is built, a bench whose runs the runner cannot boot (two guests on LAVA)."""
    runners.check_scenarios(runner, [variant(sc, b) for sc in chosen for b in backends])


def _log_run(n: int, total: int, cell: Cell, rep: int, run: Run, via: str = "") -> None:
    res, m = run.result, run.figures
    num, pct = report.num, report.pct
    fs = ""
    if "fs_pass1_disk_mib" in m:
        fs = (f", fs disk read {num(m.get('fs_pass1_disk_mib'), 1)}/{num(m.get('fs_pass2_disk_mib'), 1)} "
              f"MiB, eph gets {num(m.get('eph_gets'))}, eph frames evicted "
              f"{num(m.get('evicted_eph_pageframes'))}, pers puts took eph frame "
              f"{num(m.get('pers_puts_took_eph_frame'))}")
    if "remote_puts" in m:
        fs += (f", remote puts {num(m.get('remote_puts'))}, gets {num(m.get('remote_gets'))} "
               f"(mean {num(m.get('remote_get_mean_us'))} us)")
    log.info("[%d/%d] %s on %s (%s disk), rep %d: %s%s, %.0f s, pswpout %s, hit rate %s, written back %s, "
             "density %s%s", n, total, cell.backend, cell.scenario, cell.disk, rep + 1, via,
             "ok" if res.passed else "FAILED: " + "; ".join(res.reasons), res.seconds,
             num(m.get("pswpout")), pct(m.get("hit_rate")), num(m.get("written_back")),
             num(m.get("density"), 2), fs)


@dataclass(frozen=True)
class Planned:
    """One run of the matrix: its cell, repetition, scenario variant and run directory."""

    cell: Cell
    rep: int
    job: scenarios.Scenario
    workdir: Path


def plan(chosen: list[scenarios.Scenario], backends: list[Backend], reps: int, workdir: Path,
         disks: tuple[str, ...], pool_percent: int = POOL_PERCENT_DEFAULT) -> list[Planned]:
    """Every run, in the matrix's order: disk models outermost, the primary one first (its table
    fills before the others'), then scenarios, backends and repetitions."""
    out = []
    for disk in disks:
        for sc in chosen:
            for b in backends:
                cell = Cell(b.name, sc.name, disk)
                job = variant(sc, b, pool_percent)
                out += [Planned(cell, rep, job, workdir / f"{sc.name}-{b.name}-{disk}-{rep}")
                        for rep in range(reps)]
    return out


def run_bench(image: KernelImage, chosen: list[scenarios.Scenario], backends: list[Backend], reps: int,
              workdir: Path, accel: str | None = None, pool_percent: int = POOL_PERCENT_DEFAULT,
              disks: tuple[str, ...] | list[str] = DEFAULT_DISKS,
              on_run: Callable[[BenchResult], None] | None = None, runner: str = runners.DEFAULT,
              lab: LabConfig | None = None) -> BenchResult:
    """Every backend on every scenario on every disk model, reps times, through `runner`. on_run gets
    the result so far after every run (bench.json is written there), so an interrupted bench keeps
    what it measured.

    local and lava-run: one run at a time, in the matrix's order (plan). lava: every run submitted to
    the lab up front as a LAVA job, gathered as the jobs finish (run_batch)."""
    t0 = time.monotonic()
    disks = choose_disks(list(disks))
    initrd = initramfs.build_initramfs(kernel.cache_dir() / "initramfs")
    if runner == "lava":
        accel = accel or "tcg"  # the lab's KVM cannot be probed from here: --accel kvm asks for it
    else:
        accel = accel or qemu.probe_accel(image.image, initrd, workdir / "probe")
    runs = plan(chosen, backends, reps, workdir, disks, pool_percent)
    runners.check_scenarios(runner, [p.job for p in runs])
    out = BenchResult(image=image, accelerator=accel, reps=reps, disks=disks, runs_planned=len(runs))

    def report() -> None:
        out.seconds = time.monotonic() - t0
        if on_run is not None:
            on_run(out)

    if runner == "lava":  # every cell is there from the start: its runs come in any order
        out.cells = [p.cell for p in runs if p.rep == 0]
        _gather_batch(image, initrd, runs, accel, lab, out, report)
    else:
        _one_by_one(image, initrd, runs, accel, runners.get(runner), out, report)
    out.complete = True
    out.seconds = time.monotonic() - t0
    return out


def _one_by_one(image: KernelImage, initrd: Path, runs: list[Planned], accel: str, boot: runners.RunGuest,
                out: BenchResult, report: Callable[[], None]) -> None:
    """Run by run; a cell whose run cannot start is named and its other repetitions skipped."""
    for p in runs:
        cell = p.cell
        if not out.cells or out.cells[-1] is not cell:
            out.cells.append(cell)
        if cell.error is not None:
            continue
        out.runs_done += 1
        try:
            booted = boot(image.image, initrd, p.job, p.workdir, accel, disk=cell.disk)
        except Exception as exc:  # a backend that cannot run is named; the rest goes on
            cell.error = f"{type(exc).__name__}: {exc}"
            log.error("[%d/%d] %s on %s (%s disk): %s", out.runs_done, out.runs_planned, cell.backend,
                      cell.scenario, cell.disk, cell.error)
            report()
            continue
        run = measure(p.job, booted)
        run.rep = p.rep
        cell.runs.append(run)
        _log_run(out.runs_done, out.runs_planned, cell, p.rep, run)
        report()


def _gather_batch(image: KernelImage, initrd: Path, runs: list[Planned], accel: str, lab: LabConfig | None,
                  out: BenchResult, report: Callable[[], None]) -> None:
    """The whole matrix as LAVA jobs on the lab: submitted at once, each run judged and recorded as its
    job finishes (a job that failed is a failed run naming its job id and log; one that could not be
    submitted or pulled back makes its cell's error), bench.json rewritten after each."""
    from zcache_forge.lava import server

    if lab is None:
        raise ForgeError("runner 'lava' needs the lab: its URL, a token and the served image directory")
    requests = [server.Request(p.job, p.workdir, accel, p.cell.disk) for p in runs]

    def arrived(i: int, req: server.Request, job: server.Job | None, what: server.Outcome) -> None:
        p = runs[i]
        cell = p.cell
        out.runs_done += 1
        if isinstance(what, ForgeError):
            cell.error = str(what) if cell.error is None else f"{cell.error}; {what}"
            log.error("[%d/%d] %s on %s (%s disk), rep %d: %s", out.runs_done, out.runs_planned, cell.backend,
                      cell.scenario, cell.disk, p.rep + 1, what)
        else:
            run = measure(p.job, what)
            run.rep = p.rep
            cell.runs.append(run)
            cell.runs.sort(key=lambda r: r.rep)
            _log_run(out.runs_done, out.runs_planned, cell, p.rep, run,
                     f"LAVA job {job.id if job else '?'}: ")
        report()

    log.info("bench: %d runs as LAVA jobs on %s", len(runs), lab.url)
    server.run_batch(image.image, initrd, requests, lab, on_done=arrived)
