"""The point release patches/ was made on (series.yaml `base: made_on:`).

Debian moves linux-source-6.1 with every stable update, and the cover letters carry the
`base-commit:` of the import. series.yaml records the kernel version (Makefile VERSION,
PATCHLEVEL, SUBLEVEL) the committed patches/ were made on; build-patches writes it when it
exports into the project's own patches/ and says in one line when the base has moved on.

Two exports of the same series on different point releases differ in the `base-commit:` lines,
in the `index` lines of files the stable update changed (their blobs), and possibly in the
line numbers of hunk headers (the update added lines above a hunk). `normalize` blanks exactly
those; context lines and changed lines must still be the same.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import yaml

from zcache_forge.errors import ForgeError
from zcache_forge.series import SeriesFile

log = logging.getLogger(__name__)


def mismatch_line(current: str, made_on: str) -> str:
    return f"base is {current}, patches/ was made on {made_on}: base-commit lines will differ"


def check(sf: SeriesFile, current: str, patches_root: Path) -> str | None:
    """Compare the base's version with base.made_on; record it in the series file when build-patches
    writes the project's own patches/ (next to the series file). Returns the one-line notice for a
    different point release (also logged), else None."""
    made_on = sf.base.made_on
    own = Path(patches_root).resolve() == (sf.path.parent / "patches").resolve()
    notice = None
    if made_on is not None and made_on != current:
        notice = mismatch_line(current, made_on)
        log.warning("%s%s", notice, f" (series.yaml base.made_on now says {current})" if own else "")
    if own and made_on != current:
        record(sf.path, current)
    return notice


def record(path: Path, version: str) -> None:
    """Set base.made_on in the series file, keeping its comments and layout (a text edit of the
    block-style `base:` mapping; the file is re-read to check the edit)."""
    text = path.read_text()
    lines = text.split("\n")
    value = f'made_on: "{version}"'
    start = next((i for i, line in enumerate(lines) if re.match(r"^base:\s*(#.*)?$", line)), None)
    if start is None:
        if any(re.match(r"^base:", line) for line in lines):
            log.warning("%s: base is not a block mapping; add `made_on: \"%s\"` to it yourself",
                        path, version)
            return
        new = text.rstrip("\n") + f"\n\nbase:\n  {value}\n"
    else:
        end = start + 1
        indent = None
        while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
            if lines[end].strip() and indent is None:
                indent = lines[end][:len(lines[end]) - len(lines[end].lstrip())]
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # blank lines after the block stay after it
        indent = indent or "  "
        existing = [i for i in range(start + 1, end) if re.match(rf"^{indent}made_on:", lines[i])]
        if existing:
            lines[existing[0]] = f"{indent}{value}"
        else:
            lines.insert(end, f"{indent}{value}")
        new = "\n".join(lines)
    try:
        data = yaml.safe_load(new)
        ok = isinstance(data, dict) and (data.get("base") or {}).get("made_on") == version
    except yaml.YAMLError:
        ok = False
    if not ok:
        raise ForgeError(f"{path}: could not record base.made_on: \"{version}\"; add it to `base:` yourself")
    path.write_text(new)


_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.M)
_INDEX = re.compile(r"^index [0-9a-f]+\.\.[0-9a-f]+", re.M)


def normalize(text: str) -> str:
    """A patch file without what a different base point release changes by itself."""
    text = re.sub(r"^base-commit: [0-9a-f]+$", "base-commit: <base>", text, flags=re.M)
    text = _INDEX.sub("index <blobs>", text)
    return _HUNK.sub("@@ <lines> @@", text)
