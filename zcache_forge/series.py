"""The series file: load the YAML, validate every field, and return typed records.

Nothing is touched before the whole file has been checked; every problem is
reported with the file name and the path of the field (``series[1].patches[0].subject``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ForgeError
from .yamlcheck import Checker, load_yaml

DEFAULT_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
COMPRESSORS = ("lzo", "lzo-rle", "lz4", "lz4hc", "deflate", "zstd", "842")
OP_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # op: (required fields, optional fields)
    "write": ({"path", "template"}, set()),
    "move": ({"from", "to"}, set()),
    "delete": ({"path"}, set()),
    "insert": ({"path"}, {"template", "text", "after", "before"}),
    "remove": ({"path"}, {"template", "text"}),
    "replace": ({"path", "old"}, {"template", "text"}),
    "block": ({"path", "template", "before"}, set()),
    "remove_block": ({"path", "first_line"}, set()),
}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+\S*$")  # a kernel version: 6.1.192
EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


@dataclass(frozen=True)
class Op:
    kind: str
    args: dict[str, str]
    where: str  # the field path, for error messages


@dataclass(frozen=True)
class Patch:
    subject: str
    message: str  # template path
    features: tuple[str, ...]
    ops: tuple[Op, ...]
    changes: dict[int, str]
    where: str


@dataclass(frozen=True)
class Series:
    name: str
    version: int
    subject_prefix: str
    base: str  # "kernel" or the name of an earlier series
    location: str
    change_id: str
    cover: str  # template path
    changelog: dict[int, str]
    patches: tuple[Patch, ...]
    where: str
    # send-patches: the cover letter of v<N> replies to the cover letter of v<N-1>.
    in_reply_to_previous: bool = False


@dataclass(frozen=True)
class Base:
    tarball: Path | None
    tree: Path | None
    ref: str | None
    made_on: str | None = None  # kernel version (6.1.192) the committed patches/ were made on


@dataclass(frozen=True)
class SeriesFile:
    path: Path
    template_dir: Path
    base: Base
    author_name: str
    author_email: str
    date: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    knobs: dict[str, Any]
    counters: tuple[dict[str, Any], ...]
    series: tuple[Series, ...] = field(default_factory=tuple)
    cover_results: Path | None = None  # measured results (invoke bench --cover) for the cover letters

    def get(self, name: str) -> Series:
        for s in self.series:
            if s.name == name:
                return s
        names = ", ".join(s.name for s in self.series)
        raise ForgeError(f"{self.path}: no series named {name!r} (have: {names})")

    def chain(self, name: str) -> list[Series]:
        """The series `name` stands on, oldest first, ending with `name` itself."""
        out = [self.get(name)]
        while out[0].base != "kernel":
            out.insert(0, self.get(out[0].base))
        return out


class _Checker(Checker):
    """The generic checks, plus the series file's own kinds of field."""

    def template(self, value: Any, where: str, template_dir: Path) -> str:
        name = self.string(value, where)
        if name and not (template_dir / name).is_file():
            self.fail(where, f"template {name!r} not found in {template_dir}")
        return name

    def versioned_text(self, value: Any, where: str) -> dict[int, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, "expected a mapping of version number to text")
            return {}
        out = {}
        for k, v in value.items():
            out[self.integer(k, f"{where}.{k}", 2, 99)] = self.string(v, f"{where}.{k}")
        return out


def _op(c: _Checker, raw: Any, where: str, template_dir: Path) -> Op | None:
    if not isinstance(raw, dict) or "op" not in raw:
        c.fail(where, "expected a mapping with an 'op' field")
        return None
    kind = raw["op"]
    if kind not in OP_FIELDS:
        c.fail(f"{where}.op", f"unknown op {kind!r} (known: {', '.join(OP_FIELDS)})")
        return None
    required, optional = OP_FIELDS[kind]
    c.mapping(raw, where, required | {"op"}, optional)
    args = {k: c.string(v, f"{where}.{k}") for k, v in raw.items() if k != "op"}
    if kind in ("insert", "remove", "replace") and ("template" in args) == ("text" in args):
        c.fail(where, f"op {kind} takes exactly one of 'template' and 'text'")
    if kind == "insert" and ("after" in args) == ("before" in args):
        c.fail(where, "op insert takes exactly one of 'after' and 'before'")
    if "template" in args:
        c.template(args["template"], f"{where}.template", template_dir)
    for key in ("path", "from", "to"):
        if key in args and (args[key].startswith("/") or ".." in args[key].split("/")):
            c.fail(f"{where}.{key}", f"path {args[key]!r} must be relative to the kernel tree")
    return Op(kind, args, where)


