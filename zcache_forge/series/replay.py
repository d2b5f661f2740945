"""Rebuild a version's commits from its format-patch files, without a worktree.

The range-diff of v<N> is taken against v<N-1>'s branch in the cache. On a new
machine (or a new cache) that branch is gone, but patches/<series>/v<N-1>/ is
still in the project: each patch is split with git mailinfo, applied to a
temporary index with git apply --cached, and committed with its own author,
date and message, so the branch exists again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import git

from zcache_forge.errors import ForgeError
from zcache_forge.kernel import git_cmd
from zcache_forge.series.checkpatch import is_cover

log = logging.getLogger(__name__)


def _mailinfo(repo: git.Repo, patch: Path, tmp: Path) -> tuple[dict[str, str], str, Path]:
    msg, diff = tmp / "msg", tmp / "diff"
    out = git_cmd(repo, "mailinfo", str(msg), str(diff), input=patch.read_bytes(),
                  what=f"git mailinfo {patch.name}")
    info = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    if not info.get("Subject") or not info.get("Author"):
        raise ForgeError(f"{patch}: not a git format-patch file (no Subject or From)")
    body = msg.read_text(errors="replace").strip()
    return info, info["Subject"] + ("\n\n" + body if body else "") + "\n", diff


def replay(repo: git.Repo, folder: Path, onto: str) -> str:
    """Commit the patches of `folder` (in file-name order, cover letter skipped) on `onto`;
    return the last commit. A patch that does not apply is an error naming it."""
    patches = sorted(f for f in folder.glob("*.patch") if not is_cover(f))
    if not patches:
        raise ForgeError(f"{folder}: no patches to replay")
    with tempfile.TemporaryDirectory(prefix="zcache-forge-replay-") as d:
        tmp = Path(d)
        env = {"GIT_INDEX_FILE": str(tmp / "index")}
        git_cmd(repo, "read-tree", onto, env=env)
        tip = onto
        for patch in patches:
            info, message, diff = _mailinfo(repo, patch, tmp)
            git_cmd(repo, "apply", "--cached", str(diff), env=env, what=f"applying {patch}")
            tree = git_cmd(repo, "write-tree", env=env)
            ident = {"GIT_AUTHOR_NAME": info["Author"], "GIT_AUTHOR_EMAIL": info.get("Email", ""),
                     "GIT_AUTHOR_DATE": info.get("Date", ""), "GIT_COMMITTER_NAME": info["Author"],
                     "GIT_COMMITTER_EMAIL": info.get("Email", ""), "GIT_COMMITTER_DATE": info.get("Date", "")}
            tip = git_cmd(repo, "commit-tree", tree, "-p", tip, "-F", "-", env={**env, **ident},
                          input=message.encode(), what=f"committing {patch.name}")
            os.unlink(diff)
    return tip
