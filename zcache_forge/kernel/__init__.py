"""The base kernel: Debian's tarball imported once into a cached git repository,
or a commit of the user's own tree, which is only read (never written to).

All generated commits live in the tool's own bare repository in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import git

from zcache_forge.errors import ForgeError
from zcache_forge.run import Progress, run, stream
from zcache_forge.series import Base

log = logging.getLogger(__name__)

IMPORT_DATE = "2000-01-01 00:00:00 +0000"
IMPORT_IDENT = {"name": "zcache-forge", "email": "zcache-forge@localhost"}


def cache_dir() -> Path:
    d = Path(os.environ.get("ZCACHE_FORGE_CACHE", Path.home() / ".cache" / "zcache-forge"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def ident_env(name: str, email: str, date: str) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": date,
    }


# Git's behaviour must not depend on the user's ~/.gitconfig for reproducible output.
PLAIN_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def work_repo() -> git.Repo:
    path = cache_dir() / "kernel.git"
    if not (path / "HEAD").is_file():
        path.mkdir(parents=True, exist_ok=True)
        git.Repo.init(path, bare=True)
        run(["git", "--git-dir", path, "config", "gc.auto", "0"])
    return git.Repo(path)


def _git(repo: git.Repo, *args: str, env: dict[str, str] | None = None,
         input: bytes | None = None, what: str | None = None) -> str:
    proc = run(["git", "--git-dir", repo.git_dir, *args], env={**PLAIN_GIT_ENV, **(env or {})},
               input=input, what=what)
    return proc.stdout.decode().strip()


def _tarball_key(tarball: Path) -> str:
    h = hashlib.sha256()
    with tarball.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def makefile_version(makefile: str, extra: bool = True) -> str:
    """The kernel version from the top-level Makefile: VERSION.PATCHLEVEL.SUBLEVEL[EXTRAVERSION]."""
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION) = ?(.*)$", makefile, re.M))
    if not {"VERSION", "PATCHLEVEL", "SUBLEVEL"} <= fields.keys():
        raise ForgeError("the kernel's Makefile has no VERSION, PATCHLEVEL and SUBLEVEL lines")
    out = f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL'] or 0}"
    return out + (fields.get("EXTRAVERSION", "").strip() if extra else "")


def _kernel_version(tree: Path) -> str:
    return makefile_version((tree / "Makefile").read_text())


def version_at(repo: git.Repo, commit: str) -> str:
    """The kernel version (6.1.192) of `commit`'s top-level Makefile."""
    return makefile_version(_git(repo, "show", f"{commit}:Makefile", what="reading the kernel's Makefile"),
                            extra=False)


def import_tarball(repo: git.Repo, tarball: Path) -> str:
    """Commit the tarball's tree once (deterministically) and return the commit id."""
    if not tarball.is_file():
        raise ForgeError(f"base.tarball: {tarball} not found (apt-get install linux-source-6.1, "
                         "or set base.tree/base.ref in the series file)")
    tag = f"refs/tags/zcache-forge/base/{tarball.name}-{_tarball_key(tarball)}"
    try:
        return _git(repo, "rev-parse", "--verify", "-q", tag + "^{commit}")
    except ForgeError:
        pass
    log.info("importing %s into %s (once; later runs reuse it)", tarball, repo.git_dir)
    with tempfile.TemporaryDirectory(prefix="zcf-import-", dir=cache_dir()) as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        unpacked = _with_progress(["tar", "-xvf", tarball, "-C", src, "--strip-components=1"],
                                  f"unpacking {tarball.name}", None, "unpacking the kernel tarball")
        version = _kernel_version(src)
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(src)}
        # Debian's top-level .gitignore ignores everything ('/*'): add with -f.
        _with_progress(["git", "--git-dir", repo.git_dir, "add", "-v", "-f", "-A", "."],
                       f"adding Linux {version} to {Path(repo.git_dir).name}", unpacked,
                       "importing the kernel tree", env={**PLAIN_GIT_ENV, **env})
        tree = _git(repo, "write-tree", env=env)
        msg = f"Linux {version} from {tarball.name}\n\nImported by zcache-forge from {tarball}.\n"
        commit = _git(repo, "commit-tree", tree, "-m", msg,
                      env=ident_env(IMPORT_IDENT["name"], IMPORT_IDENT["email"], IMPORT_DATE))
    _git(repo, "update-ref", tag, commit)
    return commit


