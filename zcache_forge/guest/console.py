"""The guest's console protocol: one pass over a console log into typed records.

The guest's /init, memhog and filehog print ``ZCF-RESULT {json}`` records (kinds: boot, counters,
workload, fs, exit, step, error) and a final ``ZCF-DONE status=N``; the kernel prints its
splats (oopses, BUGs, warnings, lockups) to the same console. parse_console() reads all of
it once: every record becomes a dataclass of its kind, and a record that cannot be read (its
JSON is cut short or garbled, or a field has the wrong type) becomes a ParseError naming its
console line, never an exception. KUnit's KTAP output is ktap's; the judging is judge's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

RESULT_MARK = "ZCF-RESULT "
DONE_RE = re.compile(r"ZCF-DONE status=(\d+)")
# "[   12.345678] " and "[    T1] " prefixes in front of a kernel message
PREFIX_RE = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[CT]\d+\]\s*)?")
SPLAT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("oops", re.compile(r"\bOops\b")),
    ("bug", re.compile(r"\bBUG:|^kernel BUG at ")),
    ("invalid-opcode", re.compile(r"^invalid opcode:")),
    # only a WARN() splat, which starts the message; not "RETBleed: WARNING: ..."
    ("warning", re.compile(r"^WARNING:")),
    ("panic", re.compile(r"Kernel panic")),
    ("soft-lockup", re.compile(r"soft lockup")),
    ("hard-lockup", re.compile(r"hard LOCKUP")),
    ("hung-task", re.compile(r"hung task|blocked for more than \d+ seconds")),
    ("kasan", re.compile(r"\bKASAN\b")),
    ("gpf", re.compile(r"general protection fault")),
    # the OOM killer's report carries a call trace too: name it for what it is
    ("oom", re.compile(r"invoked oom-killer:|^Out of memory: Killed process")),
    ("call-trace", re.compile(r"Call Trace:")),
)
IGNORE_FOR_SPLATS = ("ZCF-RESULT", "Kernel command line:", "zcf-init:")
CONTEXT_BEFORE = 2
CONTEXT_AFTER = 8
MAX_SPLATS = 20
TAIL_LINES = 15


# ---------------------------------------------------------------- records

@dataclass(frozen=True)
class BootRecord:
    """/init started: the guest's name for the scenario, kernel release, CPUs."""

    line: int  # 1-based console line
    name: str | None
    kernel: str | None
    nproc: int | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class CountersRecord:
    """The kernel's counters (zcache, frontswap, zswap debugfs, vmstat, meminfo) at one phase."""

    line: int
    phase: str  # "before", "pressure", "after", "after-swapoff"
    values: dict[str, float]  # the numeric values only
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class WorkloadRecord:
    """memhog's result of one phase ("run": fill and verify passes; "recheck": after swapoff)."""

    line: int
    id: str
    phase: str
    pages: int = 0
    passes: int = 1
    pages_checked: int | None = None
    pages_corrupted: int = 0
    pages_sigbus: int = 0
    bytes: float | None = None
    elapsed_s: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class FsRecord:
    """filehog's result of one action on the file set: "write", "pass1", "mutate", "pass2".

    sectors_read/sectors_written: what the fs disk did during the action (/sys/block/vdX/stat);
    bad: the first wrong pages or files, each naming the file, the page and what it held."""

    line: int
    id: str
    phase: str
    pages: int = 0              # pages the action expected to check (verify) or wrote (write)
    pages_checked: int = 0
    pages_corrupted: int = 0
    pages_stale: int = 0        # of the corrupted: another page's (or generation's) exact content
    file_errors: int = 0        # wrong size, EOF, a deleted file present, a file missing
    page_size: int = 4096
    pages_per_file: int = 0
    files: int = 0
    sectors_read: int | None = None
    sectors_written: int | None = None
    bytes: float | None = None
    elapsed_s: float | None = None
    bad: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ExitRecord:
    """How a workload process exited."""

    line: int
    id: str
    status: int
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StepRecord:
    """A step of /init's plan: swapoff (with its timing), hotplug cycles, swapoff under load."""

    line: int
    step: str
    start_s: float | None
    end_s: float | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class FsJobStep(StepRecord):
    """The mixed job's "fs-job" step: when the file-system job ran beside the workloads, and how many
    workloads were still in their run phase (filling and verifying) when it began and when it ended."""

    workloads_running_at_start: int = 0
    workloads_running_at_end: int = 0


