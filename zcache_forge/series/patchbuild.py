"""The build check of build-patches: the guest kernel (with zcache) builds after every patch.

Bisectability as reviewers and `git bisect` need it: each commit of each series is
checked out in the shared worktree and built, W=1, in the shared guest build
directory (so only what the patch touched is rebuilt). A patch passes when the
build succeeds and the compiler says nothing about zcache's own files.

With boot, each patch's kernel is also booted on the smoke scenario (qemu/scenarios.yaml):
once zcache registers with frontswap and shows its counters, the smoke run must swap
through it; before that (the first patches) the guest must boot and verify every page.
A patch after which zcache no longer registers, when an earlier one did, fails.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcache_forge import gitops, kernel
from zcache_forge.guest import console, initramfs, judge, qemu, scenarios
from zcache_forge.guest.qemutest import FRAGMENTS
from zcache_forge.kernel import build
from zcache_forge.series import pipeline

log = logging.getLogger(__name__)

ZCACHE_DIRS = ("drivers/staging/zcache/", "mm/zcache/")
BOOT_SCENARIO = "smoke"


@dataclass(frozen=True)
class PatchBoot:
    """The smoke boot of one patch's kernel."""

    status: str          # "pass", "fail", or "skip" (the build failed)
    seconds: float
    through_zcache: bool  # the guest swapped through zcache (it registered and counted)
    reasons: tuple[str, ...] = ()
    console_log: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": round(self.seconds, 1),
                "through_zcache": self.through_zcache, "reasons": list(self.reasons),
                "console_log": self.console_log}

    def cell(self) -> str:
        """For the table: "pass 24 s (zcache)", "pass 20 s (no zcache counters yet)", "fail 31 s"."""
        if self.status == "skip":
            return "-"
        where = " (zcache)" if self.through_zcache else " (no zcache counters yet)" if self.passed else ""
        return f"{self.status} {self.seconds:.0f} s{where}"


@dataclass(frozen=True)
class PatchBuild:
    """The build after one patch: which patch, how it went, what the compiler said."""

    series: str
    number: int        # 1-based position in its series
    subject: str
    commit: str
    status: str        # "pass", "fail" (the build failed) or "warn" (built, with zcache warnings)
    seconds: float
    messages: tuple[str, ...] = ()  # errors, or warnings in zcache's files: "file:line: kind: text"
    log: str = ""
    boot: PatchBoot | None = None  # with --boot: the smoke boot of this patch's kernel
    image: Path | None = field(default=None, compare=False)  # the bzImage (until the next build)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, object]:
        return {"series": self.series, "number": self.number, "subject": self.subject,
                "commit": self.commit, "status": self.status, "seconds": round(self.seconds, 1),
                "messages": list(self.messages), "log": self.log,
                **({"boot": self.boot.to_dict()} if self.boot else {})}


@dataclass
class SeriesBuild:
    name: str
    patches: list[PatchBuild] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.patches) and all(p.passed for p in self.patches)

    @property
    def booted(self) -> bool:
        """Every patch's kernel passed its smoke boot."""
        return bool(self.patches) and all(p.boot is not None and p.boot.passed for p in self.patches)


def _messages(diags: list[build.Diagnostic]) -> tuple[str, ...]:
    return tuple(f"{d.file}:{d.line}: {d.kind}: {d.message}" for d in diags)


@dataclass
class Booter:
    """Boots each patch's kernel on the smoke scenario: one initramfs, one accelerator probe."""

    workdir: Path
    accel: str | None = None
    initrd: Path | None = None
    zcache_since: str | None = None  # the first patch whose smoke run went through zcache

    def boot(self, pb: PatchBuild, image: Path) -> PatchBoot:
        smoke = scenarios.get(BOOT_SCENARIO)
        if self.initrd is None:
            self.initrd = initramfs.build_initramfs(kernel.cache_dir() / "initramfs")
        if self.accel is None:
            self.accel = qemu.probe_accel(image, self.initrd, self.workdir / "probe")
        run = qemu.run_guest(image, self.initrd, smoke, self.workdir / f"{pb.series}-{pb.number:02d}",
                             accel=self.accel)
        return self.judge(pb, smoke, run)

    def judge(self, pb: PatchBuild, smoke: scenarios.Scenario, run: qemu.GuestRun) -> PatchBoot:
        """Judge as smoke when zcache registered and shows its counters, else as a plain-swap boot that
        must verify every page; losing zcache after an earlier patch had it is a failure."""
        text = run.console_log.read_text(errors="replace") if run.console_log.is_file() else ""
        boots = console.parse_console(text).boots
        boot = boots[-1].raw if boots else {}
        has_zcache = boot.get("zcache_enabled") is True and boot.get("zcache_debugfs") is True
        job = smoke if has_zcache else dataclasses.replace(smoke, backend="none", expect=())
        res = judge.judge_run(job, run)
        reasons = list(res.reasons)
        if has_zcache and self.zcache_since is None and res.passed:
            self.zcache_since = f"{pb.series} {pb.number}"
        elif not has_zcache and self.zcache_since is not None and boot:
            reasons.append(f"zcache did not register (or shows no counters), which it did since patch "
                           f"{self.zcache_since}")
        return PatchBoot("fail" if reasons else "pass", run.seconds, has_zcache and not reasons,
                         tuple(reasons), str(run.console_log))


def build_patch(s: pipeline.SeriesResult, number: int, commit: str) -> PatchBuild:
    repo = kernel.work_repo()
    subject = gitops.git(repo, "log", "-1", "--format=%s", commit)
    src = kernel.checkout(repo, commit, kernel.cache_dir() / "src")
    log.info("build check %s %d/%d: %s", s.name, number, len(s.commits), subject)
    # a patch before the one that adds a requested option (CONFIG_ZCACHE, CONFIG_CLEANCACHE) builds without it
    b = build.build(src, kernel.cache_dir() / "build" / "guest", "guest", list(FRAGMENTS), only_defined=True)
    if not b.ok:  # no compiler error (a link or config failure): quote the end of the log
        status, messages = "fail", _messages(b.errors[:10]) or tuple(b.log_tail(10))
    else:
        warnings = b.diagnostics_in(ZCACHE_DIRS)
        status, messages = ("warn" if warnings else "pass"), _messages(warnings[:10])
    return PatchBuild(s.name, number, str(subject), commit, status, b.seconds, messages, str(b.log or ""),
                      image=b.image if b.ok else None)


def build_every_patch(res: pipeline.BuildResult, booter: Booter | None = None) -> list[SeriesBuild]:
    """Build after each patch of each series, in order; a failure does not stop the others.
    With a booter, each patch's kernel is also booted on the smoke scenario."""
    out = []
    for s in res.series:
        sb = SeriesBuild(s.name)
        for i, commit in enumerate(s.commits, 1):
            pb = build_patch(s, i, commit)
            log.info("build check %s %d/%d: %s in %.0f s", s.name, i, len(s.commits), pb.status, pb.seconds)
            if booter is not None:
                boot = (booter.boot(pb, pb.image) if pb.image is not None
                        else PatchBoot("skip", 0.0, False, ("the kernel did not build",)))
                log.info("boot check %s %d/%d: %s", s.name, i, len(s.commits), boot.cell())
                pb = dataclasses.replace(pb, boot=boot)
            sb.patches.append(pb)
        out.append(sb)
    return out
