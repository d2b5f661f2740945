"""KUnit's KTAP output on the guest console, read by the kernel's own parser.

A kernel built with KUnit tests prints their results in KTAP before /init starts. They are
parsed by tools/testing/kunit/kunit_parser.py of the kernel source tree the run used (the
tree the kernel was built from, so the parser matches the kernel's KTAP dialect), loaded with
importlib; this module only adapts its tree of Test objects into a flat list of KtapResult.
A console without KTAP needs no kernel tree; one with KTAP and no tree is a KunitParserMissing
naming the path it looked at.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from zcache_forge.errors import ForgeError

PARSER = Path("tools/testing/kunit/kunit_parser.py")
PRINTER = Path("tools/testing/kunit/kunit_printer.py")
# what the kernel's parser starts at (its KTAP_START and TAP_START)
HEADER_RE = re.compile(r"\s*K?TAP version [0-9]+$")
DIAG_RE = re.compile(r"^\s*# (?P<text>\S.*)$")
# diagnostic lines that are bookkeeping, not a test's own words
META_RE = re.compile(r"^(?:Subtest|Totals): |^\S+: pass:\d+ fail:\d+")


class KunitParserMissing(ForgeError):
    """The console holds KTAP, but the kernel tree with KUnit's parser is not there."""


@dataclass(frozen=True)
class KtapResult:
    """One result line of KUnit's KTAP output, or a (sub)test that never finished.

    suite: the KUnit suite (a top-level test); case: None for the suite's own
    result; param: a parameter of a parameterised case. status is "ok",
    "not ok", "skip" (ok or not ok with a SKIP directive), or "incomplete":
    no result line or fewer results than planned, because the console ended
    (a crash, a timeout) or lines were lost.
    """

    suite: str
    case: str | None
    status: str
    line: int  # 1-based console line of the result (for "incomplete": where it was noticed)
    param: str | None = None
    note: str = ""  # the first diagnostic line before a result, e.g. "...: EXPECTATION FAILED at ..."

    @property
    def label(self) -> str:
        text = self.suite or "(top level)"
        if self.case is not None:
            text += f".{self.case}"
        if self.param is not None:
            text += f"[{self.param}]"
        return text


# ---------------------------------------------------------------- loading the kernel's parser

def default_source() -> Path:
    """The kernel source tree invoke qemu-test and invoke bench build from (and check out there)."""
    from zcache_forge.kernel import cache_dir

    return cache_dir() / "src"


def has_ktap(lines: Iterable[str]) -> bool:
    return any(HEADER_RE.search(line.rstrip()) for line in lines)


class _Sink(io.TextIOBase):
    """Where the parser's progress report goes: nowhere."""

    def write(self, s: str) -> int:
        return len(s)


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_parser(src: Path) -> ModuleType:
    """kunit_parser of the kernel tree src, silenced, with its result lines' console line numbers kept.

    KunitParserMissing if the tree has no kunit_parser.py."""
    path = src / PARSER
    if not path.is_file() or not (src / PRINTER).is_file():
        raise KunitParserMissing(
            f"the console holds KUnit's KTAP output, read with the kernel's own parser, but there is no "
            f"{path}: check the kernel source the run used out at {src} (invoke qemu-test does)")
    tag = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:12]
    printer = _load(f"_zcf_kunit_printer_{tag}", src / PRINTER)
    saved = sys.modules.get("kunit_printer")
    sys.modules["kunit_printer"] = printer  # kunit_parser does "from kunit_printer import stdout"
    try:
        parser = _load(f"_zcf_kunit_parser_{tag}", path)
    finally:
        if saved is None:
            del sys.modules["kunit_printer"]
        else:
            sys.modules["kunit_printer"] = saved
    parser.stdout = printer.Printer(_Sink())
    _keep_line_numbers(parser)
    return parser