def _patch(c: _Checker, raw: Any, where: str, template_dir: Path) -> Patch:
    m = c.mapping(raw, where, {"subject", "message", "ops"}, {"features", "changes"})
    subject = c.string(m.get("subject"), f"{where}.subject")
    if len(subject) > 70:
        c.fail(f"{where}.subject", f"{len(subject)} characters; keep subjects within 70 so that "
               "'[PATCH vN i/n] ' still fits 75 columns")
    ops_raw = m.get("ops")
    if not isinstance(ops_raw, list) or not ops_raw:
        if "ops" in m:
            c.fail(f"{where}.ops", "expected a non-empty list of file operations")
        ops_raw = []
    ops = [_op(c, o, f"{where}.ops[{i}]", template_dir) for i, o in enumerate(ops_raw)]
    return Patch(
        subject=subject,
        message=c.template(m.get("message"), f"{where}.message", template_dir),
        features=c.strings(m.get("features"), f"{where}.features"),
        ops=tuple(o for o in ops if o),
        changes=c.versioned_text(m.get("changes"), f"{where}.changes"),
        where=where,
    )


def _series(c: _Checker, raw: Any, where: str, template_dir: Path, earlier: list[str]) -> Series:
    m = c.mapping(
        raw, where,
        {"name", "version", "base", "location", "change_id", "cover", "patches"},
        {"subject_prefix", "changelog", "in_reply_to_previous"},
    )
    name = c.string(m.get("name"), f"{where}.name", NAME_RE)
    base = c.string(m.get("base"), f"{where}.base")
    if base and base != "kernel" and base not in earlier:
        have = ", ".join(earlier) or "none"
        c.fail(f"{where}.base", f"{base!r} is neither 'kernel' nor an earlier series ({have})")
    if name in earlier:
        c.fail(f"{where}.name", f"series {name!r} is defined twice")
    patches_raw = m.get("patches")
    if not isinstance(patches_raw, list) or not patches_raw:
        if "patches" in m:
            c.fail(f"{where}.patches", "expected a non-empty list of patches")
        patches_raw = []
    version = c.integer(m.get("version"), f"{where}.version", 1, 99)
    reply = c.boolean(m.get("in_reply_to_previous", False), f"{where}.in_reply_to_previous")
    if reply and version == 1:
        c.fail(f"{where}.in_reply_to_previous", "version 1 has no previous version to reply to")
    location = c.string(m.get("location"), f"{where}.location")
    if location and (location.startswith("/") or location.endswith("/")):
        c.fail(f"{where}.location", f"{location!r} must be a relative directory without a trailing '/'")
    return Series(
        name=name,
        version=version,
        subject_prefix=c.string(m.get("subject_prefix", "PATCH"), f"{where}.subject_prefix"),
        base=base,
        location=location,
        change_id=c.string(m.get("change_id"), f"{where}.change_id"),
        cover=c.template(m.get("cover"), f"{where}.cover", template_dir),
        changelog=c.versioned_text(m.get("changelog"), f"{where}.changelog"),
        patches=tuple(_patch(c, p, f"{where}.patches[{i}]", template_dir) for i, p in enumerate(patches_raw)),
        where=where,
        in_reply_to_previous=reply,
    )


