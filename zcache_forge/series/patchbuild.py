"""The build check of build-patches: the guest kernel (with zcache) builds after every patch.

Bisectability as reviewers and `git bisect` need it: each commit of each series is
checked out in the shared worktree and built, W=1, in the shared guest build
directory (so only what the patch touched is rebuilt). A patch passes when the
build succeeds and the compiler says nothing about zcache's own files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from zcache_forge import kernel
from zcache_forge.guest.qemutest import FRAGMENTS
from zcache_forge.kernel import build
from zcache_forge.series import pipeline

log = logging.getLogger(__name__)

ZCACHE_DIRS = ("drivers/staging/zcache/", "mm/zcache/")


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

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, object]:
        return {"series": self.series, "number": self.number, "subject": self.subject,
                "commit": self.commit, "status": self.status, "seconds": round(self.seconds, 1),
                "messages": list(self.messages), "log": self.log}


@dataclass
class SeriesBuild:
    name: str
    patches: list[PatchBuild] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.patches) and all(p.passed for p in self.patches)


def _messages(diags: list[build.Diagnostic]) -> tuple[str, ...]:
    return tuple(f"{d.file}:{d.line}: {d.kind}: {d.message}" for d in diags)


def build_patch(s: pipeline.SeriesResult, number: int, commit: str) -> PatchBuild:
    repo = kernel.work_repo()
    subject = repo.commit(commit).summary
    src = kernel.checkout(repo, commit, kernel.cache_dir() / "src")
    log.info("build check %s %d/%d: %s", s.name, number, len(s.commits), subject)
    b = build.build(src, kernel.cache_dir() / "build" / "guest", "guest", list(FRAGMENTS))
    if not b.ok:  # no compiler error (a link or config failure): quote the end of the log
        status, messages = "fail", _messages(b.errors[:10]) or tuple(b.log_tail(10))
    else:
        warnings = b.diagnostics_in(ZCACHE_DIRS)
        status, messages = ("warn" if warnings else "pass"), _messages(warnings[:10])
    return PatchBuild(s.name, number, str(subject), commit, status, b.seconds, messages, str(b.log or ""))


def build_every_patch(res: pipeline.BuildResult) -> list[SeriesBuild]:
    """Build after each patch of each series, in order; a failure does not stop the others."""
    out = []
    for s in res.series:
        sb = SeriesBuild(s.name)
        for i, commit in enumerate(s.commits, 1):
            pb = build_patch(s, i, commit)
            log.info("build check %s %d/%d: %s in %.0f s", s.name, i, len(s.commits), pb.status, pb.seconds)
            sb.patches.append(pb)
        out.append(sb)
    return out
