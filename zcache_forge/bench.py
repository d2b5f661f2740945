"""bench: the same kernel image, the same scenarios, one boot per backend and repetition.

Backends: zcache, zswap with zbud, zswap with zsmalloc, and no frontswap backend (plain
swap to the virtio disk). Figures are medians over repetitions, with min and max."""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import guest, kernel, qemu, scenarios, verdict
from .qemutest import KernelImage

log = logging.getLogger(__name__)

PAGE = 4096


@dataclass(frozen=True)
class Backend:
    name: str
    backend: str
    zpool: str | None = None


BACKENDS = (
    Backend("zcache", "zcache"),
    Backend("zswap-zbud", "zswap", "zbud"),
    Backend("zswap-zsmalloc", "zswap", "zsmalloc"),
    Backend("plain-swap", "none"),
)
REFERENCE = "zswap-zbud"   # throughput and elapsed are given as ratios to this backend
BASELINE = "plain-swap"    # swap-device I/O reduction is measured against this one
DEFAULT_SCENARIOS = ("bench-mixed", "bench-zero", "bench-text")
# The RAM budget every compressing backend gets (zcache.max_pool_percent= and
# zswap.max_pool_percent=): the same for both, so density and swap I/O compare
# at equal cost. zswap's own default is 20, zcache's is the series' knob.
POOL_PERCENT_DEFAULT = 50


def metrics(res: verdict.ScenarioResult) -> dict[str, float | None]:
    """The raw figures of one run."""
    c = res.counters
    before, pressure = c.get("before", {}), c.get("pressure", {})

    def delta(key: str) -> float | None:
        if key not in pressure:
            return None
        return pressure[key] - before.get(key, 0)

    runs = [w for w in res.workloads if w.get("phase") == "run"]
    moved = sum(w["bytes"] * (1 + w["passes"]) for w in runs)  # fill plus every pass
    elapsed = max((w["elapsed_s"] for w in runs), default=0.0)
    stored = zero = frames = held = None
    rejects: dict[str, float] = {}
    if "zcache.pers_zpages" in pressure:
        zero = pressure.get("zcache.zero_filled_pages", 0)
        stored = pressure["zcache.pers_zpages"] + zero
        frames = pressure["zcache.pers_pageframes"]
        held = pressure.get("zcache.pers_pageframes_max", frames) * PAGE
        for k in ("compress_poor", "pool_limit_hit", "failed_alloc", "failed_get_free_pages",
                  "compress_failed", "bad_offset"):
            rejects[k] = pressure.get(f"zcache.{k}", 0)
    elif "zswap.stored_pages" in pressure:
        zero = pressure.get("zswap.same_filled_pages", 0)
        stored = pressure["zswap.stored_pages"]
        frames = pressure.get("zswap.pool_total_size", 0) / PAGE
        held = pressure.get("zswap.pool_total_size", 0)  # zswap keeps no peak: the value under pressure
        for k in ("reject_compress_poor", "reject_alloc_fail", "reject_kmemcache_fail",
                  "reject_reclaim_fail", "pool_limit_hit"):
            rejects[k] = pressure.get(f"zswap.{k}", 0)
    return {
        "pswpout": delta("pswpout"),
        "pswpin": delta("pswpin"),
        "stored_pages": stored,
        "pageframes": frames,
        "zero_pages": zero,
        # compressed (non-zero) pages per page frame: zbud's ceiling is 2
        "density": ((stored - (zero or 0)) / frames) if stored is not None and frames else None,
        "ram_held_bytes": held,
        "throughput_mbps": (moved / 2**20 / elapsed) if elapsed else None,
        "elapsed_s": elapsed,
        "corrupted": sum(w.get("pages_corrupted", 0) for w in res.workloads),
        **{f"reject.{k}": v for k, v in rejects.items()},
    }


def spread(values: list[float | None]) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(known), "min": min(known), "max": max(known)}


@dataclass
class Cell:
    """All repetitions of one backend on one scenario."""

    backend: str
    scenario: str
    runs: list[verdict.ScenarioResult] = field(default_factory=list)
    error: str | None = None

    @property
    def figures(self) -> dict[str, dict[str, float | None]]:
        per_run = [metrics(r) for r in self.runs]
        keys = sorted({k for m in per_run for k in m})
        return {k: spread([m.get(k) for m in per_run]) for k in keys}

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.runs) and all(r.passed for r in self.runs)