def load(path: Path, template_dir: Path | None = None) -> SeriesFile:
    """Load and fully validate a series file; raise ForgeError listing every problem."""
    path = Path(path)
    raw = load_yaml(path, "series file")
    template_dir = template_dir or path.parent / "templates"
    c = _Checker(path)
    top = c.mapping(raw, "", {"author", "date", "knobs", "counters", "series"},
                    {"base", "to", "cc", "cover_results"})
    if not top:
        raise ForgeError("\n".join(c.problems))

    base_raw = c.mapping(top.get("base", {}), "base", set(), {"tarball", "tree", "ref", "made_on"})
    if "tree" in base_raw and "tarball" in base_raw:
        c.fail("base", "give either 'tarball' or 'tree' (with 'ref'), not both")
    if "tree" in base_raw and "ref" not in base_raw:
        c.fail("base.ref", "missing required field (the branch, tag or commit of 'tree' to build on)")
    tree = Path(c.string(base_raw["tree"], "base.tree")).expanduser() if "tree" in base_raw else None
    if tree is not None and not (tree / ".git").exists() and not (tree / "HEAD").is_file():
        c.fail("base.tree", f"{tree} is not a git repository")
    tarball = None if tree else Path(base_raw.get("tarball", DEFAULT_TARBALL))
    made_on = c.string(base_raw["made_on"], "base.made_on", VERSION_RE) if "made_on" in base_raw else None
    base = Base(tarball=tarball, tree=tree, ref=base_raw.get("ref"), made_on=made_on)

    author = c.mapping(top.get("author"), "author", {"name", "email"}, set())
    knobs = c.mapping(top.get("knobs"), "knobs", {"zcache", "tmem", "zbud"}, set())
    zc = c.mapping(knobs.get("zcache", {}), "knobs.zcache",
                   {"compressor", "poor_percent", "poor_percent_max", "max_pool_percent",
                    "accept_threshold_percent", "swap_obj_bits"}, set())
    if zc.get("compressor") not in COMPRESSORS and "compressor" in zc:
        c.fail("knobs.zcache.compressor", f"{zc['compressor']!r} is not one of {', '.join(COMPRESSORS)}")
    c.integer(zc.get("poor_percent"), "knobs.zcache.poor_percent", 1, 95)
    c.integer(zc.get("poor_percent_max"), "knobs.zcache.poor_percent_max", 1, 95)
    c.integer(zc.get("max_pool_percent"), "knobs.zcache.max_pool_percent", 1, 100)
    c.integer(zc.get("accept_threshold_percent"), "knobs.zcache.accept_threshold_percent", 1, 100)
    c.integer(zc.get("swap_obj_bits"), "knobs.zcache.swap_obj_bits", 0, 16)
    tm = c.mapping(knobs.get("tmem", {}), "knobs.tmem", {"hash_bucket_bits", "objnode_shift"}, set())
    c.integer(tm.get("hash_bucket_bits"), "knobs.tmem.hash_bucket_bits", 1, 12)
    c.integer(tm.get("objnode_shift"), "knobs.tmem.objnode_shift", 2, 8)
    zb = c.mapping(knobs.get("zbud", {}), "knobs.zbud", {"chunk_bits"}, set())
    c.integer(zb.get("chunk_bits"), "knobs.zbud.chunk_bits", 4, 8)

    counters_raw = top.get("counters")
    counters: list[dict[str, Any]] = []
    if not isinstance(counters_raw, list) or not counters_raw:
        c.fail("counters", "expected a non-empty list of counters")
        counters_raw = []
    seen: set[str] = set()
    for i, cr in enumerate(counters_raw):
        cm = c.mapping(cr, f"counters[{i}]", {"name"}, {"max"})
        cname = c.string(cm.get("name"), f"counters[{i}].name", re.compile(r"^[a-z][a-z0-9_]*$"))
        if cname in seen:
            c.fail(f"counters[{i}].name", f"counter {cname!r} listed twice")
        seen.add(cname)
        if not isinstance(cm.get("max", False), bool):
            c.fail(f"counters[{i}].max", "expected true or false")
        counters.append({"name": cname, "max": bool(cm.get("max", False))})

    series_raw = top.get("series")
    if not isinstance(series_raw, list) or not series_raw:
        c.fail("series", "expected a non-empty list of series")
        series_raw = []
    series: list[Series] = []
    for i, sr in enumerate(series_raw):
        series.append(_series(c, sr, f"series[{i}]", template_dir, [s.name for s in series]))

    author_name = c.string(author.get("name"), "author.name")
    author_email = c.string(author.get("email"), "author.email", EMAIL_RE)
    date = c.string(top.get("date"), "date")
    if date and not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$", date):
        c.fail("date", f"{date!r} is not of the form 'YYYY-MM-DD HH:MM:SS +ZZZZ'")
    if c.problems:
        raise ForgeError("\n".join(c.problems))
    return SeriesFile(
        path=path,
        template_dir=template_dir,
        base=base,
        author_name=author_name,
        author_email=author_email,
        date=date,
        to=c.strings(top.get("to"), "to"),
        cc=c.strings(top.get("cc"), "cc"),
        knobs=dict(knobs),
        counters=tuple(counters),
        series=tuple(series),
        cover_results=(path.parent / c.string(top["cover_results"], "cover_results")
                       if "cover_results" in top else None),
    )
