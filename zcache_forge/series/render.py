"""Render a chain of series into file changes, in memory, before anything is committed.

Each patch's templates see the knobs of the series file plus the features of
every patch up to and including it, so one template can grow over a series.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2

from zcache_forge.errors import ForgeError
from zcache_forge.series import Op, Patch, Series, SeriesFile

Reader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class Change:
    """One path of a commit: new content (bytes), deleted (None), or renamed from `source`."""

    path: str
    data: bytes | None
    source: str | None = None


@dataclass(frozen=True)
class RenderedPatch:
    series: Series
    index: int
    patch: Patch
    message: str
    changes: tuple[Change, ...]


def environment(sf: SeriesFile) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(sf.template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _where_in_template(exc: BaseException) -> str:
    """The template file and line an exception was raised in, from Jinja's rewritten traceback."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2") or frame.filename == "<template>":
            return f"{frame.filename}:{frame.lineno}"
    lineno = getattr(exc, "lineno", None)
    name = getattr(exc, "filename", None) or getattr(exc, "name", None)
    return f"{name}:{lineno}" if name else ""


class Renderer:
    def __init__(self, sf: SeriesFile) -> None:
        self.sf = sf
        self.env = environment(sf)

    def template(self, name: str, ctx: dict[str, Any], where: str) -> str:
        try:
            return self.env.get_template(name).render(ctx)
        except jinja2.TemplateError as exc:
            raise ForgeError(f"{self.sf.path}: {where}: template {_where_in_template(exc) or name}: "
                             f"{exc.message or exc}") from None

    def string(self, text: str, ctx: dict[str, Any], where: str) -> str:
        try:
            return self.env.from_string(text).render(ctx)
        except jinja2.TemplateError as exc:
            raise ForgeError(f"{self.sf.path}: {where}: {exc.message or exc}") from None


def base_context(sf: SeriesFile, features: list[str]) -> dict[str, Any]:
    """What every template sees; a counter whose feature no patch so far brought is left out."""
    return {
        **sf.knobs.model_dump(),  # the same values as the YAML's knobs
        "counters": [c.model_dump() for c in sf.counters if c.feature is None or c.feature in features],
        "author": {"name": sf.author_name, "email": sf.author_email},
        "features": list(features),
    }


class _Tree:
    """The kernel tree as the chain of patches has changed it so far."""

    def __init__(self, read_base: Reader) -> None:
        self.read_base = read_base
        self.overlay: dict[str, bytes | None] = {}

    def read(self, path: str) -> bytes | None:
        if path in self.overlay:
            return self.overlay[path]
        return self.read_base(path)

    def text(self, path: str, where: str) -> str:
        data = self.read(path)
        if data is None:
            raise ForgeError(f"{where}: {path} does not exist in the tree")
        return data.decode()


def _find_line(text: str, anchor: str, path: str, where: str) -> int:
    """The offset of the start of the one line equal to `anchor`; an error if not exactly one."""
    hits = [m.start() for m in re.finditer(r"^" + re.escape(anchor) + r"$", text, re.M)]
    if len(hits) != 1:
        raise ForgeError(f"{where}: anchor line {anchor!r} found {len(hits)} times in {path}, expected once")
    return hits[0]


