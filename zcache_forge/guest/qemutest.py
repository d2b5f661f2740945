"""qemu-test: series -> kernel build -> initramfs -> one QEMU boot per scenario -> verdicts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import git

from zcache_forge import gitops, kernel, report
from zcache_forge.errors import CheckFailed
from zcache_forge.guest import initramfs, judge, qemu, runners, scenarios, schedule
from zcache_forge.kernel import build
from zcache_forge.series import pipeline

if TYPE_CHECKING:
    from zcache_forge.lava.server import LabConfig

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
FRAGMENTS = (ROOT / "kconfig" / "guest.config", ROOT / "kconfig" / "zcache.config")
# the debug kernel also runs zcache's KUnit suites at boot, under KASAN and lockdep
DEBUG_FRAGMENTS = (*FRAGMENTS, ROOT / "kconfig" / "debug.config", ROOT / "kconfig" / "kunit.config")
# the distro's beating: huge pages, a memory cgroup, two swap devices with swapoff
# under load, loads that fail
DISTRO_SCENARIOS = ("thp", "memcg", "swap-devices", "load-fail")
DEFAULT_SCENARIOS = ("basic", "mixed", "random", "concurrent", *DISTRO_SCENARIOS)
DEBUG_SCENARIOS = (*DEFAULT_SCENARIOS, "writeback", "concurrent-hotplug", "fault-inject")
DEBUG_CMDLINE = "panic_on_warn=1"   # a WARN is as bad as a BUG on the debug kernel
DEBUG_SLOWDOWN = 3                  # KASAN and lockdep under TCG: allow this much longer
DEBUG_RAM_SHARE = 4                 # the debug kernel's own use: about a quarter of the guest
DEBUG_PASSES = 1                    # verification passes a workload makes on the debug kernel


@dataclass
class KernelImage:
    series: str
    version: int
    commit: str
    build: build.Build

    @property
    def image(self) -> Path:
        return self.build.image

    def config_hash(self) -> str:
        return hashlib.sha256((self.build.out / ".config").read_bytes()).hexdigest()[:16]


@dataclass
class QemuTestResult:
    kernel: KernelImage
    accelerator: str
    results: list[judge.ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 1  # host CPUs the guests shared (>1: guests ran side by side)
    runner: str = runners.DEFAULT  # what booted the guests (guest/runners.py)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def to_dict(self) -> dict:
        return {
            "series": self.kernel.series,
            "version": self.kernel.version,
            "commit": self.kernel.commit,
            "config_hash": self.kernel.config_hash(),
            "build_seconds": round(self.kernel.build.seconds, 1),
            "accelerator": self.accelerator,
            "jobs": self.jobs,
            "runner": self.runner,
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
            "scenarios": json.loads(report.to_json(self.results)),
        }


def introducing_patch(repo: git.Repo, start: str, tip: str, path: str) -> str | None:
    """The subject of the last patch of start..tip that changed `path`."""
    out = gitops.git(repo, "log", "-1", "--format=%s", f"{start}..{tip}", "--", path)
    return out or None


def explain_build_failure(repo: git.Repo, start: str, tip: str, b: build.Build) -> str:
    lines = []
    for d in b.errors[:5]:
        who = introducing_patch(repo, start, tip, d.file)
        origin = f"introduced by patch '{who}'" if who else "a file the series does not touch"
        lines.append(f"  {d.file}:{d.line}: error: {d.message}  [{origin}]")
    if not lines:
        lines = ["  " + x for x in b.log_tail(15)]
    return f"kernel build of {tip[:12]} failed:\n" + "\n".join(lines) + f"\nfull log: {b.log}"


def build_kernel(series_file: Path, patches_root: Path, series_name: str | None = None,
                 debug: bool = False) -> KernelImage:
    """Regenerate the series, then build the guest kernel at the tip of `series_name`
    (default: the last series of the file) in the shared build directory of its config
    (guest, or debug: KASAN, lockdep, DEBUG_VM, fault injection)."""
    res = pipeline.build_patches(series_file, patches_root)
    return build_tip(res, series_name, debug)


def build_tip(res: pipeline.BuildResult, series_name: str | None = None, debug: bool = False) -> KernelImage:
    """Build the kernel at the tip of series_name (default: the last series) of a build-patches result."""
    target = res.get(series_name) if series_name else res.series[-1]
    repo = kernel.work_repo()
    src = kernel.checkout(repo, target.tip, kernel.cache_dir() / "src")
    config = "debug" if debug else "guest"
    b = build.build(src, kernel.cache_dir() / "build" / config, config,
                    list(DEBUG_FRAGMENTS if debug else FRAGMENTS))
    if not b.ok:
        raise CheckFailed(explain_build_failure(repo, res.kernel_base, target.tip, b))
    log.info("kernel %s v%d (%s) built in %.0f s", target.name, target.version, target.tip[:12], b.seconds)
    return KernelImage(target.name, target.version, target.tip, b)


def run_scenarios(image: KernelImage, chosen: list[scenarios.Scenario], workdir: Path,
                  accel: str | None = None, jobs: int = 1, runner: str = runners.DEFAULT,
                  lab: LabConfig | None = None) -> QemuTestResult:
    """Boot one guest per scenario through `runner` (guest/runners.py), up to `jobs` host CPUs'
    worth of guests at once (see guest/schedule.py; 1, the default, keeps each guest's timing its own)."""
    runners.check_scenarios(runner, chosen)
    boot = runners.get(runner, lab)
    t0 = time.monotonic()
    initrd = initramfs.build_initramfs(kernel.cache_dir() / "initramfs")
    accel = accel or qemu.probe_accel(image.image, initrd, workdir / "probe")
    log.info("accelerator: %s, runner %s%s", accel, runner,
             f", up to {jobs} guest CPUs at once" if jobs > 1 else "")
    out = QemuTestResult(kernel=image, accelerator=accel, jobs=jobs, runner=runner)

    def one(i: int, sc: scenarios.Scenario) -> judge.ScenarioResult:
        log.info("[%d/%d] %s (%s backend)", i + 1, len(chosen), sc.name, sc.backend)
        run = boot(image.image, initrd, sc, workdir / sc.name, accel)
        res = judge.judge_run(sc, run, kunit_src=image.build.src)  # KTAP: the parser of this tree
        log.info("[%d/%d] %s: %s in %.0f s%s", i + 1, len(chosen), sc.name, "PASS" if res.passed else "FAIL",
                 res.seconds, "" if res.passed else ": " + "; ".join(res.reasons))
        return res

    out.results = schedule.run_all(chosen, one, jobs, on_abort=qemu.stop_all, width=lambda sc: sc.host_cpus)
    out.seconds = time.monotonic() - t0
    return out


def choose(names: list[str] | None, scenarios_file: Path | None = None,
           debug: bool = False) -> list[scenarios.Scenario]:
    sf = scenarios.load_scenarios(scenarios_file or scenarios.DEFAULT_FILE)
    chosen = [sf.get(n) for n in (names or (DEBUG_SCENARIOS if debug else DEFAULT_SCENARIOS))]
    return [for_debug(sc) for sc in chosen] if debug else chosen


def _slower(seconds: int | None) -> int | None:
    return None if seconds is None else seconds * DEBUG_SLOWDOWN


def for_debug(sc: scenarios.Scenario) -> scenarios.Scenario:
    """The scenario as the debug kernel runs it: panic on WARN, more time, and more RAM for
    what the debug kernel keeps for itself (KASAN's shadow is 1/8 of all RAM; lockdep and the
    stack depot take more), so the workloads meet about the same pressure.

    The debug run judges cleancache's paths, not its hit rate (expect_eph_hits off): on the debug
    kernel the zcache-eph shrinker evicted every ephemeral frame before fs-reread's second pass
    (59,337 frames evicted, 111,791 puts, 122,925 gets tried, 0 found), while the same scenario on
    the guest kernel gets thousands of pages back.

    A peer that is killed or stopped is so that much later (DEBUG_SLOWDOWN): 15 s after A was
    loaded, the debug kernel had moved no page to it yet. A stop lasts as long as on the guest
    kernel: it is measured against zcache.ramster_timeout_ms, not against the workloads.

    The debug kernel proves paths, not volume: each workload verifies its pages in one pass after
    the fill, not two (the second, in random order, takes KASAN and lockdep under TCG as long as
    the fill and the first together, and goes through the same store and load paths). The fill
    still swaps the working set out through zcache and the pass brings every page back.
    Measured on the CI debug run of 2026-11-30: 1,221 s for ten scenarios with two passes."""
    peer = sc.peer and dataclasses.replace(sc.peer, memory_mib=sc.peer.memory_mib * (DEBUG_RAM_SHARE + 1)
                                           // DEBUG_RAM_SHARE,
                                           kill_after_s=_slower(sc.peer.kill_after_s),
                                           hang_after_s=_slower(sc.peer.hang_after_s))
    return dataclasses.replace(sc, cmdline_extra=f"{sc.cmdline_extra} {DEBUG_CMDLINE}".strip(),
                               timeout_s=sc.timeout_s * DEBUG_SLOWDOWN,
                               memory_mib=sc.memory_mib + sc.guest_ram_mib // DEBUG_RAM_SHARE,
                               workloads=tuple(dataclasses.replace(w, passes=min(w.passes, DEBUG_PASSES))
                                               for w in sc.workloads),
                               expect_eph_hits=False, peer=peer)
