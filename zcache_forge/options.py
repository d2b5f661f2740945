"""The tasks' options as pydantic models: every option is checked before any work starts
(no kernel build before an unknown --accel is found). A problem is one line naming the flag:
``--pool-percent: expected an integer 1..100, found 'abc'``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import ValidationError

from zcache_forge import series as series_mod
from zcache_forge.guest import qemu, scenarios
from zcache_forge.validate import Choice, Int, Strict, context_check, expected, option_error

ACCELS = qemu.ACCELS
BACKEND_NAMES = ("zcache", "zswap-zbud", "zswap-zsmalloc", "plain-swap")  # bench.BACKENDS


def _named(kind: str, key: str) -> Any:
    def check(v: Any, ctx: dict[str, Any]) -> str:
        known = ctx.get(key) or []
        if not isinstance(v, str) or v not in known:
            raise expected(f"a {kind} of {ctx.get(key + '_file')} ({', '.join(known)})")
        return v

    return Annotated[str, context_check(check)]


SeriesName = _named("series", "series")
ScenarioName = _named("scenario", "scenarios")
Accel = Choice(*ACCELS)
Port = Int(1, 65535, text=True)


class BuildPatchesOptions(Strict):
    series: list[SeriesName] = []
    boot: bool = False
    accel: Accel | None = None


class BenchLoopOptions(Strict):
    accel: Accel | None = None


class QemuTestOptions(Strict):
    scenario: list[ScenarioName] = []
    series: SeriesName | None = None
    accel: Accel | None = None
    jobs: Int(1, 64, text=True) = 1


class BenchOptions(Strict):
    scenario: list[ScenarioName] = []
    backend: list[Choice(*BACKEND_NAMES)] = []
    reps: Int(1, 1000, text=True) = 3
    accel: Accel | None = None
    pool_percent: Int(1, 100, text=True) | None = None
    disk: list[Choice(*(m.name for m in qemu.DISK_MODELS))] = []


class SendPatchesOptions(Strict):
    series: list[SeriesName] = []
    smtp_port: Port | None = None


def check(model: type[Any], series_file: Path, scenario_file: Path | None = None, **values: Any) -> Any:
    """Load the series file (and the scenario file), then validate the options against them.
    None and empty values are left out (the model's default applies)."""
    sf = series_mod.load(series_file)
    ctx: dict[str, Any] = {"series": [s.name for s in sf.series], "series_file": series_file.name}
    if scenario_file is not None:
        ctx.update(scenarios=scenarios.load_scenarios(scenario_file).names, scenarios_file=scenario_file.name)
    given = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()
             if v is not None and v != "" and v != []}
    try:
        return model.model_validate(given, context=ctx)
    except ValidationError as exc:
        raise option_error(exc, model) from None


