"""Read a guest's console log and judge whether the scenario passed.

The guest's /init and memhog print ``ZCF-RESULT {json}`` records and a final
``ZCF-DONE status=N``; the kernel prints its splats (oopses, BUGs, warnings,
lockups) to the same console, and, when built with KUnit tests, their results
in KTAP before /init starts. parse_console() collects all of it; judge() turns
it, with how QEMU ended, into a ScenarioResult with the reasons it failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .qemu import GuestRun
from .scenarios import Scenario

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


# KTAP, as KUnit prints it: "KTAP version 1", "# Subtest: NAME", "1..N",
# "ok N NAME" / "not ok N NAME [# SKIP reason]", "# diagnostics", nested by
# four spaces per level (suites under the top level, cases under a suite,
# parameters under a case). Only one space follows the printk timestamp:
# the indentation after it is KTAP's.
KTAP_PREFIX_RE = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\] ?)?(?:\[\s*[CT]\d+\] ?)?")
KTAP_HEADER_RE = re.compile(r"^(?P<indent> *)K?TAP version \d+$")
KTAP_SUBTEST_RE = re.compile(r"^(?P<indent> *)# Subtest: (?P<name>\S.*)$")
KTAP_PLAN_RE = re.compile(r"^(?P<indent> *)1\.\.(?P<count>\d+)$")
KTAP_RESULT_RE = re.compile(r"^(?P<indent> *)(?P<ok>ok|not ok) (?P<number>\d+)(?: -)?(?: (?P<name>[^#]*?))?"
                            r" *(?:# *(?P<directive>[A-Za-z]+)\b.*)?$")
KTAP_DIAG_RE = re.compile(r"^(?P<indent> *)# (?P<text>\S.*)$")
# diagnostic lines that are bookkeeping, not a test's own words
KTAP_META_RE = re.compile(r"^(?:Subtest|Totals): |^\S+: pass:\d+ fail:\d+")
KUNIT_STATUSES = ("ok", "not ok", "skip", "incomplete")


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


@dataclass
class _KtapFrame:
    """An open (sub)test: a suite, or a parameterised case."""

    indent: int
    name: str
    planned: int | None = None
    seen: int = 0


def _ktap_result(path: list[str], name: str, status: str, line: int, note: str) -> KtapResult:
    """A result named `name` inside the open subtests named `path` (outermost first)."""
    if not path:
        return KtapResult(name, None, status, line, note=note)
    if len(path) == 1:
        return KtapResult(path[0], name, status, line, note=note)
    return KtapResult(path[0], path[1], status, line, param="/".join([*path[2:], name]), note=note)


def _incomplete(frames: list[_KtapFrame], line: int, note: str) -> KtapResult:
    names = [f.name or "?" for f in frames]
    return _ktap_result(names[:-1], names[-1], "incomplete", line, note)


def _short_of_plan(frame: _KtapFrame) -> str:
    if frame.planned is not None and frame.seen < frame.planned:
        return f"{frame.seen} of {frame.planned} planned results"
    return ""


def parse_ktap(lines: Iterable[str]) -> list[KtapResult]:
    """Every KTAP result in a console log, in order, plus "incomplete" entries for (sub)tests that
    never reported a result or reported fewer than they planned. Lines before the first
    "KTAP version" header, and lines that are not KTAP, are ignored."""
    results: list[KtapResult] = []
    root = _KtapFrame(0, "")
    frames: list[_KtapFrame] = []  # open subtests, outermost first
    notes: dict[int, str] = {}  # indent -> first diagnostic since the last result there
    started = False
    n = 0

    def close_from(indent: int, line: int, why: str) -> None:
        """Close the open subtests at `indent` or deeper that never gave a result line."""
        nonlocal frames
        while frames and frames[-1].indent >= indent:
            short = _short_of_plan(frames[-1])
            results.append(_incomplete(frames, line, f"{why}{'; ' + short if short else ''}"))
            frames.pop()

    def finish(line: int, why: str) -> None:
        close_from(1, line, why)
        if short := _short_of_plan(root):
            results.append(KtapResult("", None, "incomplete", line, note=short.replace("results", "suites")))

    for n, raw in enumerate(lines, 1):
        line = KTAP_PREFIX_RE.sub("", raw.rstrip(), count=1)
        if m := KTAP_HEADER_RE.match(line):
            indent = len(m["indent"])
            if indent == 0:
                if started:
                    finish(n, "a new KTAP run began first")
                root, frames, notes = _KtapFrame(0, ""), [], {}
            else:
                close_from(indent, n, "no result line")
                frames.append(_KtapFrame(indent, ""))
            started = True
        elif not started:
            continue
        elif m := KTAP_SUBTEST_RE.match(line):
            indent = len(m["indent"])
            if frames and frames[-1].indent == indent and not frames[-1].name:
                frames[-1].name = m["name"].strip()
            else:
                close_from(indent, n, "no result line")
                frames.append(_KtapFrame(indent, m["name"].strip()))
        elif m := KTAP_PLAN_RE.match(line):
            indent = len(m["indent"])
            if indent == 0:
                root.planned = int(m["count"])
            elif frames and frames[-1].indent == indent:
                frames[-1].planned = int(m["count"])
        elif m := KTAP_RESULT_RE.match(line):
            indent = len(m["indent"])
            closing = [f for f in frames if f.indent > indent]  # [the subtest this result ends, deeper]
            if len(closing) > 1:
                close_from(closing[1].indent, n, "no result line")
            if closing and (short := _short_of_plan(closing[0])):
                results.append(_incomplete(frames, n, short))
            frames = [f for f in frames if f.indent <= indent]
            parent = root if indent == 0 else (frames[-1] if frames and frames[-1].indent == indent else None)
            if parent is not None:
                parent.seen += 1
            note = next((notes[i] for i in sorted(notes) if i >= indent), "")
            notes = {i: t for i, t in notes.items() if i < indent}
            directive = (m["directive"] or "").upper()
            status = "skip" if directive == "SKIP" else m["ok"]
            if status == "ok":
                note = ""
            name = (m["name"] or "").strip() or (closing[0].name if closing else "") or f"#{m['number']}"
            results.append(_ktap_result([f.name for f in frames if f.name], name, status, n, note))
            if indent == 0 and root.planned is not None and root.seen >= root.planned:
                started = False  # the run is complete: what follows is not KTAP
        elif (m := KTAP_DIAG_RE.match(line)) and not KTAP_META_RE.match(m["text"]):
            notes.setdefault(len(m["indent"]), m["text"].strip())
    if started:
        finish(n, "the console ended first")
    return results


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


def kunit_reasons(results: list[KtapResult]) -> list[str]:
    """One reason per failing KUnit result; a suite or case that failed only because some of its
    cases or parameters failed is not listed again."""
    failed = [r for r in results if r.status == "not ok"]
    reasons = []
    for r in failed:
        if r.case is None and any(f.suite == r.suite and f.case is not None for f in failed):
            continue
        if r.param is None and r.case is not None and any(
                f.suite == r.suite and f.case == r.case and f.param is not None for f in failed):
            continue
        reasons.append(f"KUnit {r.label}: not ok (console line {r.line})" + (f": {r.note}" if r.note else ""))
    for r in results:
        if r.status == "incomplete":
            reasons.append(f"KUnit {r.label}: incomplete at console line {r.line}: {r.note}")
    return reasons


@dataclass(frozen=True)
class Splat:
    line: int  # 1-based line number of the first matching line
    kind: str
    text: str  # the matching line with a few lines of context


@dataclass
class Console:
    records: dict[str, list[dict[str, Any]]]  # ZCF-RESULT records by kind
    done_status: int | None  # None: no ZCF-DONE line
    splats: list[Splat]
    bad_records: list[str]  # ZCF-RESULT lines whose JSON did not parse
    tail: list[str]  # the last non-empty console lines
    kunit: list[KtapResult] = field(default_factory=list)  # KUnit's KTAP results


@dataclass
class ScenarioResult:
    name: str
    backend: str
    passed: bool
    reasons: list[str]
    workloads: list[dict[str, Any]]  # memhog's records, run and recheck phases
    counters: dict[str, dict[str, float]]  # phase -> counter -> value
    accelerator: str
    seconds: float
    splats: list[Splat]
    exit_kind: str
    guest_status: int | None
    boot: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)  # swapoff timing etc.
    summary: dict[str, float | None] = field(default_factory=dict)
    console_log: str | None = None
    kunit: list[KtapResult] = field(default_factory=list)  # KUnit results, when the kernel has tests
    # what ended the run: "guest", "hang: console silent for 120 s", "timeout: wall-clock limit 900 s"
    ended_by: str = "guest"
    last_console: str = ""  # the console's last line when the run ended
    max_silence_s: float | None = None  # the console's longest silence (None: not measured)


# ---------------------------------------------------------------- parsing

def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _parse_record(line: str) -> dict[str, Any] | None:
    """The JSON object after the ZCF-RESULT mark (text after it is ignored)."""
    start = line.find("{", line.find(RESULT_MARK))
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(line, start)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("kind"), str) else None


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


def parse_console(text: str) -> Console:
    lines = _lines(text)
    records: dict[str, list[dict[str, Any]]] = {}
    bad: list[str] = []
    done: int | None = None
    for line in lines:
        if RESULT_MARK in line:
            rec = _parse_record(line)
            if rec is None:
                bad.append(line.strip())
            else:
                records.setdefault(rec["kind"], []).append(rec)
        m = DONE_RE.search(line)
        if m:
            done = int(m.group(1))
    tail = [ln.rstrip() for ln in lines if ln.strip()][-TAIL_LINES:]
    return Console(records=records, done_status=done, splats=find_splats(lines), bad_records=bad, tail=tail,
                   kunit=parse_ktap(lines))


# ---------------------------------------------------------------- judging

def _counters_by_phase(con: Console) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for rec in con.records.get("counters", []):
        values = rec.get("values")
        if isinstance(rec.get("phase"), str) and isinstance(values, dict):
            out[rec["phase"]] = {k: v for k, v in values.items() if isinstance(v, (int, float))}
    return out


def _delta(counters: dict[str, dict[str, float]], key: str, start: str, end: str) -> float | None:
    a, b = counters.get(start, {}).get(key), counters.get(end, {}).get(key)
    return None if a is None or b is None else b - a


def _ended_by(exit_kind: str, ended_by: str, scenario: Scenario) -> str:
    """The watchdog's words for a killed run ("guest" when QEMU exited by itself)."""
    if exit_kind not in ("hang", "timeout") or ended_by not in ("", "guest"):
        return ended_by or "guest"
    if exit_kind == "hang":
        return f"hang: console silent for {scenario.silence_timeout_s} s"
    return f"timeout: wall-clock limit {scenario.wall_limit_s} s"


