"""Boot-test scenarios as data: load qemu/scenarios.yaml, validate it, return typed records.

A scenario says what guest to boot (RAM, CPUs, swap disk size), which
frontswap backend to use (zcache, zswap or none) and which memhog workloads
to run in it. The whole file is checked before anything is returned; every
problem names the file and the field (``scenarios[2].workloads[0].pattern``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ForgeError
from .yamlcheck import Checker, load_yaml

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "qemu" / "scenarios.yaml"
BACKENDS = ("zcache", "zswap", "none")
ZPOOLS = ("zbud", "zsmalloc")
PATTERNS = ("zero", "text", "mixed", "random")
PHASES = ("before", "pressure", "after-swapoff", "after")
MAX_WORKLOADS = 4
# zcache's and zswap's default pool, in percent of RAM (series.yaml knobs.zcache.max_pool_percent)
DEFAULT_POOL_PERCENT = 20
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# "pressure zcache.compress_poor > 0": phase, counter key, operator, integer
# Hang detection: QEMU is killed when the guest's console says nothing for silence_timeout_s
# (default below; TCG on a busy 2-core host). The guest's /init prints a heartbeat whenever the
# swap and fault counters moved, every heartbeat_s, so a slow but working guest is never silent
# that long; timeout_s * WALL_BACKSTOP is only the wall-clock backstop.
DEFAULT_SILENCE_TIMEOUT_S = 120
WALL_BACKSTOP = 3
MAX_HEARTBEAT_S = 10
EXPECT_RE = re.compile(r"^\s*(\S+)\s+([A-Za-z0-9_.-]+)\s*(==|!=|>=|<=|>|<)\s*(-?\d+)\s*$")

SCENARIO_REQUIRED = {"name", "backend", "memory_mib", "swap_mib", "workloads", "timeout_s"}
SCENARIO_OPTIONAL = {"cpus", "cmdline_extra", "swapoff_recheck", "zpool", "expect", "description",
                     "hotplug", "fault_percent", "swap_devices", "swapoff_under_load", "memcg_max_mib",
                     "load_fail_percent", "silence_timeout_s"}
WORKLOAD_FIELDS = {"size_mib", "pattern", "passes", "seed", "thp"}


@dataclass(frozen=True)
class Workload:
    size_mib: int
    pattern: str
    passes: int
    seed: int
    thp: bool = False  # back the workload's memory with transparent huge pages

    def job(self) -> str:
        """The workload as the guest's /init reads it: SIZE:PATTERN:PASSES:SEED[:thp]."""
        return f"{self.size_mib}:{self.pattern}:{self.passes}:{self.seed}" + (":thp" if self.thp else "")


@dataclass(frozen=True)
class Expectation:
    """A counter check the verdict applies, e.g. ``pressure zcache.compress_poor > 0``."""

    phase: str
    key: str
    op: str
    value: int

    def __str__(self) -> str:
        return f"{self.phase} {self.key} {self.op} {self.value}"

    def holds(self, actual: int | float) -> bool:
        ops = {"==": actual == self.value, "!=": actual != self.value, ">=": actual >= self.value,
               "<=": actual <= self.value, ">": actual > self.value, "<": actual < self.value}
        return ops[self.op]