def _with_progress(argv: list, what: str, total: int | None, step: str,
                   env: dict[str, str] | None = None) -> int:
    """Run a command that prints one line per file (tar -v, git add -v), showing the count
    (of `total`, when known) as it goes; return the number of files (directories, which tar
    lists with a trailing '/', are not counted)."""
    progress = Progress(what, total)

    def on_line(line: str) -> None:
        if line and not line.endswith("/"):
            progress.step()

    rc, _, err = stream(argv, on_line, env=env)
    if rc != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise ForgeError(f"{step} failed (exit {rc}): {' '.join(map(str, argv))}\n{tail}")
    progress.done()
    return progress.count


def user_tree_commit(repo: git.Repo, tree: Path, ref: str) -> str:
    """Resolve `ref` in the user's tree (read-only) and make its objects visible to our repo."""
    try:
        user = git.Repo(tree)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise ForgeError(f"base.tree: {tree} is not a git repository") from exc
    if user.is_dirty(untracked_files=False):
        raise ForgeError(f"base.tree: {tree} has uncommitted changes; commit or stash them "
                         "(zcache-forge builds on committed refs only and never touches your tree)")
    try:
        sha = user.git.rev_parse("--verify", "-q", f"{ref}^{{commit}}")
    except git.GitCommandError:
        raise ForgeError(f"base.ref: {ref!r} does not exist in {tree}") from None
    objects = Path(user.common_dir) / "objects"
    alternates = Path(repo.git_dir) / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    known = alternates.read_text().split() if alternates.exists() else []
    if str(objects.resolve()) not in known:
        with alternates.open("a") as f:
            f.write(f"{objects.resolve()}\n")
    return sha


def base_commit(repo: git.Repo, base: Base) -> str:
    if base.tree is not None:
        assert base.ref is not None
        return user_tree_commit(repo, base.tree, base.ref)
    assert base.tarball is not None
    return import_tarball(repo, base.tarball)


def reader(repo: git.Repo, commit: str):
    """A function path -> bytes (or None) reading files of `commit`."""
    tree = repo.commit(commit).tree

    def read(path: str) -> bytes | None:
        try:
            return tree[path].data_stream.read()
        except KeyError:
            return None

    return read


def checkout(repo: git.Repo, commit: str, path: Path) -> Path:
    """Check `commit` out in a worktree at `path` (created once, then switched in place so that
    unchanged files keep their timestamps and make rebuilds only what changed)."""
    if not (path / ".git").exists():
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _git(repo, "worktree", "prune")
        _git(repo, "worktree", "add", "--detach", "-f", str(path), commit, what="creating a worktree")
    else:
        run(["git", "-C", path, "checkout", "-q", "--detach", "-f", commit], env=PLAIN_GIT_ENV,
            what=f"checking out {commit[:12]} in {path}")
        run(["git", "-C", path, "clean", "-q", "-f", "-d", "-x", "-e", ".config"],
            env=PLAIN_GIT_ENV, what=f"cleaning {path}")
    return path


def tree_of(repo: git.Repo, commit: str) -> str:
    return _git(repo, "rev-parse", f"{commit}^{{tree}}")


def git_cmd(repo: git.Repo, *args: str, env: dict[str, str] | None = None,
            input: bytes | None = None, what: str | None = None) -> str:
    return _git(repo, *args, env=env, input=input, what=what)