def _exit_reasons(exit_kind: str, guest_status: int | None, seconds: float, scenario: Scenario,
                  qemu_stderr: str, ended_by: str = "guest", last_console: str = "") -> list[str]:
    if exit_kind in ("hang", "timeout"):
        return [f"{ended_by}: QEMU was killed after {seconds:.0f} s; the console said last: "
                f"{last_console or '(nothing)'!r}"]
    if exit_kind == "qemu-error":
        said = qemu_stderr.strip().splitlines()[-1:] or ["(nothing on stderr)"]
        return [f"QEMU failed: {said[0]}"]
    if exit_kind == "reset":
        return ["the guest rebooted or halted instead of exiting through isa-debug-exit "
                "(kernel panic, or /init died)"]
    if guest_status not in (0, None):
        return [f"the guest exited with status {guest_status}"]
    return []


def _boot_reasons(con: Console, scenario: Scenario | None = None) -> list[str]:
    if con.records.get("boot"):
        nproc = con.records["boot"][-1].get("nproc")
        if scenario is not None and isinstance(nproc, int) and nproc < scenario.cpus:
            return [f"the guest has {nproc} CPU(s) but the scenario asks for {scenario.cpus}: "
                    "the kernel did not find them (CONFIG_ACPI?)"]
        return []
    tail = "\n".join(f"    {ln}" for ln in con.tail) or "    (the console is empty)"
    return [f"the guest never booted (no boot record); last {TAIL_LINES} console lines:\n{tail}"]


