"""Boot-test scenarios as data: load qemu/scenarios.yaml, validate it (pydantic), return typed records.

A scenario says what guest to boot (RAM, CPUs, swap disk size), which
frontswap backend to use (zcache, zswap or none) and what to run in it: memhog
workloads (swap), the file-system job (fs_mib: the page cache, cleancache), or
both at once (the mixed job: swap and page cache compete for one zcache pool).
A scenario with a ``peer:`` is a two-guest run (RAMster, guest/peer.py): the guest
under test remotifies its zcache pages to a second guest.
The whole file is checked before anything is returned; every problem names the
file and the field (``scenarios[2].workloads[0].pattern``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PlainValidator, ValidationInfo, create_model, field_validator, model_validator

from zcache_forge.errors import ForgeError
from zcache_forge.guest import peer as peer_mod
from zcache_forge.guest.peer import PeerSpec
from zcache_forge.validate import (
    Bool,
    Choice,
    Int,
    Problems,
    Str,
    Strict,
    expected,
    load_yaml,
    plain,
    validate,
)

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "qemu" / "scenarios.yaml"
BACKENDS = ("zcache", "zswap", "none")
ZPOOLS = ("zbud", "zsmalloc")
PATTERNS = ("zero", "text", "mixed", "random")
# the file-system job (fs_mib) records its counters after each step: written (and the page cache
# dropped), read pass 1, mutated (and dropped), read pass 2; "after" follows the umount
FS_PHASES = ("fs-written", "fs-pass1", "fs-mutated", "fs-pass2")
PHASES = ("before", "pressure", "after-swapoff", "after", *FS_PHASES)
# what the guest's /init runs only for the workloads' job; the fs job (alone or mixed) runs none of it
WORKLOAD_ONLY = ("hotplug", "fault_percent", "swapoff_under_load", "memcg_max_mib", "load_fail_percent")
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
    fs_mib: int = 0            # the file-system job: a file set of this size on an ext4 disk (0: none)
    fs_files: int = 8          # ... in this many files
    fs_seed: int = 1           # ... whose content is a function of this seed
    cleancache: bool = True    # False: boot with zcache.cleancache=0 (zcache keeps no clean file pages)
    expect_eph_hits: bool = False  # the fs job's second read must get pages back from zcache (eph_gets)
    peer: PeerSpec | None = None  # a two-guest run: the peer B this guest (A) remotifies pages to

    @property
    def host_cpus(self) -> int:
        """Host CPUs the run keeps busy under TCG: this guest's, and its peer's."""
        return self.cpus + (self.peer.cpus if self.peer else 0)

    @property
    def peer_killed(self) -> bool:
        """The scenario's peer is killed mid-run (lost pages are then allowed)."""
        return self.peer is not None and self.peer.killed

    @property
    def peer_hung(self) -> bool:
        """The scenario's peer is stopped mid-run and let go on (lost pages are then allowed)."""
        return self.peer is not None and self.peer.hung

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
    def fs_disk(self) -> str:
        """The guest's name of the file-system disk: the virtio disk after the swap disks."""
        return "vd" + chr(ord("a") + self.swap_devices)

    @property
    def fs_disk_mib(self) -> int:
        """The ext4 image: the file set, a quarter more for ext4's own blocks, 64 MiB of room."""
        return self.fs_mib + self.fs_mib // 4 + 64

    @property
    def workload_mib(self) -> int:
        return sum(w.size_mib for w in self.workloads)

    @property
    def mixed(self) -> bool:
        """The mixed job: the workloads and the file-system job run at the same time, so swap
        (zcache's persistent pages) and the page cache (its ephemeral pages) share one pool."""
        return bool(self.workloads) and bool(self.fs_mib)

    @property
    def final_phase(self) -> str:
        """The phase of the last counters record: after swapoff when the workloads recheck, else
        after (the fs job's after umount, too)."""
        return "after-swapoff" if self.workloads and self.swapoff_recheck else "after"

    def phases(self) -> tuple[str, ...]:
        """The counters records the guest prints for this scenario's job, in order."""
        return recorded_phases(bool(self.workloads), bool(self.fs_mib), self.swapoff_recheck)

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
        off = [] if self.cleancache else ["zcache.cleancache=0"]  # an unknown parameter is harmless
        if self.backend == "zcache":
            return off  # zcache registers itself at boot unless zcache.enabled=0
        if self.backend == "zswap":
            return ["zcache.enabled=0", "zswap.enabled=1", f"zswap.zpool={self.zpool or 'zbud'}", *off]
        return ["zcache.enabled=0", "zswap.enabled=0", *off]

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
            *([f"zcf.fs={self.fs_disk}:{self.fs_mib}:{self.fs_files}:{self.fs_seed}"] if self.fs_mib else []),
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
        """Backend selection and pool, the user's extra parameters, then the job (and, with a peer,
        A's side of RAMster: its node id and where its /init finds the peer)."""
        ramster = peer_mod.sender_args(self.peer) if self.peer else []
        return self.backend_args() + self.pool_args() + self.cmdline_extra.split() + self.job_args() + ramster

    def peer_kernel_args(self) -> list[str]:
        """The peer B's kernel parameters (ValueError without a peer)."""
        if self.peer is None:
            raise ValueError(f"scenario {self.name} has no peer")
        return peer_mod.peer_args(self.peer, self.name, self.heartbeat_s)


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