def _keep_line_numbers(parser: ModuleType) -> None:
    """Have this private copy of the parser note, on each Test, the console line of its result line
    (zcf_line), the status that line gave before bubbling up (zcf_status), where the test ended, whether
    the KTAP had run out then, and that it was parsed at all (the parser pads a parent short of its plan
    with bare Test() objects that never were)."""
    parse_test, parse_test_result = parser.parse_test, parser.parse_test_result

    def result(lines: Any, test: Any, expected_num: int) -> bool:
        n = lines.line_number()
        ok = parse_test_result(lines, test, expected_num)
        if ok:
            test.zcf_line, test.zcf_status = n, test.status
        return ok

    def one_test(lines: Any, expected_num: int, log: list[str], is_subtest: bool) -> Any:
        test = parse_test(lines, expected_num, log, is_subtest)
        test.zcf_num, test.zcf_end, test.zcf_eof = expected_num, lines.line_number(), not lines
        return test

    parser.parse_test_result, parser.parse_test = result, one_test


# ---------------------------------------------------------------- the adapter

def _named(path: list[str], name: str, status: str, line: int, note: str) -> KtapResult:
    """A result named `name` inside the tests named `path` (outermost first)."""
    if not path:
        return KtapResult(name, None, status, line, note=note)
    if len(path) == 1:
        return KtapResult(path[0], name, status, line, note=note)
    return KtapResult(path[0], path[1], status, line, param="/".join([*path[2:], name]), note=note)


def _note(log: list[str]) -> str:
    for raw in log:
        m = DIAG_RE.match(raw)
        if m and not META_RE.match(m["text"]):
            return m["text"].strip()
    return ""


def _adapt(parser: ModuleType, main: Any) -> list[KtapResult]:
    status_of = {parser.TestStatus.SUCCESS: "ok", parser.TestStatus.FAILURE: "not ok",
                 parser.TestStatus.SKIPPED: "skip"}
    out: list[KtapResult] = []

    def parsed(t: Any) -> list[Any]:
        return [s for s in t.subtests if hasattr(s, "zcf_num")]

    def walk(t: Any, path: list[str]) -> None:
        name = t.name.strip() or f"#{t.zcf_num}"
        real = parsed(t)
        for s in real:
            walk(s, [*path, name])
        line = getattr(t, "zcf_line", None)
        short = len(real) < len(t.subtests)  # padded: fewer results than planned
        if line is None or short:
            why = [] if line is not None else ["the console ended first" if t.zcf_eof else "no result line"]
            if short and t.expected_count:
                why.append(f"{len(real)} of {t.expected_count} planned results")
            out.append(_named(path, name, "incomplete", line or t.zcf_end, "; ".join(why)))
            return
        status = status_of.get(t.zcf_status, "incomplete")
        out.append(_named(path, name, status, line, "" if status == "ok" else _note(t.log)))

    for s in parsed(main):
        walk(s, [])
    if len(parsed(main)) < len(main.subtests) and main.expected_count:
        out.append(KtapResult("", None, "incomplete", main.zcf_end,
                              note=f"{len(parsed(main))} of {main.expected_count} planned suites"))
    return out


def parse_ktap(lines: Iterable[str], src: Path | None = None) -> list[KtapResult]:
    """Every KTAP result in a console log, in order (a parent after its subtests), plus "incomplete"
    entries for (sub)tests that never reported a result or reported fewer than they planned.

    [] without a "KTAP version" line; otherwise the kernel tree src (default: default_source()) must hold
    KUnit's parser, or KunitParserMissing."""
    lines = [line.rstrip("\r\n") for line in lines]
    if not has_ktap(lines):
        return []
    parser = load_parser((src or default_source()).resolve())
    stream = parser.extract_tap_lines(lines)
    if not stream:
        return []
    return _adapt(parser, parser.parse_test(stream, 0, [], False))


def kunit_counts(results: list[KtapResult]) -> dict[str, int]:
    """Cases (not suites, not parameters) by outcome; "incomplete" counts (sub)tests cut short."""
    cases = [r for r in results if r.case is not None and r.param is None and r.status != "incomplete"]
    return {
        "suites": sum(1 for r in results if r.case is None and r.suite and r.status != "incomplete"),
        "cases": len(cases),
        "passed": sum(1 for r in cases if r.status == "ok"),
        "failed": sum(1 for r in cases if r.status == "not ok"),
        "skipped": sum(1 for r in cases if r.status == "skip"),
        "incomplete": sum(1 for r in results if r.status == "incomplete"),
    }
