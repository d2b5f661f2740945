"""build-patches: series file -> rendered files -> commits -> patches/<series>/v<N>/."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from zcache_forge import kernel, series
from zcache_forge.series import apply, baseversion, export, render

log = logging.getLogger(__name__)


@dataclass
class SeriesResult:
    name: str
    version: int
    branch: str
    base: str          # the kernel commit the whole chain stands on
    start: str         # the commit this series is applied on
    commits: list[str]
    files: list[Path]

    @property
    def tip(self) -> str:
        return self.commits[-1]


@dataclass
class BuildResult:
    series_file: Path
    kernel_base: str
    base_version: str = ""           # the base's Makefile version, e.g. 6.1.192
    base_notice: str | None = None   # set when patches/ was made on another point release
    series: list[SeriesResult] = field(default_factory=list)
    seconds: float = 0.0

    def get(self, name: str) -> SeriesResult:
        return next(s for s in self.series if s.name == name)


def build_patches(series_file: Path, patches_root: Path, only: list[str] | None = None) -> BuildResult:
    """Validate, render everything, then commit and export each series (file order)."""
    t0 = time.monotonic()
    sf = series.load(series_file)
    wanted = [s.name for s in sf.series] if not only else only
    for name in wanted:
        sf.get(name)  # unknown names are an error before anything runs
    repo = kernel.work_repo()
    base = kernel.base_commit(repo, sf.base)
    version = kernel.version_at(repo, base)

    # Render all of it first: a template error must leave nothing half written.
    read_base = kernel.reader(repo, base)
    rendered = {}
    for s in sf.series:
        chain = sf.chain(s.name)
        rendered[s.name] = (render.render_chain(sf, chain, read_base)[-1], render.render_cover(sf, s, chain))

    result = BuildResult(series_file=Path(series_file), kernel_base=base, base_version=version)
    tips: dict[str, str] = {"kernel": base}
    minutes: dict[str, int] = {"kernel": 1}
    for s in sf.series:
        patches, cover = rendered[s.name]
        parent = tips[s.base]
        log.info("committing %s v%d (%d patches) on %s", s.name, s.version, len(patches), parent[:12])
        commits = apply.commit_series(repo, sf, s, parent, patches, minutes[s.base])
        tips[s.name] = commits[-1]
        minutes[s.name] = minutes[s.base] + len(patches)
        files: list[Path] = []
        if s.name in wanted:
            files = export.format_patch(repo, sf, s, base, parent, commits[-1], cover, patches_root,
                                        export.previous_range(repo, s, patches_root, parent))
        result.series.append(SeriesResult(s.name, s.version, apply.branch_name(s), base, parent,
                                          commits, files))
    # after the export: a failed run records nothing
    result.base_notice = baseversion.check(sf, version, patches_root)
    result.seconds = time.monotonic() - t0
    return result
