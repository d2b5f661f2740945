"""Every table the tool prints: the qemu-test verdict table and JSON, and the bench's tables and chart
(markdown for results/bench.md, a PNG, and a plain-text table within 75 columns for the cover letters).

Bench: swap I/O, the hit rate of loads, write-back and pool figures are those of the primary disk model
(the first of BenchResult.disks, a throttled one by default); throughput and elapsed time get one
column per disk model, so the unthrottled host figures stand next to the throttled ones."""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zcache_forge import bench  # which imports this module too: only its attributes, at call time
from zcache_forge.guest.ktap import KtapResult, kunit_counts

if TYPE_CHECKING:
    from zcache_forge.guest.judge import ScenarioResult

Figures = dict[str, dict[str, float | None]]
COVER_WIDTH = 75


def num(v: float | None, digits: int = 0) -> str:
    """A figure with thousands separators, or "-"."""
    return "-" if v is None else f"{v:,.{digits}f}"


def pct(fraction: float | None) -> str:
    """A fraction as a whole percentage, or "-"."""
    return "-" if fraction is None else f"{100 * fraction:.0f}%"


# ---------------------------------------------------------------- qemu-test

def to_json(results: list[ScenarioResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, default=str)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _kunit_cell(results: list[KtapResult]) -> str:
    """passed/cases of KUnit, or "-" when the kernel printed no KTAP."""
    if not results:
        return "-"
    c = kunit_counts(results)
    return f"{c['passed']}/{c['cases']}"


def columns(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Plain-text columns under a rule, trailing blanks stripped."""
    cells = [headers] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def render_table(results: list[ScenarioResult]) -> str:
    """Plain-text columns, one row per scenario, then the reasons of the failures."""
    headers = ["scenario", "backend", "accel", "result", "secs", "swap-used-MiB", "fs-stores",
               "fs-refused", "fs-loads", "zcache-stored", "corrupted", "swapoff-s", "kunit"]
    rows = []
    for r in results:
        s = r.summary
        rows.append([r.name, r.backend, r.accelerator or "-", "PASS" if r.passed else "FAIL",
                     f"{r.seconds:.0f}", _fmt(s.get("swap_used_mib")), _fmt(s.get("frontswap_stores")),
                     _fmt(s.get("frontswap_failed")), _fmt(s.get("frontswap_loads")),
                     _fmt(s.get("zcache_stored")), _fmt(s.get("corrupted")),
                     "-" if s.get("swapoff_s") is None else f"{s['swapoff_s']:.1f}", _kunit_cell(r.kunit)])
    lines = columns(headers, rows)
    for part in (render_fs_table(results), render_mixed_table(results), render_peer_table(results)):
        if part:
            lines += ["", part]
    for r in results:
        if r.peer is not None:
            lines.append(f"{r.name}: {r.peer['story']}")
    for r in results:
        for reason in r.reasons:
            lines.append(f"{r.name}: {reason}")
    return "\n".join(lines)


def render_peer_table(results: list[ScenarioResult]) -> str:
    """The two-guest runs (RAMster): A's sending side (pages it moved to its peer B, got back, the mean
    time of a remote get, failed remote gets, lost connections), B's side (pages it took, held at most),
    pages A lost (SIGBUS) and when B was killed ("-": it was not)."""
    headers = ["two-guest run", "port", "peer-ready-s", "remote-puts", "remote-gets", "remote-get-us(mean)",
               "failed-remote-gets", "conn-lost", "peer-puts", "peer-pages(max)", "lost-pages",
               "peer-killed-at-s"]
    rows = []
    for r in results:
        if r.peer is None:
            continue
        s, p = r.summary, r.peer
        rows.append([r.name, str(p["port"]), num(p.get("ready_s"), 1), _fmt(s.get("remote_puts")),
                     _fmt(s.get("remote_gets")), _fmt(s.get("remote_get_mean_us")),
                     _fmt(s.get("failed_remote_gets")), _fmt(s.get("remote_conn_lost")),
                     _fmt(s.get("peer_puts")), _fmt(s.get("peer_pages_max")), _fmt(s.get("lost_pages")),
                     num(p.get("killed_at_s"), 0)])
    return "\n".join(columns(headers, rows)) if rows else ""


def _eph(s: dict[str, float | None], key: str) -> str:
    return _fmt(s.get(key))


def render_fs_table(results: list[ScenarioResult]) -> str:
    """The file-system job of the scenarios that ran one: MiB the fs disk read in each read pass
    (pass 2 reads the file set in reverse, what a cache still holds first), seconds per pass, and
    zcache's ephemeral-page counters at the end of pass 2 ("-": the kernel has no cleancache), and what
    zcache still holds for the file system after umount and drop_caches (zpages/frames/pools: 0/0/0)."""
    headers = ["file-system job", "cleancache", "written-MiB", "pass1-disk-MiB", "pass2-disk-MiB", "pass1-s",
               "pass2-s", "eph-puts", "failed-eph-puts", "eph-gets(p1/p2)", "failed-eph-gets", "eph-flushes",
               "eph-zpages(p2)", "eph-left(zpages/frames/pools)", "wrong-pages"]
    rows = []
    for r in results:
        s = r.summary
        if "fs_pass1_sectors_read" not in s:
            continue
        boot = (r.boot or {}).get("zcache_cleancache")
        state = "-" if boot is None else ("on" if boot else "off")
        left = ("-" if s.get("eph_zpages_after_umount") is None else
                "/".join(_eph(s, f"{k}_after_umount") for k in ("eph_zpages", "eph_pageframes", "eph_pools")))
        gets = ("-" if s.get("eph_gets") is None
                else f"{_eph(s, 'eph_gets_pass1')}/{_eph(s, 'eph_gets_pass2')}")
        rows.append([r.name, state, _fmt(s.get("fs_written_mib")), num(s.get("fs_pass1_disk_mib"), 1),
                     num(s.get("fs_pass2_disk_mib"), 1), num(s.get("fs_pass1_s"), 1),
                     num(s.get("fs_pass2_s"), 1),
                     _eph(s, "eph_puts"), _eph(s, "failed_eph_puts"), gets, _eph(s, "failed_eph_gets"),
                     _eph(s, "eph_flushes"), _eph(s, "eph_zpages"), left, _fmt(s.get("fs_corrupted"))])
    return "\n".join(columns(headers, rows)) if rows else ""


def render_mixed_table(results: list[ScenarioResult]) -> str:
    """The mixed job of the scenarios that ran one: how long the fs job ran beside the workloads (and
    how many were still in their run phase at its end), what was swapped out while the file set's
    pages were in the pool (pswpout, zcache's persistent puts and those frontswap stored), and how the
    two pools met: persistent
    puts that took an ephemeral frame, ephemeral frames evicted (at the pressure record)."""
    headers = ["mixed job", "fs-job-s", "workloads-running(end)", "pswpout(fs)", "pers-puts/stored(fs)",
               "pers-took-eph-frame", "evicted-eph-frames", "swap-corrupted", "fs-wrong-pages"]
    rows = []
    for r in results:
        s = r.summary
        if "fs_job_s" not in s:
            continue
        swap_bad = sum(w.get("pages_corrupted", 0) for w in r.workloads)
        rows.append([r.name, num(s.get("fs_job_s"), 1), _fmt(s.get("workloads_running_at_fs_end")),
                     _fmt(s.get("pswpout_during_fs")),
                     f"{_fmt(s.get('pers_puts_during_fs'))}/{_fmt(s.get('frontswap_stores_during_fs'))}",
                     _fmt(s.get("pers_puts_took_eph_frame")), _fmt(s.get("evicted_eph_pageframes_pressure")),
                     str(swap_bad), _fmt(s.get("fs_corrupted"))])
    return "\n".join(columns(headers, rows)) if rows else ""


# ---------------------------------------------------------------- bench



def _fig(f: Figures, key: str, digits: int = 0, scale: float = 1.0) -> str:
    """median (min..max) of one figure, or "-"."""
    s = f.get(key)
    if not s or s["median"] is None or s["min"] is None or s["max"] is None:
        return "-"
    lo, hi = s["min"] / scale, s["max"] / scale
    text = num(s["median"] / scale, digits)
    return text if lo == hi else f"{text} ({num(lo, digits)}..{num(hi, digits)})"


def _scenarios(res: bench.BenchResult) -> list[str]:
    return list(dict.fromkeys(c.scenario for c in res.cells))


def _backends(res: bench.BenchResult, scenario: str | None = None) -> list[str]:
    return list(dict.fromkeys(c.backend for c in res.cells if scenario is None or c.scenario == scenario))


def disk_legend(disks: list[dict[str, str]]) -> str:
    """One sentence per disk model: name, what it stands for, how QEMU throttles it."""
    parts = []
    for d in disks:
        how = f" (QEMU `{d['qemu_drive_options']}`)" if d["qemu_drive_options"] else ""
        parts.append(f"**{d['name']}**: {d['stands_for']}{how}.")
    return "Swap disk models: " + " ".join(parts)


def _row(res: bench.BenchResult, scenario: str, backend: str) -> list[str]:
    cells: dict[str, bench.Cell | None] = {d: res.cell(backend, scenario, d) for d in res.disks}
    figs: dict[str, Figures] = {d: (c.figures if c else {}) for d, c in cells.items()}
    primary = cells[res.primary_disk]
    f = figs[res.primary_disk]
    cmp = res.comparisons(primary) if primary else {}
    red, ratio = cmp.get("pswpout_reduction_pct"), cmp.get("throughput_ratio")
    rejects = ", ".join(f"{k.split('.', 1)[1]} {num(v['median'])}" for k, v in f.items()
                        if k.startswith("reject.") and v["median"])
    corrupted = [s["max"] for fd in figs.values() if (s := fd.get("corrupted")) and s["max"] is not None]
    failed = any(c is None or not c.passed for c in cells.values())
    return [f"{backend}{' (FAILED)' if failed else ''}", _fig(f, "pswpout"),
            "-" if red is None else f"{red:.0f}%", _fig(f, "pswpin"), _fig(f, "hit_rate", 0, 0.01),
            _fig(f, "written_back"), _fig(f, "density", 2), _fig(f, "ram_held_bytes", 1, 2**20),
            *(_fig(figs[d], "throughput_mbps", 1) for d in res.disks),
            "-" if ratio is None else f"{ratio:.2f}x",
            *(_fig(figs[d], "elapsed_s", 1) for d in res.disks),
            rejects or "-", num(max(corrupted)) if corrupted else "-"]


FS_HEAD = ["backend", "fs disk read, pass 1 (MiB)", "fs disk read, pass 2 (MiB)", "eph puts",
           "eph gets (all)", "eph gets (pass 2)", "eph frames evicted", "pers puts that took an eph frame",
           "fs wrong pages"]


def _fs_rows(res: bench.BenchResult, scenario: str) -> list[list[str]]:
    """The fs job's figures on the primary disk, one row per backend; none when no cell ran an fs job."""
    rows = []
    for b in _backends(res, scenario):
        c = res.cell(b, scenario)
        f = c.figures if c else {}
        if "fs_pass1_disk_mib" not in f:
            continue
        rows.append([b, _fig(f, "fs_pass1_disk_mib", 1), _fig(f, "fs_pass2_disk_mib", 1), _fig(f, "eph_puts"),
                     _fig(f, "eph_gets"), _fig(f, "eph_gets_pass2"), _fig(f, "evicted_eph_pageframes"),
                     _fig(f, "pers_puts_took_eph_frame"), _fig(f, "fs_corrupted")])
    return rows


RAMSTER_HEAD = ["backend", "swap writes (pswpout)", "vs zcache alone", "remote puts", "remote gets",
                "mean remote get (us)", "failed remote gets", "pages on the peer (max)"]


def _ramster_rows(res: bench.BenchResult, scenario: str) -> list[list[str]]:
    """Swap-device writes of every backend beside the two-guest runs' RAMster figures (primary disk);
    none when no cell ran with a peer."""
    cells = [(b, res.cell(b, scenario)) for b in _backends(res, scenario)]
    if not any(c and "remote_puts" in c.figures for _, c in cells):
        return []
    rows = []
    for b, c in cells:
        f = c.figures if c else {}
        vs = res.comparisons(c).get("pswpout_vs_zcache_pct") if c else None
        rows.append([b, _fig(f, "pswpout"), "-" if vs is None else f"{vs:.0f}%", _fig(f, "remote_puts"),
                     _fig(f, "remote_gets"), _fig(f, "remote_get_mean_us"), _fig(f, "failed_remote_gets"),
                     _fig(f, "peer_pages_max")])
    return rows


def _failures(res: bench.BenchResult, scenario: str) -> list[str]:
    return [f"- {c.backend} on the {c.disk} disk failed: {c.failure}"
            for c in res.cells if c.scenario == scenario and not c.passed]


def markdown(res: bench.BenchResult) -> str:
    """The disk models, then one table per scenario: median (min..max) of each figure, per backend."""
    p = res.primary_disk
    head = ["backend", "swap writes (pswpout)", "vs plain swap", "swap reads (pswpin)", "hit rate (%)",
            "written back", "pages per frame", "RAM held (MiB)", *(f"MiB/s ({d})" for d in res.disks),
            f"vs {bench.REFERENCE} ({p})", *(f"elapsed s ({d})" for d in res.disks), "rejects", "corrupted"]
    align = ["---", *["---:"] * (len(head) - 3), "---", "---:"]
    lines = [disk_legend(bench.disk_table(res.disks)),
             f"Swap I/O, hit rate (frontswap loads / all swap-ins), written back, pages per frame, RAM "
             f"and rejects are on the {p} disk; MiB/s and elapsed time on each disk.", ""]
    for scenario in _scenarios(res):
        lines += [f"### {scenario}", "", "| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(_row(res, scenario, b)) + " |" for b in _backends(res, scenario)]
        fs_rows = _fs_rows(res, scenario)
        if fs_rows:  # the file-system job: what the page cache read, how the eph pool fared beside swap
            lines += ["", f"Page cache ({p} disk): the fs disk's reads per pass; zcache's ephemeral pages "
                      "over the measured phase (\"-\": no cleancache).", "",
                      "| " + " | ".join(FS_HEAD) + " |", "|---|" + "---:|" * (len(FS_HEAD) - 1)]
            lines += ["| " + " | ".join(row) + " |" for row in fs_rows]
        ramster_rows = _ramster_rows(res, scenario)
        if ramster_rows:  # RAMster: what a peer's RAM saves the swap device, and what a remote get costs
            lines += ["", f"RAMster ({p} disk): A's swap-device writes against zcache alone, the pages it "
                      "moved to its peer and got back over the measured phase, and the mean round trip of a "
                      "remote get.", "",
                      "| " + " | ".join(RAMSTER_HEAD) + " |", "|---|" + "---:|" * (len(RAMSTER_HEAD) - 1)]
            lines += ["| " + " | ".join(row) + " |" for row in ramster_rows]
        lines += ["", *_failures(res, scenario)]
        if lines[-1]:
            lines.append("")
    return "\n".join(lines)


def chart(res: bench.BenchResult, path: Path) -> Path:
    """A PNG: swap-device writes, hit rate and density on the primary disk, and throughput on every
    disk model, per scenario and backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = res.primary_disk
    scen, backs = _scenarios(res), _backends(res)
    panels = [("pswpout", f"swap-device writes (pages), {p}", p),
              ("hit_rate", f"load hit rate, {p}", p),
              ("density", f"compressed pages per page frame, {p}", p),
              *(("throughput_mbps", f"workload throughput (MiB/s), {d}", d) for d in res.disks)]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4 * nrows), squeeze=False)
    axes = [ax for row in grid for ax in row]
    width = 0.8 / max(len(backs), 1)
    for ax, (key, title, disk) in zip(axes, panels, strict=False):
        for i, b in enumerate(backs):
            med, err_lo, err_hi = [], [], []
            for s in scen:
                c = res.cell(b, s, disk)
                sp = c.figures.get(key) if c else None
                ok = sp is not None and None not in (sp["median"], sp["min"], sp["max"])
                m = sp["median"] if ok else 0.0
                med.append(m)
                err_lo.append(m - sp["min"] if ok else 0.0)
                err_hi.append(sp["max"] - m if ok else 0.0)
            xs = [j + (i - (len(backs) - 1) / 2) * width for j in range(len(scen))]
            ax.bar(xs, med, width, yerr=[err_lo, err_hi], capsize=2, label=b)
        ax.set_xticks(range(len(scen)), scen)
        ax.set_title(title, fontsize=10)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(len(backs), 1), fontsize=9, frameon=False)
    fig.suptitle(f"zcache vs zswap vs plain swap: median of {res.reps} run(s), {res.accelerator}; "
                 f"swap disk models {', '.join(res.disks)}", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cover_med(f: dict[str, Any], key: str, digits: int = 0, scale: float = 1.0) -> str:
    m = f.get(key, {}).get("median")
    return "-" if m is None else f"{m / scale:,.{digits}f}"


def cover_table(data: dict[str, Any]) -> str:
    """Plain-text tables within 75 columns for a cover letter, from BenchResult.to_dict(): per scenario,
    swap I/O on the primary disk, then throughput on every disk model."""
    env = data["environment"]
    cells = {(c["backend"], c["scenario"], c.get("disk", bench.UNTHROTTLED)): c for c in data["cells"]}
    disks = [d["name"] for d in data.get("disks", [])] or list(dict.fromkeys(d for _, _, d in cells))
    primary = disks[0] if disks else bench.UNTHROTTLED
    intro = (f"invoke bench, {env['series']} v{env['series_version']} ({env['kernel_commit'][:12]}), "
             f"QEMU {env['accelerator']}, {env['compressor']}, median of {env['reps']} runs; zcache and "
             f"zswap may both take {env['pool_percent']}% of RAM. Swap disks: "
             + "; ".join(f"{d['name']} = {d['stands_for']}" for d in data.get("disks", [])) + ".")
    out = textwrap.wrap(intro, COVER_WIDTH)
    io_head = (f"{'backend':<15}{'pswpout':>10}{'vs plain':>9}{'hit rate':>9}{'wrote back':>11}"
               f"{'pages/frame':>12}{'RAM MiB':>8}")
    speed_cols = [f"MiB/s {d}" for d in disks]
    speed_head = f"{'backend':<15}" + "".join(f"{h:>{len(h) + 2}}" for h in speed_cols) + f"{'corrupt':>9}"
    for scenario in dict.fromkeys(c["scenario"] for c in data["cells"]):
        backends = list(dict.fromkeys(c["backend"] for c in data["cells"] if c["scenario"] == scenario))
        out += ["", f"{scenario}, swap I/O on the {primary} disk:", io_head]
        for b in backends:
            c = cells.get((b, scenario, primary), {"figures": {}, "comparisons": {}})
            f, red = c["figures"], c["comparisons"].get("pswpout_reduction_pct")
            rate = (f.get("hit_rate") or {}).get("median")
            out.append(f"{b:<15}{_cover_med(f, 'pswpout'):>10}{'-' if red is None else f'{red:.0f}%':>9}"
                       f"{pct(rate):>9}{_cover_med(f, 'written_back'):>11}{_cover_med(f, 'density', 2):>12}"
                       f"{_cover_med(f, 'ram_held_bytes', 0, 2**20):>8}")
        out += ["", f"{scenario}, workload throughput:", speed_head]
        for b in backends:
            row = f"{b:<15}"
            corrupted = []
            for d, h in zip(disks, speed_cols, strict=True):
                f = cells.get((b, scenario, d), {"figures": {}})["figures"]
                row += f"{_cover_med(f, 'throughput_mbps', 1):>{len(h) + 2}}"
                if (m := (f.get("corrupted") or {}).get("max")) is not None:
                    corrupted.append(m)
            out.append(row + f"{num(max(corrupted)) if corrupted else '-':>9}")
    return "\n".join(out) + "\n"
