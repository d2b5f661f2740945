"""Validation of the project's YAML files and of the tasks' options, with pydantic models.

Every problem becomes one line ``<file>: <field.path[2].name>: expected <what>, found <what>``
(for options ``--pool-percent: expected an integer 1..100, found 'abc'``); all of a file's
problems are reported at once, before any work starts.

The field types here (``Int``, ``Str``, ``Choice``, ``Bool``) check the exact YAML type
(``cpus: "2"`` is not a number) and carry their own "expected ..." text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from zcache_forge.errors import ForgeError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of every model: unknown keys are errors, records are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


# --- field types with their own "expected ..." ----------------------------------------------


def expected(what: str) -> PydanticCustomError:
    """An error whose message is the 'expected ...' part; 'found ...' is added from the input."""
    return PydanticCustomError("zcf_expected", "{what}", {"what": what})


def plain(msg: str) -> PydanticCustomError:
    """An error whose message is complete ('expected ..., found ...' written by the caller)."""
    return PydanticCustomError("zcf_plain", "{msg}", {"msg": msg})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def Int(lo: int, hi: int | None = None, *, text: bool = False) -> Any:  # noqa: N802 (a type factory)
    """An integer in lo..hi (hi None: no upper bound). text: also a string of digits (options)."""
    what = f"an integer {lo}..{hi}" if hi is not None else f"an integer >= {lo}"

    def check(v: Any) -> int:
        if text and isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
            v = int(v)
        if not _is_int(v) or v < lo or (hi is not None and v > hi):
            raise expected(what)
        return v

    return Annotated[int, PlainValidator(check)]


def Str(pattern: str | None = None, *, empty: bool = False, what: str | None = None) -> Any:  # noqa: N802
    """A string (non-empty unless empty=True) matching pattern if given."""
    desc = what or ("a string" if empty else "a non-empty string")
    rx = re.compile(pattern) if pattern else None

    def check(v: Any) -> str:
        if not isinstance(v, str) or (not empty and not v.strip()) or (rx and not rx.fullmatch(v)):
            raise expected(desc)
        return v

    return Annotated[str, PlainValidator(check)]


def Choice(*values: str) -> Any:  # noqa: N802
    what = f"one of {', '.join(values)}"

    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in values:
            raise expected(what)
        return v

    return Annotated[str, PlainValidator(check)]


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise expected("true or false")
    return v


Bool = Annotated[bool, PlainValidator(_bool)]


def context_check(fn: Callable[[Any, dict[str, Any]], Any]) -> PlainValidator:
    """A validator that sees the validation context (e.g. the template directory)."""

    def check(v: Any, info: ValidationInfo) -> Any:
        return fn(v, info.context or {})

    return PlainValidator(check)


# --- messages ----------------------------------------------------------------------------------


def found(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return repr(v) if len(v) <= 60 else repr(v[:57] + "...")
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    return type(v).__name__


def path_of(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and part.startswith("op="):  # the tag of an op's model
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


_GENERIC = {
    "string_type": "a string", "int_type": "an integer", "bool_type": "true or false",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "tuple_type": "a list", "int_parsing": "an integer",
}


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the model at loc (the parent of an unknown key) accepts."""
    tp: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(part, str) and part.startswith("op="):
            tp = _tagged(tp, part)
            continue
        fields = getattr(_model_in(tp), "model_fields", None)
        by_alias = {(f.alias or n): f for n, f in (fields or {}).items()}
        if part not in by_alias:
            return None
        tp = by_alias[part].annotation
    fields = getattr(_model_in(tp), "model_fields", None)
    return sorted((f.alias or n) for n, f in fields.items()) if fields else None