@dataclass(frozen=True)
class ErrorRecord:
    """/init's own complaint (a workload that failed, a missing device)."""

    line: int
    message: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class OtherRecord:
    """A record of a kind this version does not know: kept, not judged."""

    line: int
    kind: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ParseError:
    """A ZCF-RESULT line that could not be read into its record."""

    line: int
    text: str  # the console line, stripped
    why: str
    kind: str | None = None  # the record's kind, when the JSON was readable

    @property
    def unreadable(self) -> bool:
        """The JSON itself did not parse (a line cut short or garbled on the serial console)."""
        return self.kind is None


Record = (BootRecord | CountersRecord | WorkloadRecord | FsRecord | ExitRecord | StepRecord | FsJobStep
          | ErrorRecord | OtherRecord)


@dataclass(frozen=True)
class Splat:
    line: int  # 1-based line number of the first matching line
    kind: str
    text: str  # the matching line with a few lines of context


R = TypeVar("R")


@dataclass
class Console:
    """A console log, parsed once."""

    lines: list[str]
    records: list[Record]  # in console order
    done_status: int | None  # None: no ZCF-DONE line
    splats: list[Splat]
    errors: list[ParseError]  # ZCF-RESULT lines that could not be read
    tail: list[str]  # the last non-empty console lines

    def of(self, cls: type[R]) -> list[R]:
        return [r for r in self.records if isinstance(r, cls)]

    @property
    def boots(self) -> list[BootRecord]:
        return self.of(BootRecord)

    @property
    def workloads(self) -> list[WorkloadRecord]:
        return self.of(WorkloadRecord)

    @property
    def fs(self) -> list[FsRecord]:
        return self.of(FsRecord)

    @property
    def counters(self) -> list[CountersRecord]:
        return self.of(CountersRecord)

    @property
    def steps(self) -> list[StepRecord]:
        return self.of(StepRecord)

    @property
    def fs_job(self) -> FsJobStep | None:
        """The mixed job's fs-job step (the last one), or None."""
        steps = self.of(FsJobStep)
        return steps[-1] if steps else None

    @property
    def guest_errors(self) -> list[ErrorRecord]:
        return self.of(ErrorRecord)


# ---------------------------------------------------------------- parsing

class _Malformed(Exception):
    """A field of a record is missing or of the wrong type (caught in parse_record)."""


def _str(obj: dict[str, Any], key: str, default: str | None = None, required: bool = True) -> Any:
    value = obj.get(key)
    if value is None:
        if required and default is None:
            raise _Malformed(f"no {key!r}")
        return default
    if not isinstance(value, str):
        raise _Malformed(f"{key!r} is not a string: {value!r}")
    return value