@dataclass
class BenchResult:
    image: KernelImage
    accelerator: str
    reps: int
    cells: list[Cell] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.cells) and all(c.passed for c in self.cells)

    def cell(self, backend: str, scenario: str) -> Cell | None:
        return next((c for c in self.cells if c.backend == backend and c.scenario == scenario), None)

    def comparisons(self, c: Cell) -> dict[str, float | None]:
        """Figures relative to the baseline and reference backends of the same scenario."""
        out: dict[str, float | None] = {"pswpout_reduction_pct": None, "throughput_ratio": None,
                                        "elapsed_ratio": None}
        mine = c.figures
        base = self.cell(BASELINE, c.scenario)
        ref = self.cell(REFERENCE, c.scenario)
        if base and base.runs:
            b = base.figures["pswpout"]["median"]
            m = mine["pswpout"]["median"]
            if b and m is not None:
                out["pswpout_reduction_pct"] = 100.0 * (b - m) / b
        if ref and ref.runs:
            for key, name in (("throughput_mbps", "throughput_ratio"), ("elapsed_s", "elapsed_ratio")):
                r, m = ref.figures[key]["median"], mine[key]["median"]
                if r and m is not None:
                    out[name] = m / r
        return out

    def to_dict(self, environment: dict[str, Any]) -> dict[str, Any]:
        return {
            "environment": environment,
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "cells": [{
                "backend": c.backend, "scenario": c.scenario, "passed": c.passed, "error": c.error,
                "figures": c.figures, "comparisons": self.comparisons(c),
                "runs": [{"passed": r.passed, "reasons": r.reasons, "seconds": r.seconds,
                          "metrics": metrics(r), "counters": r.counters} for r in c.runs],
            } for c in self.cells],
        }


def variant(sc: scenarios.Scenario, b: Backend,
            pool_percent: int = POOL_PERCENT_DEFAULT) -> scenarios.Scenario:
    """The scenario with another backend and the bench's pool budget; zcache-only expectations do
    not apply to the others."""
    expect = sc.expect if b.backend == "zcache" else ()
    budget = f"{b.backend}.max_pool_percent={pool_percent}" if b.backend in ("zcache", "zswap") else ""
    extra = " ".join(x for x in (sc.cmdline_extra, budget) if x)
    return dataclasses.replace(sc, backend=b.backend, zpool=b.zpool, expect=expect, cmdline_extra=extra)