def recorded_phases(workloads: bool, fs: bool, recheck: bool) -> tuple[str, ...]:
    """The counters records of a job: the workloads' (before, pressure, after-swapoff or after), the
    fs job's (before, the fs phases, after), or the mixed job's (the fs phases while the workloads
    run, then pressure, and after swapoff or after: both after the umount)."""
    final = "after-swapoff" if workloads and recheck else "after"
    return ("before", *(FS_PHASES if fs else ()), *(("pressure",) if workloads else ()), final)


# --- the models: every field's type and range ---------------------------------------------------


def _expectation(v: Any) -> Expectation:
    m = EXPECT_RE.match(v) if isinstance(v, str) else None
    if not m:
        raise expected("'PHASE KEY OP NUMBER' like 'pressure zcache.compress_poor > 0'")
    phase, key, op, value = m.groups()
    if phase not in PHASES:
        raise expected(f"a phase of {', '.join(PHASES)} first")
    return Expectation(phase, key, op, int(value))


def _cmdline(v: Any) -> str:
    if not isinstance(v, str):
        raise expected("a string")
    if "zcf." in v:
        raise expected("kernel parameters other than zcf.* (the tool sets those)")
    return v


class _WorkloadModel(Strict):
    size_mib: Int(1, 65536)
    pattern: Choice(*PATTERNS)
    passes: Int(0, 1000)
    seed: Int(0, 2**63 - 1)
    thp: Bool = False