def _num(obj: dict[str, Any], key: str, default: Any = None, integral: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Malformed(f"{key!r} is not a number: {value!r}")
    if integral and not isinstance(value, int):
        raise _Malformed(f"{key!r} is not a whole number: {value!r}")
    return value


def _record(n: int, obj: dict[str, Any]) -> Record:
    kind = obj["kind"]
    if kind == "boot":
        return BootRecord(n, _str(obj, "name", required=False), _str(obj, "kernel", required=False),
                          _num(obj, "nproc", integral=True), obj)
    if kind == "counters":
        values = obj.get("values")
        if not isinstance(values, dict):
            raise _Malformed("no 'values' object")
        return CountersRecord(n, _str(obj, "phase"), {k: v for k, v in values.items()
                                                     if isinstance(v, (int, float))}, obj)
    if kind == "workload":
        return WorkloadRecord(
            n, _str(obj, "id"), _str(obj, "phase"), pages=_num(obj, "pages", 0),
            passes=_num(obj, "passes", 1), pages_checked=_num(obj, "pages_checked"),
            pages_corrupted=_num(obj, "pages_corrupted", 0), pages_sigbus=_num(obj, "pages_sigbus", 0),
            bytes=_num(obj, "bytes"), elapsed_s=_num(obj, "elapsed_s"), raw=obj)
    if kind == "fs":
        bad = obj.get("bad", [])
        if not isinstance(bad, list) or not all(isinstance(b, str) for b in bad):
            raise _Malformed(f"'bad' is not a list of strings: {bad!r}")
        sectors = obj.get("disk_stat") is not False  # filehog had no disk to count
        return FsRecord(
            n, _str(obj, "id"), _str(obj, "phase"), pages=_num(obj, "pages", 0, True),
            pages_checked=_num(obj, "pages_checked", 0, True),
            pages_corrupted=_num(obj, "pages_corrupted", 0, True),
            pages_stale=_num(obj, "pages_stale", 0, True), file_errors=_num(obj, "file_errors", 0, True),
            page_size=_num(obj, "page_size", 4096, True), pages_per_file=_num(obj, "pages_per_file", 0, True),
            files=_num(obj, "files", 0, True),
            sectors_read=_num(obj, "sectors_read", integral=True) if sectors else None,
            sectors_written=_num(obj, "sectors_written", integral=True) if sectors else None,
            bytes=_num(obj, "bytes"), elapsed_s=_num(obj, "elapsed_s"), bad=tuple(bad), raw=obj)
    if kind == "exit":
        status = _num(obj, "status", integral=True)
        if status is None:
            raise _Malformed("no 'status'")
        return ExitRecord(n, _str(obj, "id"), status, obj)
    if kind == "step":
        step = _str(obj, "step")
        if step == "fs-job":
            running = []
            for key in ("workloads_running_at_start", "workloads_running_at_end"):
                value = _num(obj, key, integral=True)
                if value is None:
                    raise _Malformed(f"no {key!r}")
                running.append(value)
            start, end = _num(obj, "start_s"), _num(obj, "end_s")
            if start is None or end is None:
                raise _Malformed("no 'start_s' and 'end_s'")
            return FsJobStep(n, step, start, end, obj, *running)
        return StepRecord(n, step, _num(obj, "start_s"), _num(obj, "end_s"), obj)
    if kind == "error":
        return ErrorRecord(n, _str(obj, "message", "?"), obj)
    return OtherRecord(n, kind, obj)


def parse_record(n: int, line: str) -> Record | ParseError:
    """The record after the ZCF-RESULT mark on console line n (text after its JSON is ignored)."""
    text = line.strip()
    start = line.find("{", line.find(RESULT_MARK))
    if start < 0:
        return ParseError(n, text, "no JSON object after the mark")
    try:
        obj, _ = json.JSONDecoder().raw_decode(line, start)
    except ValueError as exc:
        return ParseError(n, text, f"unreadable JSON: {exc}")
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        return ParseError(n, text, "no 'kind'")
    try:
        return _record(n, obj)
    except _Malformed as exc:
        return ParseError(n, text, str(exc), kind=obj["kind"])


def _splat_kind(line: str) -> str | None:
    if any(mark in line for mark in IGNORE_FOR_SPLATS):
        return None
    message = PREFIX_RE.sub("", line.strip())
    for kind, pattern in SPLAT_PATTERNS:
        if pattern.search(message):
            return kind
    return None


def find_splats(lines: list[str]) -> list[Splat]:
    """Kernel splats, each quoted with context; matches inside one quote are merged."""
    spans: list[tuple[int, int, str]] = []  # first match, end of context, kind
    for i, line in enumerate(lines):
        kind = _splat_kind(line)
        if kind is None:
            continue
        end = min(len(lines), i + CONTEXT_AFTER + 1)
        if spans and i < spans[-1][1]:
            first, _, first_kind = spans[-1]
            spans[-1] = (first, end, first_kind)
        else:
            spans.append((i, end, kind))
    splats = []
    for first, end, kind in spans[:MAX_SPLATS]:
        quote = lines[max(0, first - CONTEXT_BEFORE):end]
        splats.append(Splat(line=first + 1, kind=kind, text="\n".join(ln.rstrip() for ln in quote)))
    return splats


def split_lines(text: str) -> list[str]:
    """Console text into lines; the serial console ends them with CR LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def parse_console(text: str) -> Console:
    lines = split_lines(text)
    records: list[Record] = []
    errors: list[ParseError] = []
    done: int | None = None
    for n, line in enumerate(lines, 1):
        if RESULT_MARK in line:
            rec = parse_record(n, line)
            if isinstance(rec, ParseError):
                errors.append(rec)
            else:
                records.append(rec)
        m = DONE_RE.search(line)
        if m:
            done = int(m.group(1))
    tail = [ln.rstrip() for ln in lines if ln.strip()][-TAIL_LINES:]
    return Console(lines=lines, records=records, done_status=done, splats=find_splats(lines), errors=errors,
                   tail=tail)