def _done_reasons(con: Console) -> list[str]:
    reasons = [f"guest /init: {rec.get('message', '?')}" for rec in con.records.get("error", [])]
    if con.done_status is None:
        reasons.append("no ZCF-DONE line: the guest stopped before /init finished")
    elif con.done_status != 0:
        reasons.append(f"/init finished with ZCF-DONE status={con.done_status}")
    reasons += [f"unreadable ZCF-RESULT line: {line[:200]}" for line in con.bad_records]
    return reasons


def _workload_reasons(scenario: Scenario, con: Console) -> list[str]:
    reasons = []
    records = con.records.get("workload", [])
    sigbus = 0
    for i, w in enumerate(scenario.workloads):
        wid = f"w{i}"
        label = f"workload {wid} ({w.size_mib} MiB {w.pattern})"
        for phase in ("run", "recheck"):
            recs = [r for r in records if r.get("id") == wid and r.get("phase") == phase]
            if not recs:
                reasons.append(f"{label}: no {phase!r} result")
                continue
            rec = recs[-1]
            bad = rec.get("pages_corrupted", 0)
            if bad:
                reasons.append(f"{label}: {bad} corrupted pages in the {phase!r} phase")
            lost = rec.get("pages_sigbus", 0)
            sigbus += lost
            if lost and not scenario.load_fail_percent:
                reasons.append(f"{label}: {lost} pages raised SIGBUS in the {phase!r} phase "
                               "(the kernel could not read them back)")
            passes = rec.get("passes", 1) if phase == "run" else 1
            expected = rec.get("pages", 0) * passes
            if rec.get("pages_checked") != expected:
                reasons.append(f"{label}: {rec.get('pages_checked')} pages checked in the {phase!r} "
                               f"phase, expected {expected}: not every page was verified")
    if scenario.load_fail_percent and not sigbus and records:
        reasons.append("zcache loads were made to fail, yet no workload page raised SIGBUS: "
                       "a failed load must never pass for a good page")
    return reasons


