"""Write a committed series with git format-patch, and fill in its cover letter."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import git

from zcache_forge.errors import ForgeError
from zcache_forge.kernel import git_cmd, ident_env
from zcache_forge.mail.sentrecord import FILE as SENT_RECORD
from zcache_forge.series import Series, SeriesFile, replay
from zcache_forge.series.apply import NOTES_REF, start_ref
from zcache_forge.series.checkpatch import is_cover

SUBJECT_PLACEHOLDER = "*** SUBJECT HERE ***"
BLURB_PLACEHOLDER = "*** BLURB HERE ***"

# Files of a version folder that format_patch keeps when it rewrites the folder.
KEEP = (SENT_RECORD,)

log = logging.getLogger(__name__)


def series_dir(patches_root: Path, series: Series) -> Path:
    return patches_root / series.name / f"v{series.version}"


def previous_range(repo: git.Repo, series: Series, patches_root: Path, onto: str | None = None) -> str | None:
    """The commits of v<N-1> as 'start..tip', from its branch in the cache repository.

    Its start is the ref commit_series records; for a branch built before that ref existed,
    the number of patches in patches/<series>/v<N-1>/ says how far back the start is. When the
    branch is not in the cache (a new machine), it is rebuilt from patches/<series>/v<N-1>/ on
    `onto` (where v<N> starts). None (no range-diff) for v1, or when neither is there."""
    if series.version == 1:
        return None
    prev = series.version - 1
    branch = f"refs/heads/zcache-forge/{series.name}/v{prev}"
    tip = _rev(repo, branch)
    folder = patches_root / series.name / f"v{prev}"
    if tip is None and onto is not None and folder.is_dir():
        try:
            tip = replay.replay(repo, folder, onto)
        except ForgeError as exc:
            log.warning("%s v%d: no range-diff: %s", series.name, series.version, exc)
            return None
        git_cmd(repo, "update-ref", branch, tip)
        git_cmd(repo, "update-ref", start_ref(series.name, prev), onto)
        log.info("%s v%d: rebuilt branch zcache-forge/%s/v%d from %s for the range-diff",
                 series.name, series.version, series.name, prev, folder)
    if tip is None:
        log.warning("%s v%d: no range-diff in the cover letter: branch zcache-forge/%s/v%d is not in %s "
                    "and %s does not exist", series.name, series.version, series.name, prev, repo.git_dir,
                    folder)
        return None
    start = _rev(repo, start_ref(series.name, prev))
    if start is None:
        count = len([f for f in folder.glob("*.patch") if not is_cover(f)])
        start = _rev(repo, f"{tip}~{count}") if count else None
    if start is None:
        log.warning("%s v%d: no range-diff: the start of v%d is unknown", series.name, series.version, prev)
        return None
    return f"{start}..{tip}"


def _rev(repo: git.Repo, rev: str) -> str | None:
    try:
        return git_cmd(repo, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
    except ForgeError:
        return None


def format_patch(repo: git.Repo, sf: SeriesFile, series: Series, kernel_base: str, start: str,
                 tip: str, cover: tuple[str, str], patches_root: Path,
                 range_diff: str | None = None) -> list[Path]:
    """Export start..tip into patches/<series>/v<N>/, replacing only that version's folder.

    With `range_diff` ('start..tip' of the previous version) the cover letter gets a
    'Range-diff against v<N-1>' section."""
    out = series_dir(patches_root, series)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    args = ["format-patch", "-M", "--cover-letter", f"--base={kernel_base}",
            f"--subject-prefix={series.subject_prefix}", "--no-signature", "--zero-commit",
            f"--notes={NOTES_REF}", "--abbrev=12", "-o", str(tmp)]
    if series.version > 1:
        args.append(f"-v{series.version}")
    if range_diff:
        args.append(f"--range-diff={range_diff}")
    args += [f"--to={a}" for a in sf.to] + [f"--cc={a}" for a in sf.cc]
    args.append(f"{start}..{tip}")
    # The cover letter's date is the committer date given here: fix it for byte-identical output.
    env = ident_env(sf.author_name, sf.author_email, sf.date)
    try:
        git_cmd(repo, *args, env=env, what=f"git format-patch of series {series.name}")
        files = sorted(tmp.glob("*.patch"))
        _fill_cover(files[0], series, cover)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for name in KEEP:  # what send-patches recorded stays with the version, whatever is regenerated
        if (out / name).is_file():
            shutil.copy2(out / name, tmp / name)
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return sorted(out.glob("*.patch"))


def _fill_cover(path: Path, series: Series, cover: tuple[str, str]) -> None:
    subject, body = cover
    text = path.read_text()
    if SUBJECT_PLACEHOLDER not in text or BLURB_PLACEHOLDER not in text:
        raise ForgeError(f"{path}: git format-patch wrote no cover letter placeholders")
    text = text.replace(SUBJECT_PLACEHOLDER, subject, 1).replace(BLURB_PLACEHOLDER, body, 1)
    lines = text.rstrip("\n").split("\n")
    for i, line in enumerate(lines):
        if line.startswith("base-commit: "):
            lines.insert(i + 1, f"change-id: {series.change_id}")
            break
    path.write_text("\n".join(lines) + "\n")
