"""lava-run's log -> the guest's console text and how the job ended.

Every line lava-run prints is one YAML mapping in flow style: {"dt": ..., "lvl": ..., "msg": ...}.
The guest's serial console comes as "target" records, one per console line, with LAVA's edits:
each double quote escaped with a backslash, carriage returns and escape characters removed. The
console is rebuilt by undoing the quote escape (LAVA only ever adds a backslash before a quote,
so removing one before every quote is exact). "results" records carry each action's result, and
"error"/"exception" records say why a job failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    _Loader = yaml.SafeLoader


@dataclass
class LavaLog:
    console: list[str] = field(default_factory=list)  # the guest's console lines, as the guest wrote them
    results: list[dict] = field(default_factory=list)  # the "results" records' msg mappings
    errors: list[str] = field(default_factory=list)  # "error" and "exception" messages, in order
    unreadable: int = 0  # lines that were not a LAVA record (a cut-off last line, stray output)

    @property
    def job_result(self) -> str | None:
        """"pass" or "fail" from the job's own result record (None: the job never finished)."""
        for r in reversed(self.results):
            if r.get("definition") == "lava" and r.get("case") == "job":
                return str(r.get("result"))
        return None

    @property
    def job_error(self) -> str | None:
        """The reason LAVA gives in the job's result record (error_msg), when the job failed."""
        for r in reversed(self.results):
            if r.get("definition") == "lava" and r.get("case") == "job" and r.get("error_msg"):
                return " ".join(str(r["error_msg"]).split())
        return None

    def reasons(self) -> list[str]:
        """Why the job failed, most telling first: the job's error_msg, the failed actions, the errors."""
        return [x for x in (self.job_error,) if x] or self.failed_actions() or self.errors

    def failed_actions(self) -> list[str]:
        """The LAVA actions that failed, with their error when LAVA gave one."""
        out = []
        for r in self.results:
            if r.get("definition") == "lava" and r.get("case") != "job" and r.get("result") == "fail":
                extra = r.get("extra") or {}
                why = extra.get("error_msg") or extra.get("fail") or ""
                out.append(f"{r.get('case')}" + (f" ({why})" if why else ""))
        return out

    def console_text(self) -> str:
        return "".join(line + "\n" for line in self.console)


def unescape(line: str) -> str:
    return line.replace('\\"', '"')


def parse_log(text: str) -> LavaLog:
    out = LavaLog()
    for raw in text.splitlines():
        if not raw.startswith("{"):
            if raw.strip():
                out.unreadable += 1
            continue
        try:
            rec = yaml.load(raw, Loader=_Loader)
        except yaml.YAMLError:
            out.unreadable += 1
            continue
        if not isinstance(rec, dict):
            out.unreadable += 1
            continue
        lvl, msg = rec.get("lvl"), rec.get("msg")
        if lvl == "target" and isinstance(msg, str):
            out.console.append(unescape(msg))
        elif lvl == "results" and isinstance(msg, dict):
            out.results.append(msg)
        elif lvl in ("error", "exception"):
            out.errors.append(str(msg))
    return out
