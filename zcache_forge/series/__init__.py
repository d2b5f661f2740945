"""The series file: load the YAML, validate every field (pydantic models), return typed records.

Nothing is touched before the whole file has been checked; every problem is reported on
one line with the file name and the path of the field
(``series.yaml: series[1].patches[0].subject: expected a non-empty string, found 42``).
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Field, PlainValidator, Tag, create_model, field_validator, model_validator

from zcache_forge.errors import ForgeError
from zcache_forge.validate import (
    Bool,
    Choice,
    Int,
    Problems,
    Str,
    Strict,
    context_check,
    expected,
    load_yaml,
    plain,
    validate,
)

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
EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
# a recipient: an address, or "Name <address>"
RECIPIENT_RE = r"[^@\s<>]+@[^@\s<>]+|[^<>]*<[^@\s<>]+@[^@\s<>]+>"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


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
    made_on: str | None = None  # the kernel version patches/ was made on, e.g. "6.1.192"


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
    knobs: Knobs
    counters: tuple[Counter, ...]
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


# --- the models: types and ranges of every field --------------------------------------------


def _template(v: Any, ctx: dict[str, Any]) -> str:
    tdir: Path | None = ctx.get("template_dir")
    if not isinstance(v, str) or not v.strip():
        raise expected("a template file name")
    if tdir is not None and not (tdir / v).is_file():
        raise expected(f"a template file in {tdir}")
    return v


def _tree_path(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or v.startswith("/") or ".." in v.split("/"):
        raise expected("a path relative to the kernel tree")
    return v


def _date(v: Any) -> str:
    what = "a date 'YYYY-MM-DD HH:MM:SS +ZZZZ'"
    if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", v):
        raise expected(what)
    try:
        datetime.strptime(v, DATE_FORMAT)
    except ValueError:
        raise expected(what) from None
    return v


def _location(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or v.startswith("/") or v.endswith("/"):
        raise expected("a relative directory without a trailing '/'")
    return v


def _subject(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise expected("a non-empty string")
    if len(v) > 70:
        raise plain(f"expected at most 70 characters (so that '[PATCH vN i/n] ' still fits 75 columns), "
                    f"found {len(v)}")
    return v


Template = Annotated[str, context_check(_template)]
TreePath = Annotated[str, PlainValidator(_tree_path)]
Text = Str()
Recipient = Str(RECIPIENT_RE, what="an address ('a@example.org' or 'Name <a@example.org>')")
VersionedText = dict[Int(2, 99), Text]


class Knobs(Strict):
    """knobs: what the templates see as zcache.*, tmem.*, zbud.* (the same values as the YAML)."""

    class Zcache(Strict):
        compressor: Choice(*COMPRESSORS)
        poor_percent: Int(1, 95)
        poor_percent_max: Int(1, 95)
        max_pool_percent: Int(1, 100)
        accept_threshold_percent: Int(1, 100)
        swap_obj_bits: Int(0, 16)

    class Tmem(Strict):
        hash_bucket_bits: Int(1, 12)
        objnode_shift: Int(2, 8)

    class Zbud(Strict):
        chunk_bits: Int(4, 8)

    zcache: Zcache
    tmem: Tmem
    zbud: Zbud


class Counter(Strict):
    """One debugfs counter of zcache; max: a level with a _max file."""

    name: Str(r"[a-z][a-z0-9_]*", what="a counter name (lower case, digits, '_')")
    max: Bool = False
    # the feature of the patch that adds the counter; none: there since the tmem core
    feature: Str(r"[a-z][a-z0-9_]*", what="a feature name") | None = None


class _BaseModel(Strict):
    tarball: Str() | None = None
    tree: Str() | None = None
    ref: Str() | None = None
    made_on: Str(r"\d+\.\d+(\.\d+)?", what="a kernel version like '6.1.192'") | None = None


class _Author(Strict):
    name: Text
    email: Str(EMAIL_RE.pattern, what="an email address like 'name@example.org'")


class _OpModel(Strict):
    """What every op has: its name. _op_model adds the fields of each kind (OP_FIELDS)."""

    op: str


def _op_model(kind: str, required: set[str], optional: set[str]) -> type[_OpModel]:
    """A model for one op: its required fields, its optional ones, nothing else."""
    types = {"path": TreePath, "from": TreePath, "to": TreePath, "template": Template}
    fields: dict[str, Any] = {}
    for name in sorted(required | optional):
        tp = types.get(name, Text)
        attr = name + "_" if name in ("from",) else name
        default = ... if name in required else None
        fields[attr] = (tp if name in required else tp | None, Field(default, alias=name))

    def one_of(self: Any) -> Any:
        args = self.model_dump(by_alias=True, exclude_none=True)
        if kind in ("insert", "remove", "replace") and ("template" in args) == ("text" in args):
            found = "both" if "text" in args else "neither"
            raise plain(f"op {kind}: expected exactly one of 'template' and 'text', found {found}")
        if kind == "insert" and ("after" in args) == ("before" in args):
            found = "both" if "after" in args else "neither"
            raise plain(f"op insert: expected exactly one of 'after' and 'before', found {found}")
        return self

    checks = {"one_of": model_validator(mode="after")(one_of)}
    return create_model(f"Op_{kind}", __base__=_OpModel, __validators__=checks, **fields)


OP_MODELS = {kind: _op_model(kind, req, opt) for kind, (req, opt) in OP_FIELDS.items()}


def _op_tag(v: Any) -> str | None:
    if isinstance(v, dict):  # an unknown or missing op: an error listing the known ones
        return f"op={v['op']}" if isinstance(v.get("op"), str) else "op=?"
    return None


# one model per op, chosen by the op's name (tag "op=NAME"; validate.path_of leaves the tag out)
OpModel = Annotated[
    functools.reduce(operator.or_, (Annotated[m, Tag(f"op={k}")] for k, m in OP_MODELS.items())),
    Discriminator(_op_tag),
]


class _PatchModel(Strict):
    subject: Annotated[str, PlainValidator(_subject)]
    message: Template
    features: list[Text] = []
    ops: list[OpModel] = Field(min_length=1)
    changes: VersionedText = {}


class _SeriesModel(Strict):
    name: Str(NAME_RE.pattern, what="a name of lower-case letters, digits and dashes")
    version: Int(1, 99)
    subject_prefix: Text = "PATCH"
    base: Text
    location: Annotated[str, PlainValidator(_location)]
    change_id: Text
    cover: Template
    changelog: VersionedText = {}
    patches: list[_PatchModel] = Field(min_length=1)
    in_reply_to_previous: Bool = False

    @field_validator("in_reply_to_previous")
    @classmethod
    def _needs_a_previous(cls, v: bool, info: Any) -> bool:
        if v and info.data.get("version") == 1:
            raise plain("expected false for version 1, found true (version 1 has no previous version "
                        "to reply to)")
        return v


class _SeriesFileModel(Strict):
    base: _BaseModel = _BaseModel()
    author: _Author
    date: Annotated[str, PlainValidator(_date)]
    cover_results: Str() | None = None
    to: list[Recipient] | None = None
    cc: list[Recipient] | None = None
    knobs: Knobs
    counters: list[Counter] = Field(min_length=1)
    series: list[_SeriesModel] = Field(min_length=1)


# --- loading: the models, then what relates fields to each other ------------------------------


def _cross_checks(path: Path, m: _SeriesFileModel) -> Problems:
    p = Problems(path)
    b = m.base
    if b.tree is not None and b.tarball is not None:
        p.add("base", "expected either 'tarball' or 'tree' (with 'ref'), found both")
    if b.tree is not None and b.ref is None:
        p.add("base.ref", "expected the branch, tag or commit of 'tree' to build on, found nothing")
    if b.tree is not None:
        tree = Path(b.tree).expanduser()
        if not (tree / ".git").exists() and not (tree / "HEAD").is_file():
            p.add("base.tree", f"expected a git repository, found {str(tree)!r}")
    seen: set[str] = set()
    for i, c in enumerate(m.counters):
        if c.name in seen:
            p.add(f"counters[{i}].name", f"expected a counter listed once, found {c.name!r} again")
        seen.add(c.name)
    features = {f for s in m.series for pm in s.patches for f in pm.features}
    for i, c in enumerate(m.counters):
        if c.feature is not None and c.feature not in features:
            known = ", ".join(sorted(features))
            p.add(f"counters[{i}].feature", f"expected the feature of a patch ({known}), found {c.feature!r}")
    earlier: list[str] = []
    for i, s in enumerate(m.series):
        if s.name in earlier:
            p.add(f"series[{i}].name", f"expected a new series name, found {s.name!r} again (series "
                  f"[{earlier.index(s.name)}])")
        if s.base != "kernel" and s.base not in earlier:
            have = ", ".join(earlier) or "none"
            p.add(f"series[{i}].base", f"expected 'kernel' or an earlier series ({have}), found {s.base!r}")
        earlier.append(s.name)
    return p


def _record_series(s: _SeriesModel, where: str) -> Series:
    patches = []
    for j, pm in enumerate(s.patches):
        pw = f"{where}.patches[{j}]"
        ops = tuple(Op(o.op, o.model_dump(by_alias=True, exclude_none=True, exclude={"op"}), f"{pw}.ops[{k}]")
                    for k, o in enumerate(pm.ops))
        patches.append(Patch(subject=pm.subject, message=pm.message, features=tuple(pm.features), ops=ops,
                             changes=dict(pm.changes), where=pw))
    return Series(name=s.name, version=s.version, subject_prefix=s.subject_prefix, base=s.base,
                  location=s.location, change_id=s.change_id, cover=s.cover, changelog=dict(s.changelog),
                  patches=tuple(patches), where=where, in_reply_to_previous=s.in_reply_to_previous)


def load(path: Path, template_dir: Path | None = None) -> SeriesFile:
    """Load and fully validate a series file; raise ForgeError listing every problem, one a line."""
    path = Path(path)
    raw = load_yaml(path, "series file")
    template_dir = template_dir or path.parent / "templates"
    m = validate(_SeriesFileModel, raw, path, {"template_dir": template_dir})
    _cross_checks(path, m).raise_if_any()
    tree = Path(m.base.tree).expanduser() if m.base.tree else None
    base = Base(tarball=None if tree else Path(m.base.tarball or DEFAULT_TARBALL), tree=tree, ref=m.base.ref,
                made_on=m.base.made_on)
    return SeriesFile(
        path=path,
        template_dir=template_dir,
        base=base,
        author_name=m.author.name,
        author_email=m.author.email,
        date=m.date,
        to=tuple(m.to or ()),
        cc=tuple(m.cc or ()),
        knobs=m.knobs,
        counters=tuple(m.counters),
        series=tuple(_record_series(s, f"series[{i}]") for i, s in enumerate(m.series)),
        cover_results=path.parent / m.cover_results if m.cover_results is not None else None,
    )
