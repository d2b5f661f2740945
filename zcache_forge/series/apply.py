"""Commit rendered patches onto a base commit in the tool's own repository (GitPython).

Trees are built in a temporary index, so the base tree is never checked out
for this and the user's tree is never touched. Identities and dates come from
the series file, so the same input gives the same commit ids.
"""

from __future__ import annotations

import io
import tempfile
from datetime import datetime, timedelta

import git
from gitdb import IStream

from zcache_forge.kernel import cache_dir, git_cmd, ident_env
from zcache_forge.series import Series, SeriesFile
from zcache_forge.series.render import RenderedPatch

NOTES_REF = "refs/notes/zcache-forge"


def branch_name(series: Series) -> str:
    return f"zcache-forge/{series.name}/v{series.version}"


def start_ref(name: str, version: int) -> str:
    """The commit version `version` of series `name` was applied on (for range-diffs)."""
    return f"refs/zcache-forge/start/{name}/v{version}"


def _date(sf: SeriesFile, minutes: int) -> str:
    start = datetime.strptime(sf.date, "%Y-%m-%d %H:%M:%S %z")
    return (start + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S %z")


def _store_blob(repo: git.Repo, data: bytes) -> str:
    return repo.odb.store(IStream(git.Blob.type, len(data), io.BytesIO(data))).binsha.hex()


def _tree(repo: git.Repo, parent: str, rp: RenderedPatch) -> str:
    with tempfile.TemporaryDirectory(prefix="zcf-index-", dir=cache_dir()) as tmp:
        env = {"GIT_INDEX_FILE": f"{tmp}/index"}
        git_cmd(repo, "read-tree", parent, env=env)
        lines = []
        for ch in rp.changes:
            if ch.data is None:
                lines.append(f"0 {'0' * 40}\t{ch.path}")
            else:
                lines.append(f"100644 {_store_blob(repo, ch.data)}\t{ch.path}")
        git_cmd(repo, "update-index", "--index-info", env=env, input=("\n".join(lines) + "\n").encode())
        return git_cmd(repo, "write-tree", env=env)


def commit_series(repo: git.Repo, sf: SeriesFile, series: Series, parent: str,
                  patches: list[RenderedPatch], first_minute: int) -> list[str]:
    """Commit `patches` in order on `parent`; return the commit ids. Updates the series branch."""
    commits = []
    start = parent
    for n, rp in enumerate(patches):
        date = _date(sf, first_minute + n)
        env = ident_env(sf.author_name, sf.author_email, date)
        tree = _tree(repo, parent, rp)
        parent = git_cmd(repo, "commit-tree", tree, "-p", parent, env=env, input=rp.message.encode())
        commits.append(parent)
        notes = _changes_note(rp, series.version)
        if notes:
            git_cmd(repo, "notes", "--ref", NOTES_REF, "add", "-f", "-m", notes, parent, env=env)
    git_cmd(repo, "update-ref", f"refs/heads/{branch_name(series)}", parent)
    git_cmd(repo, "update-ref", start_ref(series.name, series.version), start)
    return commits


def _changes_note(rp: RenderedPatch, version: int) -> str:
    """Per-patch changelog, shown below the '---' of the patch (format-patch --notes)."""
    parts = [f"v{v}: {text.strip()}" for v, text in sorted(rp.patch.changes.items(), reverse=True)
             if v <= version]
    return "\n".join(parts)