def swap_used_kib(values: dict[str, float]) -> float | None:
    """Swap in use (KiB) in one counters record; frontswap'd pages hold swap slots too."""
    total, free = values.get("meminfo.SwapTotal_kib"), values.get("meminfo.SwapFree_kib")
    return None if total is None or free is None else total - free


def swapped(counters: dict[str, dict[str, float]]) -> bool | None:
    """Whether pages were swapped out in the run phase; None if nothing tells.

    pswpout counts only pages written to the disk (and only with
    CONFIG_VM_EVENT_COUNTERS), so swap in use and frontswap stores count too.
    """
    pressure = counters.get("pressure", {})
    signs = [_delta(counters, "pswpout", "before", "pressure"), swap_used_kib(pressure),
             _delta(counters, "frontswap.succ_stores", "before", "pressure")]
    known = [v for v in signs if v is not None]
    return any(v > 0 for v in known) if known else None


def _swap_reasons(counters: dict[str, dict[str, float]]) -> list[str]:
    if "pressure" not in counters:
        return ["no 'pressure' counters record: the run phase did not complete"]
    if swapped(counters) is False:
        return ["nothing was swapped out during the run phase: the workloads fit in RAM, "
                "so nothing was tested (raise size_mib or lower memory_mib)"]
    return []


def _zcache_reasons(counters: dict[str, dict[str, float]]) -> list[str]:
    pressure = counters.get("pressure")
    if pressure is None:
        return []
    if "zcache.pers_puts" not in pressure:
        return ["no zcache counters in /sys/kernel/debug/zcache: is zcache built in "
                "(CONFIG_ZCACHE=y, CONFIG_DEBUG_FS=y) and not disabled?"]
    if not swapped(counters):
        return []
    reasons = []
    stored = pressure["zcache.pers_puts"] - pressure.get("zcache.failed_pers_puts", 0)
    if stored <= 0:
        reasons.append(f"pages were swapped but zcache stored none "
                       f"(pers_puts {pressure['zcache.pers_puts']:.0f}, all refused)")
    if pressure.get("frontswap.succ_stores", 0) <= 0:
        reasons.append("pages were swapped but frontswap.succ_stores is 0: "
                       "zcache is not the active frontswap backend")
    return reasons


def _expect_reasons(scenario: Scenario, counters: dict[str, dict[str, float]]) -> list[str]:
    reasons = []
    for e in scenario.expect:
        values = counters.get(e.phase)
        if values is None:
            reasons.append(f"expect '{e}': no {e.phase!r} counters record")
        elif e.key not in values:
            reasons.append(f"expect '{e}': the guest did not report {e.key}")
        elif not e.holds(values[e.key]):
            reasons.append(f"expect '{e}' failed: {e.key} is {values[e.key]:g}")
    return reasons


def _splat_reasons(con: Console) -> list[str]:
    reasons = []
    for s in con.splats:
        first = s.text.splitlines()[min(CONTEXT_BEFORE, s.line - 1)]  # the matching line
        reasons.append(f"kernel {s.kind} at console line {s.line}: {first.strip()}")
    return reasons


def _summary(counters: dict[str, dict[str, float]], workloads: list[dict[str, Any]],
             steps: list[dict[str, Any]]) -> dict[str, float | None]:
    pressure = counters.get("pressure", {})
    after = counters.get("after-swapoff", counters.get("after", {}))
    puts = pressure.get("zcache.pers_puts")
    used = swap_used_kib(pressure)
    swapoff = next((s for s in steps if s.get("step") == "swapoff"
                    and isinstance(s.get("start_s"), (int, float))
                    and isinstance(s.get("end_s"), (int, float))), None)
    return {
        "swap_used_mib": None if used is None else round(used / 1024, 1),
        "pswpout": _delta(counters, "pswpout", "before", "pressure"),
        "zcache_stored": None if puts is None else puts - pressure.get("zcache.failed_pers_puts", 0),
        "zcache_refused": pressure.get("zcache.failed_pers_puts"),
        "frontswap_stores": pressure.get("frontswap.succ_stores"),
        "frontswap_failed": pressure.get("frontswap.failed_stores"),
        "frontswap_loads": after.get("frontswap.loads"),
        "corrupted": sum(w.get("pages_corrupted", 0) for w in workloads),
        "sigbus": sum(w.get("pages_sigbus", 0) for w in workloads),
        "swapoff_s": None if swapoff is None else round(swapoff["end_s"] - swapoff["start_s"], 2),
    }


