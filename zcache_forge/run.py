"""Running external commands: argument lists only, errors that quote the command's output."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ForgeError

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