def _apply_op(r: Renderer, tree: _Tree, op: Op, ctx: dict[str, Any], where: str) -> list[Change]:
    a = {k: (r.string(v, ctx, f"{where}.{k}") if k != "template" else v) for k, v in op.args.items()}
    body = r.template(a["template"], ctx, where) if "template" in a else a.get("text", "")
    if op.kind == "write":
        return [Change(a["path"], body.encode())]
    if op.kind == "delete":
        tree.text(a["path"], where)
        return [Change(a["path"], None)]
    if op.kind == "move":
        data = tree.read(a["from"])
        if data is None:
            raise ForgeError(f"{where}: {a['from']} does not exist in the tree")
        return [Change(a["from"], None), Change(a["to"], data, source=a["from"])]
    text = tree.text(a["path"], where)
    if op.kind == "insert":
        if not body.endswith("\n"):
            body += "\n"
        if "after" in a:
            at = _find_line(text, a["after"], a["path"], where)
            at = text.index("\n", at) + 1
        else:
            at = _find_line(text, a["before"], a["path"], where)
        return [Change(a["path"], (text[:at] + body + text[at:]).encode())]
    if op.kind in ("remove", "replace"):
        old, new = (body, "") if op.kind == "remove" else (a["old"], body)
        found = text.count(old)
        if found != 1:
            raise ForgeError(f"{where}: text to {op.kind} found {found} times in {a['path']}, expected once")
        return [Change(a["path"], text.replace(old, new, 1).encode())]
    if op.kind in ("block", "remove_block"):
        first = body.splitlines()[0] if op.kind == "block" else a["first_line"]
        hits = [m.start() for m in re.finditer(r"^" + re.escape(first) + r"$", text, re.M)]
        if len(hits) > 1:
            raise ForgeError(f"{where}: block {first!r} found {len(hits)} times in {a['path']}")
        if hits:
            end = text.find("\n\n", hits[0])
            end = len(text) if end < 0 else end + 2
            text = text[: hits[0]] + text[end:]
        elif op.kind == "remove_block":
            raise ForgeError(f"{where}: block {first!r} not found in {a['path']}")
        if op.kind == "block":
            block = body.rstrip("\n") + "\n\n"
            at = _find_line(text, a["before"], a["path"], where) if not hits else hits[0]
            text = text[:at] + block + text[at:]
        return [Change(a["path"], text.encode())]
    raise AssertionError(op.kind)


def _merge(changes: list[Change]) -> tuple[Change, ...]:
    """Keep the last change per path, in first-seen order."""
    out: dict[str, Change] = {}
    for ch in changes:
        out.pop(ch.path, None)
        out[ch.path] = ch
    return tuple(out.values())


def render_chain(sf: SeriesFile, chain: list[Series], read_base: Reader) -> list[list[RenderedPatch]]:
    """Render every patch of every series in `chain` (oldest first) into file changes."""
    r = Renderer(sf)
    tree = _Tree(read_base)
    features: list[str] = []
    out: list[list[RenderedPatch]] = []
    base_location = ""
    for series in chain:
        rendered: list[RenderedPatch] = []
        for i, patch in enumerate(series.patches, 1):
            features.extend(f for f in patch.features if f not in features)
            ctx = {
                **base_context(sf, features),
                "location": series.location,
                "base_location": base_location,
                "series": {"name": series.name, "version": series.version},
                "patch": {"index": i, "total": len(series.patches), "subject": patch.subject},
            }
            changes: list[Change] = []
            for op in patch.ops:
                for ch in _apply_op(r, tree, op, ctx, op.where):
                    tree.overlay[ch.path] = ch.data
                    changes.append(ch)
            body = r.template(patch.message, ctx, f"{patch.where}.message").strip()
            message = f"{patch.subject}\n\n{body}\n\nSigned-off-by: {sf.author_name} <{sf.author_email}>\n"
            rendered.append(RenderedPatch(series, i, patch, message, _merge(changes)))
        out.append(rendered)
        base_location = series.location
    return out


def render_cover(sf: SeriesFile, series: Series, chain: list[Series]) -> tuple[str, str]:
    """The cover letter's subject and body."""
    r = Renderer(sf)
    features = [f for s in chain for p in s.patches for f in p.features]
    ctx = {
        **base_context(sf, features),
        "location": series.location,
        "base_location": chain[-2].location if len(chain) > 1 else "",
        "series": {"name": series.name, "version": series.version},
        "changelog": dict(sorted(series.changelog.items(), reverse=True)),
        "patches": [p.subject for p in series.patches],
    }
    text = r.template(series.cover, ctx, f"{series.where}.cover").strip()
    subject, _, body = text.partition("\n")
    body = body.strip()
    if sf.cover_results is not None and sf.cover_results.is_file():
        body += "\n\nMeasured results\n================\n\n" + sf.cover_results.read_text().strip()
    return subject.strip(), body
