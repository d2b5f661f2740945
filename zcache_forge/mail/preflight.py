"""send-patches' pre-flight checks: b4-like checks of a version folder (file names, subjects,
sign-offs, change-id, leftover placeholders), and the required checks without a passing stamp."""

from __future__ import annotations

import re
from pathlib import Path

from zcache_forge.errors import CheckFailed, ForgeError
from zcache_forge.series import Series, stamps
from zcache_forge.series.checkpatch import is_cover
from zcache_forge.series.export import BLURB_PLACEHOLDER, SUBJECT_PLACEHOLDER, series_dir
from zcache_forge.series.patchfile import PatchFile, address, read_folder

SUBJECT_MAX = 75
TAG_RE = re.compile(r"^\[(?P<prefix>.+?)(?: v(?P<version>\d+))? (?P<i>\d+)/(?P<n>\d+)\] \S")
CHANGELOG_RE = re.compile(
    r"^\s*(changes (in|since|from|for) v\d+|v\d+\s*(->|\.\.|to)\s*v\d+|v\d+:|changelog\b)", re.I | re.M)


def preflight(series: Series, folder: Path, patches: list[PatchFile]) -> list[str]:
    """b4-like checks of a version folder; every problem names the file."""
    problems = []
    if folder.name != f"v{series.version}":
        problems.append(f"{folder}: folder name does not match version {series.version} of the series file")
    n = len(series.patches)
    if len(patches) != n + 1 or not is_cover(patches[0].path):
        problems.append(f"{folder}: expected a cover letter and {n} patches ({series.where}.patches), "
                        f"found {len(patches)} files")
    for i, p in enumerate(patches):
        problems += _check_placeholders(p)
        problems += _check_name(p, series.version, i)
        problems += _check_subject(p, series, i, n)
        if i == 0:
            problems += _check_cover(p, series)
        else:
            problems += _check_signoff(p)
            problems += _check_changelog(p)
    return problems


def _check_placeholders(p: PatchFile) -> list[str]:
    text = p.path.read_text()
    return [f"{p.path}: leftover placeholder {ph!r}" for ph in (SUBJECT_PLACEHOLDER, BLURB_PLACEHOLDER)
            if ph in text]


def _check_name(p: PatchFile, version: int, i: int) -> list[str]:
    m = re.match(r"^(?:v(\d+)-)?(\d{4})-", p.path.name)
    if not m:
        return [f"{p.path}: file name is not of the form [vN-]NNNN-*.patch"]
    out = []
    named = int(m[1]) if m[1] else 1
    if named != version or m[1] == "1":
        want = f"v{version}-" if version > 1 else "no 'vN-' prefix"
        out.append(f"{p.path}: file name says v{named}, the series file says version {version} ({want})")
    if int(m[2]) != i:
        out.append(f"{p.path}: file name numbers it {int(m[2])}, it is message {i} of the folder")
    return out


def _check_subject(p: PatchFile, series: Series, i: int, n: int) -> list[str]:
    s = p.subject
    out = []
    if len(s) > SUBJECT_MAX:
        out.append(f"{p.path}: Subject is {len(s)} columns, more than {SUBJECT_MAX}: {s!r}")
    m = TAG_RE.match(s)
    if not m:
        return out + [f"{p.path}: Subject {s!r} has no '[{series.subject_prefix} i/n]' tag"]
    version = int(m["version"]) if m["version"] else 1
    if m["version"] == "1":
        out.append(f"{p.path}: Subject says 'v1'; version 1 is sent as '[{series.subject_prefix} i/n]'")
    if version != series.version:
        out.append(f"{p.path}: Subject says v{version}, the series file says version {series.version}")
    if m["prefix"] != series.subject_prefix:
        out.append(f"{p.path}: Subject prefix {m['prefix']!r} is not {series.subject_prefix!r}")
    if (int(m["i"]), int(m["n"])) != (i, n):
        out.append(f"{p.path}: Subject numbers {m['i']}/{m['n']}, expected {i}/{n}")
    return out


def _check_cover(p: PatchFile, series: Series) -> list[str]:
    if f"\nchange-id: {series.change_id}\n" not in f"\n{p.body}":
        return [f"{p.path}: no 'change-id: {series.change_id}' line ({series.where}.change_id)"]
    return []


def _check_signoff(p: PatchFile) -> list[str]:
    author = address(p.header("From") or "")
    sobs = [address(m) for m in re.findall(r"^Signed-off-by: (.+)$", p.message, re.M)]
    if not sobs:
        return [f"{p.path}: no Signed-off-by above the '---'"]
    if author not in sobs:
        return [f"{p.path}: no Signed-off-by from the author <{author}>"]
    return []


def _check_changelog(p: PatchFile) -> list[str]:
    m = CHANGELOG_RE.search(p.message)
    if m:
        return [f"{p.path}: version changelog {m.group(0).strip()!r} above the '---' "
                "(put it in the YAML 'changes', it goes below the '---')"]
    return []


def checked_patches(series: Series, patches_root: Path) -> list[PatchFile]:
    """The version folder's files, after the pre-flight checks (ForgeError listing all problems)."""
    folder = series_dir(patches_root, series)
    if not folder.is_dir():
        raise ForgeError(f"{folder} not found: run invoke build-patches ({series.where}.version is "
                         f"{series.version})")
    patches = read_folder(folder)
    problems = preflight(series, folder, patches)
    if problems:
        raise CheckFailed(f"pre-flight checks of {folder} failed:\n" + "\n".join(problems))
    return patches


def unchecked(folder: Path) -> list[str]:
    """The required checks that have not passed for exactly the folder's files."""
    if not folder.is_dir():
        raise ForgeError(f"{folder} not found: run invoke build-patches")
    return stamps.load(folder).missing()
