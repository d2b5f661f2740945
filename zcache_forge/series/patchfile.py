"""Reading git format-patch files: the mbox 'From <commit>' line, unfolded headers, and the body."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from zcache_forge.errors import ForgeError
from zcache_forge.series import stamps


@dataclass(frozen=True)
class PatchFile:
    """A format-patch file: its mbox line, unfolded headers, and body."""

    path: Path
    from_line: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @property
    def message(self) -> str:
        """The commit message: the body above the first '---' line."""
        return self.body.split("\n---\n", 1)[0]


def address(entry: str) -> str:
    return parseaddr(entry)[1].lower()


def read_patch(path: Path) -> PatchFile:
    text = path.read_text()
    head, sep, body = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("From "):
        raise ForgeError(f"{path}: not a git format-patch file (no 'From <commit>' line and headers)")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            k, v = headers[-1]
            headers[-1] = (k, f"{v} {line.strip()}")
        elif ":" in line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        else:
            raise ForgeError(f"{path}: malformed header line {line!r}")
    return PatchFile(path, lines[0], tuple(headers), body)


def read_folder(folder: Path) -> list[PatchFile]:
    files = stamps.patch_files(folder)
    if not files:
        raise ForgeError(f"{folder}: no patch files (run invoke build-patches first)")
    return [read_patch(f) for f in files]