def judge(scenario: Scenario, console_text: str, *, exit_kind: str = "exit", guest_status: int | None = 0,
          seconds: float = 0.0, accel: str = "", qemu_stderr: str = "",
          console_log: Path | None = None, ended_by: str = "guest", last_console: str = "",
          max_silence_s: float | None = None) -> ScenarioResult:
    """Judge one run of scenario from its console text and how QEMU ended."""
    con = parse_console(console_text)
    counters = _counters_by_phase(con)
    last_console = last_console or (con.tail[-1] if con.tail else "")
    ended_by = _ended_by(exit_kind, ended_by, scenario)
    reasons = _exit_reasons(exit_kind, guest_status, seconds, scenario, qemu_stderr, ended_by, last_console)
    boot_reasons = _boot_reasons(con, scenario)
    booted = bool(con.records.get("boot"))
    reasons += boot_reasons
    if booted:
        reasons += _done_reasons(con) + _workload_reasons(scenario, con) + _swap_reasons(counters)
        if scenario.backend == "zcache":
            reasons += _zcache_reasons(counters)
        reasons += _expect_reasons(scenario, counters)
    reasons += kunit_reasons(con.kunit)
    reasons += _splat_reasons(con)
    workloads = con.records.get("workload", [])
    steps = list(con.records.get("step", []))
    boot = con.records.get("boot", [None])[0]
    return ScenarioResult(
        name=scenario.name, backend=scenario.backend, passed=not reasons, reasons=reasons,
        workloads=workloads, counters=counters, accelerator=accel, seconds=round(seconds, 2),
        splats=con.splats, exit_kind=exit_kind, guest_status=guest_status, boot=boot, steps=steps,
        summary=_summary(counters, workloads, steps),
        console_log=str(console_log) if console_log else None, kunit=con.kunit,
        ended_by=ended_by, last_console=last_console, max_silence_s=max_silence_s)


def judge_run(scenario: Scenario, run: GuestRun) -> ScenarioResult:
    """Judge a finished QEMU run (reads its console log)."""
    try:
        text = run.console_log.read_text(errors="replace")
    except FileNotFoundError:
        text = ""
    return judge(scenario, text, exit_kind=run.exit_kind, guest_status=run.guest_status,
                 seconds=run.seconds, accel=run.accel, qemu_stderr=run.qemu_stderr,
                 console_log=run.console_log, ended_by=run.ended_by, last_console=run.last_console,
                 max_silence_s=run.max_silence_s)


# ---------------------------------------------------------------- output

def to_json(results: list[ScenarioResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, default=str)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _kunit_cell(results: list[KtapResult]) -> str:
    """passed/cases of KUnit, or "-" when the kernel printed no KTAP."""
    if not results:
        return "-"
    c = kunit_counts(results)
    return f"{c['passed']}/{c['cases']}"


def render_table(results: list[ScenarioResult]) -> str:
    """Plain-text columns, one row per scenario, then the reasons of the failures."""
    headers = ["scenario", "backend", "accel", "result", "secs", "swap-used-MiB", "fs-stores",
               "fs-refused", "fs-loads", "zcache-stored", "corrupted", "swapoff-s", "kunit"]
    rows = []
    for r in results:
        s = r.summary
        rows.append([r.name, r.backend, r.accelerator or "-", "PASS" if r.passed else "FAIL",
                     f"{r.seconds:.0f}", _fmt(s.get("swap_used_mib")), _fmt(s.get("frontswap_stores")),
                     _fmt(s.get("frontswap_failed")), _fmt(s.get("frontswap_loads")),
                     _fmt(s.get("zcache_stored")), _fmt(s.get("corrupted")),
                     "-" if s.get("swapoff_s") is None else f"{s['swapoff_s']:.1f}", _kunit_cell(r.kunit)])
    cells = [headers] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        for reason in r.reasons:
            lines.append(f"{r.name}: {reason}")
    return "\n".join(lines)
