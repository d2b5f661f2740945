"""Run the kernel's own scripts/checkpatch.pl --strict on exported patches."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zcache_forge.errors import ForgeError

TOTAL_RE = re.compile(r"total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?(\d+) lines checked")


@dataclass(frozen=True)
class CheckResult:
    patch: Path
    errors: int
    warnings: int
    checks: int
    output: str

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.warnings == 0


def checkpatch(tree: Path, patch: Path) -> CheckResult:
    script = tree / "scripts" / "checkpatch.pl"
    if not script.is_file():
        raise ForgeError(f"{script} not found: the kernel tree has no checkpatch.pl")
    # Fed on stdin: given a path inside a git work tree (like this project's patches/),
    # checkpatch.pl would take the patch for a source file and check it as one.
    proc = subprocess.run(
        ["perl", str(script), "--strict", "--show-types", "--color=never", "--root", str(tree), "-"],
        cwd=tree, capture_output=True, text=True, input=patch.read_text(),
    )
    m = TOTAL_RE.search(proc.stdout)
    if not m:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise ForgeError(f"checkpatch.pl gave no summary for {patch}:\n{tail}")
    return CheckResult(patch, int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), proc.stdout)


def check_series(tree: Path, files: list[Path]) -> list[CheckResult]:
    """checkpatch every patch of a series (the cover letter is not a patch)."""
    return [checkpatch(tree, f) for f in files if not is_cover(f)]


def is_cover(path: Path) -> bool:
    """0000-cover-letter.patch, or v2-0000-cover-letter.patch."""
    return re.match(r"^(v\d+-)?0000-", path.name) is not None