def _peer_memory(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise expected("an integer (MiB)")
    if v < peer_mod.MIN_MEMORY_MIB or v > 16384:
        raise plain(f"expected {peer_mod.MIN_MEMORY_MIB}..16384 MiB for the peer (its kernel, /init and a "
                    f"pool for the other guest's pages), found {v}")
    return v


def _seconds(what: str) -> Any:
    """A number of seconds > 0, or null: what the host does to the peer (`what`, its words) is off."""
    def check(v: Any) -> int | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise expected(f"a number of seconds > 0 {what}")
        return v

    return Annotated[int | None, PlainValidator(check)]


class _PeerModel(Strict):
    """B's keys; fields in this order so that a check sees the fields it depends on."""

    memory_mib: Annotated[int, PlainValidator(_peer_memory)] = 512
    pool_percent: Int(1, 100) = 50
    kill_after_s: _seconds("after the guest is loaded, or null (the peer is not killed)") = None
    cpus: Int(1, 4) = 1
    hang_after_s: _seconds("after the guest is loaded, or null (the peer does not hang)") = None
    # checked even when absent: hang_after_s alone is an error
    hang_for_s: _seconds("for which the peer stays stopped, or null (the peer does not hang)") = Field(
        None, validate_default=True)

    @field_validator("hang_after_s")
    @classmethod
    def _kill_or_hang(cls, v: int | None, info: ValidationInfo) -> int | None:
        kill = info.data.get("kill_after_s")
        if v is not None and kill is not None:
            raise plain(f"expected no hang_after_s with kill_after_s (the peer is killed or hung, not both), "
                        f"found hang_after_s: {v} and kill_after_s: {kill}")
        return v

    @field_validator("hang_for_s")
    @classmethod
    def _hang_for_with_hang_after(cls, v: int | None, info: ValidationInfo) -> int | None:
        if "hang_after_s" not in info.data:  # not valid itself: reported there
            return v
        after = info.data["hang_after_s"]
        if after is not None and v is None:
            raise plain(f"expected hang_for_s with hang_after_s (how long the peer stays stopped), found "
                        f"hang_after_s: {after} without it")
        if after is None and v is not None:
            raise plain(f"expected hang_for_s only with hang_after_s (when the peer is stopped), found "
                        f"hang_for_s: {v} without it")
        return v


def _within_timeout(v: _PeerModel, timeout: int) -> None:
    """What the host does to the peer is over within the guest's timeout_s."""
    if v.kill_after_s is not None and v.kill_after_s >= timeout:
        raise plain(f"expected kill_after_s below timeout_s ({timeout}), found {v.kill_after_s}")
    if v.hang_after_s is not None and v.hang_for_s is not None and v.hang_after_s + v.hang_for_s >= timeout:
        raise plain(f"expected hang_after_s + hang_for_s below timeout_s ({timeout}), found "
                    f"{v.hang_after_s} + {v.hang_for_s} = {v.hang_after_s + v.hang_for_s}")


# what a two-guest run cannot do: the fs job's /init paths set up no peer, and a page lost to a failed
# load could not be told from one lost with the peer
NOT_WITH_PEER = ("fs_mib", "load_fail_percent")


class _ScenarioModel(Strict):
    """One scenario; fields in this order so that a check sees the fields it depends on."""

    name: Str(NAME_RE.pattern, what="a name of lower-case letters, digits and dashes")
    description: Str(empty=True) = ""
    backend: Choice(*BACKENDS)
    zpool: Choice(*ZPOOLS) | None = None
    memory_mib: Int(64, 16384)
    cpus: Int(1, 4) = 1
    swap_mib: Int(1, 65536)
    swap_devices: Int(1, 2) = 1
    cmdline_extra: Annotated[str, PlainValidator(_cmdline)] = ""
    workloads: list[_WorkloadModel] = Field([], max_length=MAX_WORKLOADS)
    timeout_s: Int(10, 7200)
    silence_timeout_s: Int(1) = DEFAULT_SILENCE_TIMEOUT_S
    swapoff_recheck: Bool = True
    hotplug: Bool = False
    fault_percent: Int(0, 100) = 0
    swapoff_under_load: Bool = False
    memcg_max_mib: Int(0, 16384) = 0
    load_fail_percent: Int(0, 100) = 0
    fs_mib: Int(0, 65536) = Field(0, validate_default=True)  # checked against workloads even when absent
    fs_files: Int(3, 999) = 8
    fs_seed: Int(0, 2**63 - 1) = 1
    cleancache: Bool = True
    expect_eph_hits: Bool = False
    peer: _PeerModel | None = None
    expect: list[Annotated[Expectation, PlainValidator(_expectation)]] = []  # last: checked against the job

    @field_validator("fs_mib")
    @classmethod
    def _one_job(cls, v: int, info: ValidationInfo) -> int:
        workloads = info.data.get("workloads")
        if workloads is None:  # not valid itself: reported there
            return v
        if not v and not workloads:
            raise plain("expected workloads (at least one) or a file-system job (fs_mib > 0), found neither")
        if not v:
            return v
        extras = [f"{k}: {str(info.data[k]).lower()}" for k in WORKLOAD_ONLY if info.data.get(k)]
        if extras:
            raise plain(f"expected none of {', '.join(WORKLOAD_ONLY)} with fs_mib (the file-system job, "
                        f"alone or mixed, runs without them), found {', '.join(extras)}")
        memory = info.data.get("memory_mib")
        size = sum(w.size_mib for w in workloads)
        if workloads and memory is not None and size <= memory:
            raise plain(f"expected workloads beyond memory_mib with fs_mib (the mixed job: swap and the "
                        f"page cache must compete), found {size} MiB of workloads in {memory} MiB")
        return v

    @field_validator("fs_files")
    @classmethod
    def _pages_per_file(cls, v: int, info: ValidationInfo) -> int:
        fs_mib = info.data.get("fs_mib") or 0
        if fs_mib and fs_mib * 256 // v < 4:
            raise plain(f"expected at most {fs_mib * 64} files for fs_mib {fs_mib} (4 pages a file), "
                        f"found {v}")
        return v

    @field_validator("expect_eph_hits")
    @classmethod
    def _eph_hits_need_cleancache(cls, v: bool, info: ValidationInfo) -> bool:
        if not v:
            return v
        if not info.data.get("fs_mib", 1):
            raise plain("expected expect_eph_hits only with a file-system job (fs_mib > 0)")
        if info.data.get("backend", "zcache") != "zcache" or info.data.get("cleancache") is False:
            raise plain("expected expect_eph_hits only with backend: zcache and cleancache on")
        return v

    @field_validator("expect")
    @classmethod
    def _phases_of_the_job(cls, v: list[Expectation], info: ValidationInfo) -> list[Expectation]:
        d = info.data
        if "workloads" not in d or "fs_mib" not in d or "swapoff_recheck" not in d:
            return v  # not valid themselves: reported there
        phases = recorded_phases(bool(d["workloads"]), bool(d["fs_mib"]), d["swapoff_recheck"])
        job = ("the mixed job" if d["workloads"] and d["fs_mib"] else
               "the file-system job" if d["fs_mib"] else
               "the workloads' job" + (" with swapoff_recheck" if d["swapoff_recheck"] else
                                        " without swapoff_recheck"))
        for e in v:
            if e.phase not in phases:
                raise plain(f"expected a phase {job} records ({', '.join(phases)}), "
                            f"found {e.phase!r} in '{e}'")
            if e.key.startswith(peer_mod.COUNTER_PREFIX) and "peer" in d and d["peer"] is None:
                raise plain(f"expected {peer_mod.COUNTER_PREFIX}* counters only in a scenario with a peer, "
                            f"found '{e}'")
        return v

    @field_validator("peer")
    @classmethod
    def _peer_job(cls, v: _PeerModel | None, info: ValidationInfo) -> _PeerModel | None:
        if v is None:
            return v
        d = info.data
        if d.get("backend", "zcache") != "zcache":
            raise plain(f"expected no peer with backend {d['backend']} (RAMster is zcache's: backend: "
                        "zcache), found a peer")
        extras = [f"{k}: {d[k]}" for k in NOT_WITH_PEER if d.get(k)]
        if extras:
            raise plain(f"expected none of {', '.join(NOT_WITH_PEER)} with a peer (the two-guest run is the "
                        f"workloads' job; a lost page must be the peer's), found {', '.join(extras)}")
        timeout = d.get("timeout_s")
        if timeout is not None:
            _within_timeout(v, timeout)
        return v

    @field_validator("zpool")
    @classmethod
    def _zswap_only(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("backend", "zswap") != "zswap":
            raise plain(f"expected no zpool with backend {info.data['backend']} (only with backend: "
                         f"zswap), found {v!r}")
        return v

    @field_validator("hotplug")
    @classmethod
    def _two_cpus(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("cpus", 2) < 2:
            raise plain("expected cpus: 2 or more with hotplug (CPU 0 cannot go offline), found cpus: 1")
        return v

    @field_validator("swapoff_under_load")
    @classmethod
    def _two_disks(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("swap_devices", 2) != 2:
            raise plain("expected swap_devices: 2 with swapoff_under_load (the second disk goes off "
                         "and on), found swap_devices: 1")
        return v


# defaults: any scenario field but the name; checked as part of each scenario it is merged into
_Defaults = create_model("_Defaults", __base__=Strict,
                         **{n: (Any, None) for n in _ScenarioModel.model_fields if n != "name"})


class _ScenarioFileModel(Strict):
    defaults: _Defaults | None = None
    scenarios: list[_ScenarioModel] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or not isinstance(raw.get("defaults"), dict) \
                or not isinstance(raw.get("scenarios"), list):
            return raw
        d = raw["defaults"]
        return {**raw, "scenarios": [{**d, **s} if isinstance(s, dict) else s for s in raw["scenarios"]]}


def _record(m: _ScenarioModel) -> Scenario:
    return Scenario(
        name=m.name, backend=m.backend, memory_mib=m.memory_mib, cpus=m.cpus, swap_mib=m.swap_mib,
        cmdline_extra=m.cmdline_extra,
        workloads=tuple(Workload(w.size_mib, w.pattern, w.passes, w.seed, w.thp) for w in m.workloads),
        timeout_s=m.timeout_s, swapoff_recheck=m.swapoff_recheck, zpool=m.zpool, expect=tuple(m.expect),
        description=m.description, hotplug=m.hotplug, fault_percent=m.fault_percent,
        swap_devices=m.swap_devices, swapoff_under_load=m.swapoff_under_load, memcg_max_mib=m.memcg_max_mib,
        load_fail_percent=m.load_fail_percent,
        silence_timeout_s=m.silence_timeout_s,
        fs_mib=m.fs_mib, fs_files=m.fs_files, fs_seed=m.fs_seed, cleancache=m.cleancache,
        expect_eph_hits=m.expect_eph_hits,
        peer=None if m.peer is None else PeerSpec(**m.peer.model_dump()),
    )


def load_scenarios(path: Path = DEFAULT_FILE) -> ScenarioFile:
    """Load and validate the scenario file; raise ForgeError listing every problem, one a line."""
    m = validate(_ScenarioFileModel, load_yaml(path, "scenario file"), path)
    p = Problems(path)
    seen: dict[str, int] = {}
    for i, s in enumerate(m.scenarios):
        if s.name in seen:
            p.add(f"scenarios[{i}].name", f"expected a new scenario name, found {s.name!r} again "
                  f"(scenarios[{seen[s.name]}])")
        seen.setdefault(s.name, i)
    p.raise_if_any()
    return ScenarioFile(path=path, scenarios=tuple(_record(s) for s in m.scenarios))


def get(name: str, path: Path = DEFAULT_FILE) -> Scenario:
    """The scenario called name from path; ForgeError listing the known names if absent."""
    return load_scenarios(path).get(name)