@dataclass(frozen=True)
class Scenario:
    name: str
    backend: str
    memory_mib: int
    cpus: int
    swap_mib: int
    cmdline_extra: str
    workloads: tuple[Workload, ...]
    timeout_s: int
    swapoff_recheck: bool = True
    zpool: str | None = None
    expect: tuple[Expectation, ...] = ()
    description: str = ""
    hotplug: bool = False      # toggle CPU 1 offline/online during the run phase
    fault_percent: int = 0     # fail this share of zcache's allocations (debug kernel)
    swap_devices: int = 1      # 2: a second swap disk (/dev/vdb) of higher priority
    swapoff_under_load: bool = False  # swapoff and swapon /dev/vdb while the workloads run
    memcg_max_mib: int = 0     # run the workloads in a cgroup with this memory.max (0: none)
    load_fail_percent: int = 0  # fail this share of zcache's loads (fault attr zcache_fail_load)
    silence_timeout_s: int = DEFAULT_SILENCE_TIMEOUT_S  # console silent this long: a hang, QEMU killed

    @property
    def wall_limit_s(self) -> int:
        """The wall-clock backstop: a guest that keeps printing is killed only after this."""
        return self.timeout_s * WALL_BACKSTOP

    @property
    def heartbeat_s(self) -> int:
        """How often the guest's /init prints a heartbeat (when its counters moved): a sixth of the
        silence limit, so several heartbeats fit in it, at most MAX_HEARTBEAT_S."""
        return max(1, min(MAX_HEARTBEAT_S, self.silence_timeout_s // 6))

    @property
    def workload_mib(self) -> int:
        return sum(w.size_mib for w in self.workloads)

    @property
    def balloon_mib(self) -> int:
        """RAM the guest pins during the run phase and frees before swapoff.

        memory_mib is the RAM the workloads compete for. swapoff has to bring
        every swapped page back, which only works if all workloads fit in RAM,
        so with swapoff_recheck the guest gets this much more and /init pins it
        in ramfs (unevictable) until the pressure counters have been read.
        """
        return self.workload_mib if self.swapoff_recheck else 0

    @property
    def guest_ram_mib(self) -> int:
        """What QEMU is given (-m): memory_mib plus the balloon."""
        return self.memory_mib + self.balloon_mib

    def backend_args(self) -> list[str]:
        """Kernel parameters that select the frontswap backend."""
        if self.backend == "zcache":
            return []  # zcache registers itself at boot unless zcache.enabled=0
        if self.backend == "zswap":
            return ["zcache.enabled=0", "zswap.enabled=1", f"zswap.zpool={self.zpool or 'zbud'}"]
        return ["zcache.enabled=0", "zswap.enabled=0"]

    def job_args(self) -> list[str]:
        """The zcf.* parameters the guest's /init reads its job from."""
        return [
            f"zcf.name={self.name}",
            "zcf.workloads=" + ",".join(w.job() for w in self.workloads),
            f"zcf.recheck={1 if self.swapoff_recheck else 0}",
            f"zcf.balloon={self.balloon_mib}",
            f"zcf.heartbeat={self.heartbeat_s}",
            *(["zcf.hotplug=1"] if self.hotplug else []),
            *([f"zcf.fault={self.fault_percent}"] if self.fault_percent else []),
            *([f"zcf.swaps={self.swap_devices}"] if self.swap_devices > 1 else []),
            *(["zcf.swapoff_load=1"] if self.swapoff_under_load else []),
            *([f"zcf.memcg_max={self.memcg_max_mib}"] if self.memcg_max_mib else []),
            *([f"zcf.loadfail={self.load_fail_percent}"] if self.load_fail_percent else []),
        ]

    def pool_args(self) -> list[str]:
        """The backend's default pool as a share of the RAM the workloads compete for.

        The balloon is RAM as well, so zcache and zswap would size their default pools from
        memory_mib + balloon_mib and take a larger share of what the workloads really have
        (on the debug kernel, with THP's raised watermarks, that ended in an OOM kill).
        Unless the scenario sets the limit itself, it is scaled to memory_mib."""
        if not self.balloon_mib or self.backend == "none" or "max_pool_percent=" in self.cmdline_extra:
            return []
        percent = max(1, round(DEFAULT_POOL_PERCENT * self.memory_mib / self.guest_ram_mib))
        return [f"{self.backend}.max_pool_percent={percent}"]

    def kernel_args(self) -> list[str]:
        """Backend selection and pool, the user's extra parameters, then the job."""
        return self.backend_args() + self.pool_args() + self.cmdline_extra.split() + self.job_args()


@dataclass(frozen=True)
class ScenarioFile:
    path: Path
    scenarios: tuple[Scenario, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    def get(self, name: str) -> Scenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise ForgeError(f"{self.path}: no scenario named {name!r} (known: {', '.join(self.names)})")


def _workload(c: Checker, raw: Any, where: str) -> Workload:
    d = c.mapping(raw, where, WORKLOAD_FIELDS - {"thp"}, {"thp"})
    return Workload(
        size_mib=c.integer(d.get("size_mib", 1), f"{where}.size_mib", 1, 65536),
        pattern=c.choice(d.get("pattern", "mixed"), f"{where}.pattern", PATTERNS),
        passes=c.integer(d.get("passes", 1), f"{where}.passes", 0, 1000),
        seed=c.integer(d.get("seed", 1), f"{where}.seed", 0, 2**63 - 1),
        thp=c.boolean(d.get("thp", False), f"{where}.thp"),
    )


def _workloads(c: Checker, raw: Any, where: str) -> tuple[Workload, ...]:
    if raw is None:  # reported as a missing field
        return ()
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_WORKLOADS:
        c.fail(where, f"expected a list of 1 to {MAX_WORKLOADS} workloads")
        return ()
    return tuple(_workload(c, w, f"{where}[{i}]") for i, w in enumerate(raw))


def _expectations(c: Checker, raw: Any, where: str) -> tuple[Expectation, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.fail(where, 'expected a list like ["pressure zcache.compress_poor > 0"]')
        return ()
    out = []
    for i, item in enumerate(raw):
        m = EXPECT_RE.match(item) if isinstance(item, str) else None
        if not m:
            c.fail(f"{where}[{i}]", f"expected 'PHASE KEY OP NUMBER', got {item!r}")
            continue
        phase, key, op, value = m.groups()
        if phase not in PHASES:
            c.fail(f"{where}[{i}]", f"unknown phase {phase!r} (known: {', '.join(PHASES)})")
        out.append(Expectation(phase, key, op, int(value)))
    return tuple(out)


def _backend_fields(c: Checker, d: dict[str, Any], where: str) -> tuple[str, str | None]:
    backend = c.choice(d.get("backend", BACKENDS[0]), f"{where}.backend", BACKENDS)
    zpool = d.get("zpool")
    if zpool is not None:
        if backend != "zswap":
            c.fail(f"{where}.zpool", "only allowed with backend: zswap")
        zpool = c.choice(zpool, f"{where}.zpool", ZPOOLS)
    return backend, zpool


def _scenario(c: Checker, raw: Any, where: str) -> Scenario | None:
    d = c.mapping(raw, where, SCENARIO_REQUIRED, SCENARIO_OPTIONAL)
    if not d:
        return None
    name = c.string(d.get("name", "unnamed"), f"{where}.name")
    if not NAME_RE.match(name):
        c.fail(f"{where}.name", f"{name!r} must be lower-case letters, digits and dashes")
    backend, zpool = _backend_fields(c, d, where)
    extra = c.string(d.get("cmdline_extra", ""), f"{where}.cmdline_extra", empty_ok=True)
    if "zcf." in extra:
        c.fail(f"{where}.cmdline_extra", "zcf.* parameters are set by the tool, not the scenario")
    return Scenario(
        name=name,
        backend=backend,
        memory_mib=c.integer(d.get("memory_mib", 64), f"{where}.memory_mib", 64, 16384),
        cpus=c.integer(d.get("cpus", 1), f"{where}.cpus", 1, 4),
        swap_mib=c.integer(d.get("swap_mib", 1), f"{where}.swap_mib", 1, 65536),
        cmdline_extra=extra,
        workloads=_workloads(c, d.get("workloads"), f"{where}.workloads"),
        timeout_s=c.integer(d.get("timeout_s", 10), f"{where}.timeout_s", 10, 7200),
        swapoff_recheck=c.boolean(d.get("swapoff_recheck", True), f"{where}.swapoff_recheck"),
        zpool=zpool,
        expect=_expectations(c, d.get("expect"), f"{where}.expect"),
        description=c.string(d.get("description", ""), f"{where}.description", empty_ok=True),
        hotplug=_hotplug(c, d, where),
        fault_percent=c.integer(d.get("fault_percent", 0), f"{where}.fault_percent", 0, 100),
        swap_devices=c.integer(d.get("swap_devices", 1), f"{where}.swap_devices", 1, 2),
        swapoff_under_load=_swapoff_under_load(c, d, where),
        memcg_max_mib=c.integer(d.get("memcg_max_mib", 0), f"{where}.memcg_max_mib", 0, 16384),
        load_fail_percent=c.integer(d.get("load_fail_percent", 0), f"{where}.load_fail_percent", 0, 100),
        silence_timeout_s=c.integer(d.get("silence_timeout_s", DEFAULT_SILENCE_TIMEOUT_S),
                                    f"{where}.silence_timeout_s", 1, 7200),
    )


def _swapoff_under_load(c: Checker, d: dict[str, Any], where: str) -> bool:
    on = c.boolean(d.get("swapoff_under_load", False), f"{where}.swapoff_under_load")
    if on and d.get("swap_devices", 1) != 2:
        c.fail(f"{where}.swapoff_under_load", "needs swap_devices: 2 (the second disk goes off and on)")
    return on


def _hotplug(c: Checker, d: dict[str, Any], where: str) -> bool:
    hotplug = c.boolean(d.get("hotplug", False), f"{where}.hotplug")
    if hotplug and d.get("cpus", 1) < 2:
        c.fail(f"{where}.hotplug", "needs cpus: 2 or more (CPU 0 cannot go offline)")
    return hotplug


def _check_names(c: Checker, scenarios: list[Scenario]) -> None:
    seen: set[str] = set()
    for i, s in enumerate(scenarios):
        if s.name in seen:
            c.fail(f"scenarios[{i}].name", f"duplicate scenario name {s.name!r}")
        seen.add(s.name)


def _defaults(c: Checker, raw: Any) -> dict[str, Any]:
    """The optional top-level ``defaults`` mapping: field values every scenario inherits."""
    if raw is None:
        return {}
    return c.mapping(raw, "defaults", set(), (SCENARIO_REQUIRED | SCENARIO_OPTIONAL) - {"name"})


def _with_defaults(defaults: dict[str, Any], raw: Any) -> Any:
    return {**defaults, **raw} if isinstance(raw, dict) else raw


def load_scenarios(path: Path = DEFAULT_FILE) -> ScenarioFile:
    """Load and validate the scenario file; raise ForgeError listing every problem."""
    raw = load_yaml(path, "scenario file")
    c = Checker(path)
    top = c.mapping(raw, "(top level)", {"scenarios"}, {"defaults"})
    defaults = _defaults(c, top.get("defaults"))
    items = top.get("scenarios")
    if top and (not isinstance(items, list) or not items):
        c.fail("scenarios", "expected a non-empty list of scenarios")
        items = []
    scenarios = [s for i, r in enumerate(items or [])
                 if (s := _scenario(c, _with_defaults(defaults, r), f"scenarios[{i}]"))]
    _check_names(c, scenarios)
    if c.problems:
        raise ForgeError("invalid scenario file:\n  " + "\n  ".join(c.problems))
    return ScenarioFile(path=path, scenarios=tuple(scenarios))


def get(name: str, path: Path = DEFAULT_FILE) -> Scenario:
    """The scenario called name from path; ForgeError listing the known names if absent."""
    return load_scenarios(path).get(name)