def run_bench(image: KernelImage, chosen: list[scenarios.Scenario], backends: list[Backend], reps: int,
              workdir: Path, accel: str | None = None,
              pool_percent: int = POOL_PERCENT_DEFAULT) -> BenchResult:
    t0 = time.monotonic()
    initrd = guest.build_initramfs(kernel.cache_dir() / "initramfs")
    accel = accel or qemu.probe_accel(image.image, initrd, workdir / "probe")
    out = BenchResult(image=image, accelerator=accel, reps=reps)
    total = len(chosen) * len(backends) * reps
    n = 0
    for sc in chosen:
        for b in backends:
            cell = Cell(b.name, sc.name)
            out.cells.append(cell)
            job = variant(sc, b, pool_percent)
            for rep in range(reps):
                n += 1
                try:
                    run = qemu.run_guest(image.image, initrd, job,
                                         workdir / f"{sc.name}-{b.name}-{rep}", accel=accel)
                except Exception as exc:  # a backend that cannot run is named; the rest goes on
                    cell.error = f"{type(exc).__name__}: {exc}"
                    log.error("[%d/%d] %s on %s: %s", n, total, b.name, sc.name, cell.error)
                    break
                res = verdict.judge_run(job, run)
                cell.runs.append(res)
                m = metrics(res)
                log.info("[%d/%d] %s on %s, rep %d: %s, %.0f s, pswpout %s, density %s", n, total, b.name,
                         sc.name, rep + 1, "ok" if res.passed else "FAILED: " + "; ".join(res.reasons),
                         res.seconds, _num(m["pswpout"]), _num(m["density"], 2))
    out.seconds = time.monotonic() - t0
    return out


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def markdown(res: BenchResult) -> str:
    """One table per scenario: median (min..max) of each figure, per backend."""
    lines: list[str] = []
    for scenario in dict.fromkeys(c.scenario for c in res.cells):
        lines += [f"### {scenario}", "",
                  "| backend | swap writes (pswpout) | vs plain swap | swap reads (pswpin) | "
                  "pages per frame | RAM held (MiB) | MiB/s | vs zswap-zbud | elapsed (s) | "
                  "rejects | corrupted |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for c in (c for c in res.cells if c.scenario == scenario):
            if not c.runs:
                lines.append(f"| {c.backend} | failed: {c.error} |||||||||")
                continue
            f, cmp = c.figures, res.comparisons(c)

            def fig(key: str, digits: int = 0, scale: float = 1.0,
                    f: dict[str, dict[str, float | None]] = f) -> str:
                s = f[key]
                if s["median"] is None:
                    return "-"
                lo, hi = s["min"] / scale, s["max"] / scale
                text = _num(s["median"] / scale, digits)
                return text if lo == hi else f"{text} ({_num(lo, digits)}..{_num(hi, digits)})"

            rejects = ", ".join(f"{k.split('.', 1)[1]} {_num(v['median'])}" for k, v in f.items()
                                if k.startswith("reject.") and v["median"])
            red = cmp["pswpout_reduction_pct"]
            ratio = cmp["throughput_ratio"]
            lines.append(
                f"| {c.backend}{'' if c.passed else ' (FAILED)'} | {fig('pswpout')} | "
                f"{'-' if red is None else f'{red:.0f}%'} | {fig('pswpin')} | {fig('density', 2)} | "
                f"{fig('ram_held_bytes', 1, 2**20)} | {fig('throughput_mbps', 1)} | "
                f"{'-' if ratio is None else f'{ratio:.2f}x'} | {fig('elapsed_s', 1)} | "
                f"{rejects or '-'} | {fig('corrupted')} |")
        lines.append("")
    return "\n".join(lines)


def chart(res: BenchResult, path: Path) -> Path:
    """A PNG: swap-device writes, density and throughput per scenario and backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(dict.fromkeys(c.scenario for c in res.cells))
    backs = list(dict.fromkeys(c.backend for c in res.cells))
    panels = (("pswpout", "swap-device writes (pages)"), ("density", "compressed pages per page frame"),
              ("throughput_mbps", "workload throughput (MiB/s)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    width = 0.8 / max(len(backs), 1)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, b in enumerate(backs):
            med, err_lo, err_hi = [], [], []
            for s in scen:
                c = res.cell(b, s)
                sp = c.figures.get(key) if c and c.runs else None
                m = sp["median"] if sp and sp["median"] is not None else 0.0
                med.append(m)
                err_lo.append(m - sp["min"] if sp and sp["min"] is not None else 0.0)
                err_hi.append(sp["max"] - m if sp and sp["max"] is not None else 0.0)
            xs = [j + (i - (len(backs) - 1) / 2) * width for j in range(len(scen))]
            ax.bar(xs, med, width, yerr=[err_lo, err_hi], capsize=2, label=b)
        ax.set_xticks(range(len(scen)), scen)
        ax.set_title(title, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(backs), fontsize=9, frameon=False)
    fig.suptitle(f"zcache vs zswap vs plain swap: median of {res.reps} run(s), {res.accelerator}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cover_table(data: dict[str, Any]) -> str:
    """A plain-text table within 75 columns for a cover letter, from BenchResult.to_dict()."""
    env = data["environment"]
    head = (f"{'backend':<15}{'swap writes':>12}{'vs plain':>9}{'pages/frame':>12}"
            f"{'RAM MiB':>9}{'MiB/s':>8}{'corrupt':>8}")
    out = [f"invoke bench, {env['series']} v{env['series_version']} ({env['kernel_commit'][:12]}), "
           f"QEMU {env['accelerator']},",
           f"{env['compressor']}, median of {env['reps']} runs; zcache and zswap may both take "
           f"{env['pool_percent']}% of RAM."]
    for scenario in dict.fromkeys(c["scenario"] for c in data["cells"]):
        out += ["", f"{scenario}:", head]
        for c in (c for c in data["cells"] if c["scenario"] == scenario):
            f, cmp = c["figures"], c["comparisons"]

            def med(key: str, digits: int = 0, scale: float = 1.0,
                    f: dict[str, Any] = f) -> str:
                m = f.get(key, {}).get("median")
                return "-" if m is None else f"{m / scale:,.{digits}f}"

            red = cmp.get("pswpout_reduction_pct")
            out.append(f"{c['backend']:<15}{med('pswpout'):>12}{'-' if red is None else f'{red:.0f}%':>9}"
                       f"{med('density', 2):>12}{med('ram_held_bytes', 0, 2**20):>9}"
                       f"{med('throughput_mbps', 1):>8}{med('corrupted'):>8}")
    return "\n".join(out) + "\n"
