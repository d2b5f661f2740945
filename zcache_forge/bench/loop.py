"""bench-loop: how long the edit loop takes, step by step.

A kernel developer's loop is: edit a template, regenerate the series, rebuild the kernel,
boot it on the smoke scenario, read the verdict. bench-loop does exactly that on a
temporary copy of series.yaml and templates/ (the project is never touched): a warm-up
build first (not counted: the loop starts from a built tree), then one comment line of a
zcache C template is changed and every step is timed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from zcache_forge import kernel, series
from zcache_forge.errors import ForgeError
from zcache_forge.guest import initramfs, judge, qemu, qemutest, scenarios
from zcache_forge.series import pipeline

log = logging.getLogger(__name__)

TOUCHED = Path("zcache") / "zcache-main.c.j2"  # under templates/
SCENARIO = "smoke"
T = TypeVar("T")


@dataclass
class LoopResult:
    touched: str  # template:line that was changed
    steps: list[tuple[str, float]] = field(default_factory=list)  # (step, seconds), in order
    warmup_seconds: float = 0.0
    verdict: judge.ScenarioResult | None = None
    accelerator: str = ""

    @property
    def total(self) -> float:
        return sum(s for _, s in self.steps)

    @property
    def passed(self) -> bool:
        return self.verdict is not None and self.verdict.passed

    def to_dict(self) -> dict[str, Any]:
        return {"touched": self.touched, "warmup_seconds": round(self.warmup_seconds, 1),
                "accelerator": self.accelerator,
                "steps": {name: round(s, 1) for name, s in self.steps}, "total_seconds": round(self.total, 1),
                "passed": self.passed, "reasons": self.verdict.reasons if self.verdict else [],
                "guest_seconds": self.verdict.seconds if self.verdict else None}


def copy_project(series_file: Path, dest: Path) -> Path:
    """series.yaml, templates/ and the cover results file (if any) under dest; the copy's series file."""
    sf = series.load(series_file)
    root = series_file.parent
    shutil.copytree(root / "templates", dest / "templates")
    shutil.copy2(series_file, dest / series_file.name)
    if sf.cover_results is not None and sf.cover_results.is_file():
        target = dest / sf.cover_results.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sf.cover_results, target)
    return dest / series_file.name


def touch_comment(template: Path, token: str) -> str:
    """Append token to the first C comment body line (" * ...") of template; "name:line"."""
    lines = template.read_text().split("\n")
    for i, line in enumerate(lines):
        if line.startswith(" * ") and "*/" not in line:
            lines[i] = f"{line} [{token}]"
            template.write_text("\n".join(lines))
            return f"{template.name}:{i + 1}"
    raise ForgeError(f"{template}: no comment line (' * ...') to touch")


def run_loop(series_file: Path, workdir: Path, accel: str | None = None,
             on_step: Callable[[str, float], None] | None = None) -> LoopResult:
    """Warm up, touch a template comment, then time: build-patches, kernel rebuild, initramfs,
    accelerator probe, smoke boot, verdict."""
    smoke = scenarios.get(SCENARIO)
    with tempfile.TemporaryDirectory(prefix="zcf-bench-loop-") as tmp:
        proj = copy_project(series_file, Path(tmp) / "proj")
        patches = Path(tmp) / "patches"
        t0 = time.monotonic()
        qemutest.build_kernel(proj, patches)  # the loop starts from a built tree
        warmup = time.monotonic() - t0
        touched = touch_comment(proj.parent / "templates" / TOUCHED, f"bench-loop {time.time_ns()}")
        out = LoopResult(touched=touched, warmup_seconds=warmup)

        def step(name: str, fn: Callable[[], T]) -> T:
            t = time.monotonic()
            value = fn()
            took = time.monotonic() - t
            out.steps.append((name, took))
            log.info("bench-loop: %s: %.1f s", name, took)
            if on_step:
                on_step(name, took)
            return value

        res = step("build-patches", lambda: pipeline.build_patches(proj, patches))
        image = step("kernel rebuild", lambda: qemutest.build_tip(res))
        initrd = step("initramfs", lambda: initramfs.build_initramfs(kernel.cache_dir() / "initramfs"))
        out.accelerator = step("accel probe", lambda: accel or qemu.probe_accel(image.image, initrd,
                                                                              workdir / "probe"))
        run = step("boot smoke", lambda: qemu.run_guest(image.image, initrd, smoke, workdir / SCENARIO,
                                                       accel=out.accelerator))
        out.verdict = step("verdict", lambda: judge.judge_run(smoke, run))
    return out
