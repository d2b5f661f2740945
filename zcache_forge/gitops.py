"""Every git command the tool runs goes through this module: `git` (output as text), `git_bytes`
(raw output), `git_stream` (line by line, for progress) and `reader` (many files of one commit).

Built on GitPython: the project commits with GitPython, and a Repo handle already owns one
long-lived `git cat-file --batch` process, which `reader` uses to read file after file of a
commit without starting a process per file. GitPython's Git.execute returns git's exit status
and stderr without raising, so errors keep the tool's form: what failed, the command, and the
end of git's stderr. What is not used: GitPython's object layer (Commit, Tree, odb.store) and its
command-method wrapper (repo.git.rev_parse(...)). Commands are argument lists, as git documents
them, so each call reads like the git command it runs.

`where` is a Repo (the command gets --git-dir, and --work-tree for a non-bare repository) or
a directory to run in (a worktree, a directory about to become a repository, the user's project).

Two modes:
- plumbing (the default): PLAIN_GIT_ENV, so that the user's ~/.gitconfig cannot change the
  output (commit ids, patch files), and GitPython's C locale;
- user_config=True, for what the user would run in their own tree (git config reads, git
  send-email, the base.tree checks): the user's git config and locale.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from git import Git, GitCommandNotFound, Repo

from zcache_forge.errors import ForgeError
from zcache_forge.run import read_lines

log = logging.getLogger(__name__)

# Git's behaviour must not depend on the user's ~/.gitconfig for reproducible output.
PLAIN_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}

Where = Repo | Path
Reader = Callable[[str], bytes | None]


def _argv(where: Where, args: tuple[str, ...]) -> tuple[Git, list[str]]:
    exe = str(Git.GIT_PYTHON_GIT_EXECUTABLE or "git")
    if isinstance(where, Repo):
        tree = [] if where.bare else ["--work-tree", str(where.working_tree_dir)]
        return where.git, [exe, "--git-dir", str(where.git_dir), *tree, *args]
    return Git(where), [exe, *args]


def _env(env: Mapping[str, str] | None, user_config: bool) -> dict[str, str]:
    if user_config:
        # GitPython runs git with LC_ALL=C; a user's command gets the user's locale back ('' = unset).
        base = {"LC_ALL": os.environ.get("LC_ALL", ""), "LANGUAGE": os.environ.get("LANGUAGE", "")}
    else:
        base = dict(PLAIN_GIT_ENV)
    return {**base, **(env or {})}


def _failed(what: str, argv: list[str], status: int | str | None, out: bytes, err: bytes) -> ForgeError:
    tail = (err or out).decode(errors="replace").strip().splitlines()[-15:]
    return ForgeError(f"{what} failed (exit {status}): {' '.join(argv)}\n" + "\n".join(tail))


def _what(what: str | None, args: tuple[str, ...]) -> str:
    return what or "git " + next((a for a in args if not a.startswith("-")), "")


def git_bytes(where: Where, *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None,
              what: str | None = None, user_config: bool = False) -> bytes:
    """Run `git <args>` and return its stdout; on a non-zero exit raise ForgeError naming `what`
    (default: 'git <subcommand>') and quoting the end of git's stderr."""
    cmd, argv = _argv(where, args)
    log.debug("git: %s", " ".join(argv))
    with tempfile.TemporaryFile() as stdin:
        stdin.write(input or b"")
        stdin.seek(0)
        try:
            status, out, err = cmd.execute(argv, istream=stdin, env=_env(env, user_config),
                                           with_extended_output=True, with_exceptions=False,
                                           stdout_as_string=False, strip_newline_in_stdout=False)
        except GitCommandNotFound as exc:
            raise ForgeError(f"{_what(what, args)}: command not found: {argv[0]}") from exc
    if status != 0:
        raise _failed(_what(what, args), argv, status, out, _as_bytes(err))
    return out


def git(where: Where, *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None,
        what: str | None = None, user_config: bool = False) -> str:
    """git_bytes as text, without the surrounding whitespace (ids, names, short reports)."""
    return git_bytes(where, *args, env=env, input=input, what=what, user_config=user_config).decode().strip()


def git_stream(where: Where, *args: str, on_line: Callable[[str], None],
               env: Mapping[str, str] | None = None, what: str | None = None, user_config: bool = False,
               check: bool = True) -> tuple[int, str, str]:
    """Run `git <args>`, calling on_line with each line of its stdout as it comes (progress);
    return the exit status, all of stdout and stderr. A non-zero exit raises ForgeError as in
    git_bytes, unless check=False (the caller decides, e.g. after a half-done git send-email)."""
    cmd, argv = _argv(where, args)
    log.debug("git (streamed): %s", " ".join(argv))
    try:
        handle = cmd.execute(argv, as_process=True, env=_env(env, user_config))
    except GitCommandNotFound as exc:
        raise ForgeError(f"{_what(what, args)}: command not found: {argv[0]}") from exc
    proc = handle.proc
    assert proc is not None and proc.stdout is not None and proc.stderr is not None
    err_chunks: list[bytes] = []
    # stderr is a pipe too: drain it alongside, or a chatty git would block on a full pipe.
    drain = threading.Thread(target=_drain, args=(proc.stderr, err_chunks), daemon=True)
    drain.start()
    out = read_lines(proc.stdout, on_line)
    rc = proc.wait()
    drain.join()
    err = b"".join(err_chunks)
    if rc != 0 and check:
        raise _failed(_what(what, args), argv, rc, b"", err)
    return rc, out, err.decode(errors="replace")


def _drain(pipe: IO[bytes], into: list[bytes]) -> None:
    for chunk in iter(lambda: pipe.read(1 << 16), b""):
        into.append(chunk)


def _as_bytes(data: str | bytes | None) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else data


def reader(repo: Repo, commit: str) -> Reader:
    """A function path -> bytes (None when `commit` has no such file) reading the files of
    `commit` through the repository handle's long-lived `git cat-file --batch` process: one
    request per file ('<commit>:<path>'), no process start, no tree walk in Python. Not for
    use from several threads at once (the process is shared)."""
    repo.git.update_environment(**PLAIN_GIT_ENV)

    def read(path: str) -> bytes | None:
        try:
            _, kind, _, data = repo.git.get_object_data(f"{commit}:{path}")
        except ValueError as exc:
            if str(exc).rsplit(None, 1)[-1].strip("'\")") == "missing":  # cat-file's '<name> missing'
                return None
            raise ForgeError(f"reading {path} of {commit[:12]} with git cat-file --batch in {repo.git_dir}: "
                             f"{exc}") from exc
        return data if kind in (b"blob", "blob") else None  # GitPython gives the type as bytes

    return read
