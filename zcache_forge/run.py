"""Running external commands: argument lists only, errors that quote the command's output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from zcache_forge.errors import ForgeError

log = logging.getLogger(__name__)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    what: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv; on a non-zero exit raise ForgeError naming `what` and quoting stderr's tail."""
    args = [str(a) for a in argv]
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    log.debug("run: %s (cwd=%s)", " ".join(args), cwd)
    try:
        proc = subprocess.run(args, cwd=cwd, env=full_env, input=input, capture_output=True)
    except FileNotFoundError as exc:
        raise ForgeError(f"{what or args[0]}: command not found: {args[0]}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-15:]
        raise ForgeError(
            f"{what or args[0]} failed (exit {proc.returncode}): {' '.join(args)}\n" + "\n".join(tail)
        )
    return proc


def stream(
    argv: Sequence[str | os.PathLike[str]],
    on_line: Callable[[str], None],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> tuple[int, str, str]:
    """Run argv, calling on_line with each line of its stdout as it comes; return the exit
    status, all of stdout and stderr (no exception on a non-zero exit: the caller decides)."""
    args = [str(a) for a in argv]
    full_env = None if env is None else {**os.environ, **env}
    log.debug("stream: %s (cwd=%s)", " ".join(args), cwd)
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(args, cwd=cwd, env=full_env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err)
        except FileNotFoundError as exc:
            raise ForgeError(f"{args[0]}: command not found") from exc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(input or b"")
        proc.stdin.close()
        out = []
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            out.append(line)
            on_line(line.rstrip("\n"))
        rc = proc.wait()
        err.seek(0)
        return rc, "".join(out), err.read().decode(errors="replace")


class Progress:
    """Progress of a long step on stderr: one line rewritten with carriage returns on a
    terminal, plain lines every `every` seconds otherwise (logs, CI)."""

    def __init__(self, what: str, total: int | None = None, stream: TextIO | None = None,
                 every: float = 10.0, tty: bool | None = None) -> None:
        self.what, self.total, self.every = what, total, every
        self.out = stream or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.count = 0
        self.last = 0.0
        self.t0 = time.monotonic()

    def _text(self) -> str:
        if self.total:
            return f"{self.what}: {self.count}/{self.total} ({100 * self.count // self.total}%)"
        return f"{self.what}: {self.count}"

    def step(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else self.every):
            return
        self.last = now
        if self.tty:
            self.out.write(f"\rzcache-forge: {self._text()}\033[K")
        else:
            self.out.write(f"zcache-forge: {self._text()}\n")
        self.out.flush()

    def done(self) -> None:
        text = f"zcache-forge: {self._text()}, done in {time.monotonic() - self.t0:.0f} s"
        self.out.write(f"\r{text}\033[K\n" if self.tty else f"{text}\n")
        self.out.flush()
