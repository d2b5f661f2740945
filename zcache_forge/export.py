"""Write a committed series with git format-patch, and fill in its cover letter."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import git

from .apply import NOTES_REF
from .errors import ForgeError
from .kernel import git_cmd, ident_env
from .series import Series, SeriesFile

SUBJECT_PLACEHOLDER = "*** SUBJECT HERE ***"
BLURB_PLACEHOLDER = "*** BLURB HERE ***"


def series_dir(patches_root: Path, series: Series) -> Path:
    return patches_root / series.name / f"v{series.version}"


def format_patch(repo: git.Repo, sf: SeriesFile, series: Series, kernel_base: str, start: str,
                 tip: str, cover: tuple[str, str], patches_root: Path) -> list[Path]:
    """Export start..tip into patches/<series>/v<N>/, replacing only that version's folder."""
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
