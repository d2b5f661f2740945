"""The tasks' options as pydantic models: every option is checked before any work starts
(no kernel build before an unknown --accel is found). A problem is one line naming the flag:
``--pool-percent: expected an integer 1..100, found 'abc'``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationError

from zcache_forge import series as series_mod
from zcache_forge.errors import ForgeError
from zcache_forge.guest import qemu, runners, scenarios
from zcache_forge.kernel import distcc
from zcache_forge.validate import Choice, Int, Str, Strict, context_check, expected, found, option_error

ACCELS = qemu.ACCELS
BACKEND_NAMES = ("zcache", "zswap-zbud", "zswap-zsmalloc", "plain-swap", "ramster")  # bench.BACKENDS


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


def _distcc_hosts(v: Any) -> str:
    try:
        distcc.parse_hosts(v if isinstance(v, str) else "")
    except ValueError:
        raise expected("distcc hosts, host[:port][/limit] separated by spaces or commas") from None
    return v


DistccHosts = Annotated[str, PlainValidator(_distcc_hosts)]


class BuildPatchesOptions(Strict):
    series: list[SeriesName] = []
    boot: bool = False
    accel: Accel | None = None
    distcc: DistccHosts | None = None


class BenchLoopOptions(Strict):
    accel: Accel | None = None


class RunnerOptions(Strict):
    """--runner and the lab's options (cli.check_lab checks that they go together)."""

    runner: Choice(*runners.RUNNERS) = runners.DEFAULT
    lava_url: Str(r"https?://\S+", what="an http(s) URL") | None = None
    lava_token: Str() | None = None
    lava_artifacts: Str() | None = None
    lava_artifacts_url: Str(r"https?://\S+", what="an http(s) URL") | None = None


class QemuTestOptions(RunnerOptions):
    scenario: list[ScenarioName] = []
    series: SeriesName | None = None
    accel: Accel | None = None
    jobs: Int(1, 64, text=True) = 1
    distcc: DistccHosts | None = None


class BenchOptions(RunnerOptions):
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
        opts = model.model_validate(given, context=ctx)
    except ValidationError as exc:
        raise option_error(exc, model) from None
    if "accel" in model.model_fields and getattr(opts, "boot", True):
        check_accel_env()
    return opts


def check_accel_env() -> None:
    """ZCF_ACCEL (tcg or kvm) forces the accelerator where --accel is not given (qemu.probe_accel
    reads it): a task that boots checks it with its options, before any work."""
    value = os.environ.get(qemu.ACCEL_ENV, "").strip()
    if value and value not in ACCELS:
        raise ForgeError(f"{qemu.ACCEL_ENV}: expected one of {', '.join(ACCELS)} (or unset: probe), "
                         f"found {found(value)}")