def _model_in(tp: Any) -> Any:
    """The model class inside an annotation like list[X], X | None, dict[str, X]."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in reversed(getattr(tp, "__args__", ()) or ()):
        m = _model_in(arg)
        if m is not None:
            return m
    return None


def messages(exc: ValidationError, model: type[BaseModel], loc_name: Callable[[tuple], str] = path_of,
             ) -> list[str]:
    """One 'field: expected X, found Y' per problem, the first per field only."""
    out: dict[str, str] = {}
    for e in exc.errors(include_url=False):
        loc = tuple(e["loc"])
        where = loc_name(loc)
        kind, inp = e["type"], e.get("input")
        if kind == "zcf_plain":
            msg = str(e["ctx"]["msg"])
        elif kind in ("union_tag_invalid", "union_tag_not_found"):  # the ops: tags 'op=NAME'
            tags = [t.strip("'").removeprefix("op=") for t in str(e.get("ctx", {}).get("expected_tags", ""))
                    .split(", ")]
            op = inp.get("op") if isinstance(inp, dict) else None
            where = f"{where}.op" if isinstance(inp, dict) else where
            what = f"one of {', '.join(tags)}" if isinstance(inp, dict) else "a mapping with an 'op' field"
            msg = f"expected {what}, found {found(op) if isinstance(inp, dict) else found(inp)}"
        elif kind == "zcf_expected":
            msg = f"expected {e['ctx']['what']}, found {found(inp)}"
        elif kind == "missing":
            msg = "expected a value, found nothing (missing required field)"
        elif kind == "extra_forbidden":
            allowed = _allowed_fields(model, loc[:-1])
            keys = f"one of the keys {', '.join(allowed)}" if allowed else "no such key"
            msg = f"expected {keys}, found unknown key {loc[-1]!r}"
        elif kind in _GENERIC:
            msg = f"expected {_GENERIC[kind]}, found {found(inp)}"
        elif kind.startswith("too_short") or kind.startswith("too_long"):
            ctx = e.get("ctx", {})
            lo, hi = ctx.get("min_length"), ctx.get("max_length")
            n = "a non-empty list" if kind == "too_short" and lo == 1 else \
                f"a list of {lo or 0}..{hi} items" if hi else f"a list of at least {lo} items"
            size = len(inp) if hasattr(inp, "__len__") else None
            msg = f"expected {n}, found " + ("an empty list" if size == 0 else f"{size} items")
        elif kind == "value_error":
            msg = str(e["msg"]).removeprefix("Value error, ")
        else:
            msg = f"expected a valid value ({e['msg']}), found {found(inp)}"
        out.setdefault(where, msg)
    return [f"{w}: {m}" for w, m in out.items()]


def validate(model: type[M], data: Any, source: str | Path, context: dict[str, Any] | None = None) -> M:
    """model_validate with every problem as one 'source: field: ...' line of a ForgeError."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ForgeError("\n".join(f"{source}: {m}" for m in messages(exc, model))) from None


def option_error(exc: ValidationError, model: type[BaseModel]) -> ForgeError:
    """Options' problems name the flag: ('pool_percent',) -> --pool-percent."""
    def flag(loc: tuple) -> str:
        name = "--" + str(loc[0]).replace("_", "-")
        return name + "".join(f"[{p}]" for p in loc[1:] if isinstance(p, int))

    return ForgeError("\n".join(messages(exc, model, flag)))


class Problems:
    """Cross-field checks after the models (duplicates, references): the same one-line form."""

    def __init__(self, source: str | Path) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.lines.append(f"{self.source}: {where}: {msg}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ForgeError("\n".join(self.lines))


def load_yaml(path: Path, what: str) -> Any:
    """Parse `path`; a syntax error names the file, line and column."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ForgeError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ForgeError(f"{path}{loc}: YAML syntax error: {problem}") from exc


def _tagged(tp: Any, tag: str) -> Any:
    """The member of a tagged union whose Tag is tag (unknown-key messages of the ops)."""
    for arg in getattr(tp, "__args__", ()) or ():
        for meta in getattr(arg, "__metadata__", ()):
            if getattr(meta, "tag", None) == tag:
                return arg.__origin__
        found_ = _tagged(arg, tag)
        if found_ is not None:
            return found_
    return None
