"""What send-patches --send sent: patches/<series>/v<N>/sent.yaml, committed with the project.

As b4 does, the record keeps every message's Message-Id, Date, To and Cc and the git send-email
command. The next version's cover letter replies to the Message-Id recorded here, never to one
recomputed from the folder's files (they may have been regenerated since). A version sent more
than once (--force) keeps every send, oldest first; a send that failed half way records the
messages that went out (`complete: false`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import yaml

from zcache_forge.errors import ForgeError

FILE = "sent.yaml"
HEADER = ("# Written by `invoke send-patches --send`: what was sent. Commit it with patches/:\n"
          "# the next version's cover letter replies to the Message-Id of this one's.\n")


def path(folder: Path) -> Path:
    return folder / FILE


@dataclass(frozen=True)
class SentRecord:
    path: Path
    sends: tuple[dict[str, Any], ...]

    def cover_message_id(self) -> str | None:
        """The Message-Id of the cover letter of the last send that included it."""
        for send in reversed(self.sends):
            for m in send.get("messages", []):
                if m.get("number") == 0 and m.get("message_id"):
                    return str(m["message_id"])
        return None

    def last_date(self) -> str:
        return str(self.sends[-1].get("date", "?")) if self.sends else "?"


def load(folder: Path) -> SentRecord | None:
    p = path(folder)
    if not p.is_file():
        return None
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ForgeError(f"{p}: unreadable sent record: {exc}") from exc
    sends = data.get("sends") if isinstance(data, dict) else None
    if not isinstance(sends, list):
        raise ForgeError(f"{p}: not a sent record (no 'sends' list)")
    return SentRecord(p, tuple(sends))


def split_addresses(header: str | None) -> list[str]:
    out = []
    for name, addr in getaddresses([header or ""]):
        if addr:
            out.append(f"{name} <{addr}>" if name else addr)
    return out


def append(folder: Path, series: str, version: int, send: dict[str, Any]) -> Path:
    """Add one send to the folder's record (created on the first send); written atomically."""
    old = load(folder)
    data = {"series": series, "version": version, "sends": [*(old.sends if old else ()), send]}
    p = path(folder)
    tmp = p.with_name(f".{p.name}.{os.getpid()}")
    tmp.write_text(HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000))
    tmp.replace(p)
    return p
