"""Stamps of passed checks, one JSON per exact version of a series.

A version is identified by a sha256 over its folder's patch files (names and bytes), so a
stamp stays valid only while the files are exactly the ones that were checked.
send-patches refuses to mail a version whose required checks have no passing stamp.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zcache_forge.errors import ForgeError
from zcache_forge.kernel import cache_dir

log = logging.getLogger(__name__)

# The checks build-patches runs (build: with --build); send-patches needs all of them to have passed.
REQUIRED = ("checkpatch", "build")


@dataclass(frozen=True)
class Stamp:
    key: str
    path: Path
    checks: dict[str, dict[str, Any]]

    def passed(self, check: str) -> bool:
        return bool(self.checks.get(check, {}).get("passed"))

    def missing(self, required: tuple[str, ...] = REQUIRED) -> list[str]:
        return [c for c in required if not self.passed(c)]


def boot_line(stamp: Stamp) -> str:
    """What the smoke boot of every patch (build-patches --build --boot) found, for send-patches."""
    b = stamp.checks.get("boot")
    if not b:
        return "boot (smoke, every patch): not run (invoke build-patches --build --boot)"
    if b.get("passed"):
        zc = b.get("through_zcache") or []
        through = f", through zcache from patch {zc[0]}" if zc else ""
        return f"boot (smoke, every patch): passed, {b.get('patches')} patches{through}"
    return f"boot (smoke, every patch): FAILED: {'; '.join(b.get('failed', []))}"


def patch_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.patch"))


def folder_key(folder: Path) -> str:
    """sha256 over the folder's *.patch files, names and contents."""
    files = patch_files(folder)
    if not files:
        raise ForgeError(f"{folder}: no patch files (run invoke build-patches first)")
    h = hashlib.sha256()
    for f in files:
        data = f.read_bytes()
        h.update(f"{f.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def stamp_path(key: str) -> Path:
    return cache_dir() / "checks" / f"{key}.json"


def load(folder: Path) -> Stamp:
    """The stamp of the folder's current files (empty when nothing was recorded)."""
    key = folder_key(folder)
    path = stamp_path(key)
    if not path.is_file():
        return Stamp(key, path, {})
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ForgeError(f"{path}: unreadable check stamp ({exc}); delete it and re-run build-patches") \
            from exc
    return Stamp(key, path, dict(data.get("checks", {})))


def record(folder: Path, check: str, passed: bool, details: dict[str, Any]) -> Stamp:
    """Record the outcome of `check` for the folder's current files; return the new stamp."""
    old = load(folder)
    checks = {**old.checks, check: {"passed": passed, **details}}
    data = {
        "folder": str(folder),
        "files": [f.name for f in patch_files(folder)],
        "checks": checks,
    }
    old.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = old.path.with_name(f".{old.path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(old.path)
    log.info("%s: %s %s (stamp %s)", folder, check, "passed" if passed else "failed", old.path.name[:16])
    return Stamp(old.key, old.path, checks)
