"""Loading and checking the project's YAML files (series, scenarios): every problem is
collected with the file and the field path, so the user sees them all at once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ForgeError


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


class Checker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def fail(self, where: str, msg: str) -> None:
        self.problems.append(f"{self.path}: {where}: {msg}")

    def raise_if_failed(self) -> None:
        if self.problems:
            raise ForgeError("\n".join(self.problems))

    def mapping(self, value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where or "(top level)", f"expected a mapping, got {type(value).__name__}")
            return {}
        allowed = required | optional
        for key in value:
            if key not in allowed:
                self.fail(f"{where}.{key}" if where else str(key),
                          f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            self.fail(f"{where}.{key}" if where else key, "missing required field")
        return value

    def string(self, value: Any, where: str, pattern: re.Pattern[str] | None = None,
               empty_ok: bool = False) -> str:
        if not isinstance(value, str) or (not empty_ok and not value.strip()):
            self.fail(where, f"expected a {'' if empty_ok else 'non-empty '}string, got {value!r}")
            return ""
        if pattern and not pattern.match(value):
            self.fail(where, f"{value!r} does not match {pattern.pattern}")
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(where, "expected a list of strings")
            return ()
        return tuple(self.string(v, f"{where}[{i}]") for i, v in enumerate(value))

    def integer(self, value: Any, where: str, lo: int, hi: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.fail(where, f"expected an integer from {lo} to {hi}, got {value!r}")
            return lo
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
            return choices[0]
        return str(value)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"expected true or false, got {value!r}")
            return True
        return value
