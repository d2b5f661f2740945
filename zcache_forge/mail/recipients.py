"""send-patches: who gets each message.

Recipients come from the kernel's own scripts/get_maintainer.pl, taken from the series tip
together with its MAINTAINERS, plus the series file's `to:`/`cc:`. Each patch goes to its own
recipients, the cover letter to the union of all of them.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import git

from zcache_forge import kernel
from zcache_forge.errors import ForgeError
from zcache_forge.run import run
from zcache_forge.series import SeriesFile
from zcache_forge.series.patchfile import PatchFile, address

GET_MAINTAINER = "scripts/get_maintainer.pl"
# What get_maintainer.pl reads besides the patch: the tree's top level (it checks that it runs
# at the top of a kernel tree), MAINTAINERS, .mailmap and its optional config files.
TREE_FILES = ("COPYING", "CREDITS", "Kbuild", "MAINTAINERS", "Makefile", "README", ".mailmap",
              ".get_maintainer.conf", ".get_maintainer.ignore", GET_MAINTAINER)
# No git history (the cache repository holds an import commit), plain addresses.
GM_COMMON = ("--no-git", "--no-git-fallback", "--no-fixes", "--no-rolestats")
GM_TO = ("--no-l",)          # maintainers and reviewers
GM_CC = ("--no-m", "--no-r")  # mailing lists


@dataclass(frozen=True)
class Recipients:
    to: tuple[str, ...]
    cc: tuple[str, ...]

    def addresses(self) -> set[str]:
        return {address(a) for a in (*self.to, *self.cc)}


def touched_paths(patches: Iterable[PatchFile]) -> set[str]:
    out: set[str] = set()
    for p in patches:
        for a, b in re.findall(r"^diff --git a/(\S+) b/(\S+)$", p.body, re.M):
            out |= {a, b}
    return out


def maintainers_tree(repo: git.Repo, tip: str, paths: set[str], dest: Path) -> Path:
    """What get_maintainer.pl looks at in the tip's tree, written to `dest`: the top-level files
    and directories, MAINTAINERS, .mailmap, the script itself, the patched files, and every
    directory that an F:/X: line names without a trailing '/' (the script tests those with -d)."""
    read = kernel.reader(repo, tip)
    maintainers = (read("MAINTAINERS") or b"").decode(errors="replace")
    named = set(re.findall(r"^[FX]:\s*(\S+)\s*$", maintainers, re.M))
    listing = kernel.git_cmd(repo, "ls-tree", "-r", "-d", "--name-only", "-z", tip)
    for d in filter(None, listing.split("\0")):
        if "/" not in d or d in named:
            (dest / d).mkdir(parents=True, exist_ok=True)
    for path in (*TREE_FILES, *sorted(paths)):
        data = read(path)
        if data is not None:
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            (dest / path).write_bytes(data)
    if not (dest / GET_MAINTAINER).is_file():
        raise ForgeError(f"the kernel tree at {tip[:12]} has no {GET_MAINTAINER}")
    return dest


def get_maintainer(tree: Path, patch: PatchFile, options: tuple[str, ...]) -> list[str]:
    proc = run(["perl", GET_MAINTAINER, *GM_COMMON, *options], cwd=tree, input=patch.path.read_bytes(),
               what=f"{GET_MAINTAINER} on {patch.path.name}")
    return [line.strip() for line in proc.stdout.decode().splitlines() if line.strip()]


@dataclass
class Maintainers:
    """get_maintainer.pl on the tree of `tip`. Results are cached by the tree, the patch, the
    options and the user's ~/.get_maintainer.conf; the tree is only written on a cache miss."""

    repo: git.Repo
    tip: str
    paths: set[str]
    workdir: Path
    tree: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, patch: PatchFile, options: tuple[str, ...]) -> list[str]:
        cached = self._cache_file(patch, options)
        if cached.is_file():
            return cached.read_text().splitlines()
        with self.lock:
            if self.tree is None:
                self.tree = maintainers_tree(self.repo, self.tip, self.paths, self.workdir)
        out = get_maintainer(self.tree, patch, options)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        tmp.write_text("".join(f"{line}\n" for line in out))
        tmp.replace(cached)
        return out

    def _cache_file(self, patch: PatchFile, options: tuple[str, ...]) -> Path:
        h = hashlib.sha256()
        conf = Path.home() / ".get_maintainer.conf"
        for part in (kernel.tree_of(self.repo, self.tip), " ".join((*GM_COMMON, *options)),
                     conf.read_text() if conf.is_file() else ""):
            h.update(part.encode() + b"\0")
        h.update(patch.path.read_bytes())
        return kernel.cache_dir() / "get_maintainer" / f"{h.hexdigest()}.txt"


def merge(to: Iterable[str], cc: Iterable[str], exclude: Iterable[str]) -> Recipients:
    """Deduplicate by address, first spelling wins, To before Cc; drop `exclude`."""
    seen = {address(a) for a in exclude}
    out: tuple[list[str], list[str]] = ([], [])
    for bucket, entries in zip(out, (to, cc), strict=True):
        for e in entries:
            a = address(e)
            if a and a not in seen:
                seen.add(a)
                bucket.append(e)
    return Recipients(tuple(out[0]), tuple(out[1]))


def patch_recipients(sf: SeriesFile, maintainers: Maintainers, patch: PatchFile, sender: str) -> Recipients:
    to = [*sf.to, *maintainers(patch, GM_TO)]
    cc = [*sf.cc, *maintainers(patch, GM_CC)]
    return merge(to, cc, [sender])


def cover_recipients(sf: SeriesFile, each: list[Recipients], sender: str) -> Recipients:
    to = [*sf.to, *(a for r in each for a in r.to)]
    cc = [*sf.cc, *(a for r in each for a in r.cc)]
    return merge(to, cc, [sender])
