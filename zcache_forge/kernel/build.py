"""Build a kernel out of tree: config from kconfig/ fragments, ccache, all cores, progress.

One build directory per config name is shared by every build of a run (and
across runs), so switching commits rebuilds only what changed.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from zcache_forge.errors import ForgeError
from zcache_forge.kernel import cache_dir, distcc
from zcache_forge.run import Progress, run

log = logging.getLogger(__name__)

CONFIG_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
UNSET_LINE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
DIAG_RE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? (?P<kind>warning|error): (?P<msg>.*)$")

BUILD_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 2026",
    "KBUILD_BUILD_USER": "zcache-forge",
    "KBUILD_BUILD_HOST": "zcache-forge",
}


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    kind: str
    message: str


@dataclass
class Build:
    """One build: the source, the config, what was built, and how it went."""

    src: Path
    out: Path
    config: str
    targets: dict[str, str] = field(default_factory=dict)  # target -> pass/fail
    seconds: float = 0.0
    log: Path | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    distcc: str | None = None  # the distcc hosts the compiles went to (ccache in front), if any

    @property
    def ok(self) -> bool:
        return all(v == "pass" for v in self.targets.values())

    @property
    def image(self) -> Path:
        return self.out / "arch" / "x86" / "boot" / "bzImage"

    def diagnostics_in(self, prefixes: tuple[str, ...]) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.file.startswith(prefixes)]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.kind == "error"]

    def log_tail(self, lines: int) -> list[str]:
        """The end of the build log: what to quote when no compiler error explains a failure."""
        if self.log is None or not self.log.is_file():
            return []
        return self.log.read_text(errors="replace").splitlines()[-lines:]


def parse_fragment(path: Path) -> dict[str, str]:
    """CONFIG_X -> value ('n' for '# CONFIG_X is not set')."""
    want: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if m := CONFIG_LINE.match(line):
            want[m.group(1)] = m.group(2)
        elif m := UNSET_LINE.match(line):
            want[m.group(1)] = "n"
        elif line and not line.startswith("#"):
            raise ForgeError(f"{path}:{n}: not a config line: {line!r}")
    return want


def jobs() -> int:
    return os.cpu_count() or 2


def make_env() -> dict[str, str]:
    ccache_dir = Path(os.environ.get("CCACHE_DIR", cache_dir() / "ccache"))
    return {**BUILD_ENV, "CCACHE_DIR": str(ccache_dir), "CCACHE_MAXSIZE": "5G",
            "CCACHE_COMPILERCHECK": "content"}


def _make_args(src: Path, out: Path) -> list[str]:
    return ["make", "-C", str(src), f"O={out}", "ARCH=x86_64", "CC=ccache gcc", "HOSTCC=ccache gcc"]


def defined_in_tree(src: Path, name: str) -> bool:
    """Whether a Kconfig file of the tree at `src` defines the symbol `name` (CONFIG_ prefix or not)."""
    sym = name.removeprefix("CONFIG_")
    r = subprocess.run(["git", "-C", str(src), "grep", "-qE", rf"^\s*(menu)?config {re.escape(sym)}\s*$",
                        "--", "Kconfig*", "*/Kconfig*"], capture_output=True)
    return r.returncode == 0


def configure(src: Path, out: Path, fragments: list[Path], only_defined: bool = False) -> None:
    """tinyconfig + fragments (merge_config.sh) + olddefconfig; every requested value must take.
    With `only_defined` (the build after each patch of a series), an option whose symbol the tree
    does not define yet, because a later patch adds it, is left out of that check."""
    out.mkdir(parents=True, exist_ok=True)
    want: dict[str, tuple[str, Path]] = {}
    for frag in fragments:
        if not frag.is_file():
            raise ForgeError(f"config fragment {frag} not found")
        for k, v in parse_fragment(frag).items():
            want[k] = (v, frag)
    env = make_env()
    config = out / ".config"
    before = (config.read_bytes(), config.stat()) if config.exists() else None
    run([*_make_args(src, out), "tinyconfig"], env=env, what="make tinyconfig")
    run([str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(out), str(out / ".config"),
         *map(str, fragments)], cwd=out, env=env, what="merge_config.sh")
    run([*_make_args(src, out), "olddefconfig"], env=env, what="make olddefconfig")
    got = read_config(out / ".config")
    missing = [f"{k}={v} (from {frag.name}; got {got.get(k, 'n')})"
               for k, (v, frag) in want.items() if got.get(k, "n") != v
               and not (only_defined and not defined_in_tree(src, k))]
    if missing:
        raise ForgeError("these config options did not take (unknown, or their dependencies are "
                         "not met):\n  " + "\n  ".join(missing))
    if before and before[0] == config.read_bytes():
        # Same config as last time: keep its timestamp so make does not resync anything.
        os.utime(config, ns=(before[1].st_atime_ns, before[1].st_mtime_ns))


def read_config(path: Path) -> dict[str, str]:
    got: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if m := CONFIG_LINE.match(line):
            got[m.group(1)] = m.group(2)
    return got


def build(src: Path, out: Path, config: str, fragments: list[Path], targets: tuple[str, ...] = ("bzImage",),
          w1: bool = True, progress: bool = True, only_defined: bool = False) -> Build:
    """Configure (when the fragments changed the result) and build `targets`; never raises on a
    compile failure: the Build record says which target failed and why. `only_defined`: see
    configure()."""
    t0 = time.monotonic()
    configure(src, out, fragments, only_defined)
    b = Build(src=src, out=out, config=config, log=out / "build.log", distcc=distcc.hosts_from_env())
    # No CCACHE_BASEDIR: it makes gcc see relative paths, and BUG() would print
    # "../../src/mm/..." instead of "mm/..." (-fmacro-prefix-map strips the absolute srctree).
    env = {**os.environ, **make_env()}
    n = jobs()
    if b.distcc:
        env.update(distcc.make_env(b.distcc))
        n = distcc.jobs(b.distcc, n)
        log.info("%s build: ccache misses go to distcc on %s (make -j%d)", config, b.distcc, n)
    args = [*_make_args(src, out), f"-j{n}", *(["W=1"] if w1 else [])]
    with open(b.log, "w") as logf:
        for target in targets:
            ok = _make_with_progress([*args, target], env, logf, progress, f"{config}: {target}")
            b.targets[target] = "pass" if ok else "fail"
            if not ok:
                break
    b.diagnostics = parse_diagnostics(b.log.read_text(errors="replace"), src, out)
    b.seconds = time.monotonic() - t0
    return b


BUILD_STEPS = ("CC", "LD", "AR", "AS", "CC [M]", "HOSTCC")  # kbuild's quiet lines that count as a step


def _make_with_progress(argv: list[str], env: dict[str, str], logf, progress: bool, label: str) -> bool:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    assert proc.stdout is not None
    # one line rewritten on a terminal, a plain line every 10 s otherwise (logs, CI)
    shown = Progress(f"building {label}, steps") if progress else None
    for line in proc.stdout:
        logf.write(line)
        if shown and line.startswith("  ") and line[2:10].strip() in BUILD_STEPS:
            shown.step(note=" ".join(line.split())[:60])
    rc = proc.wait()
    if shown:
        shown.done(rc == 0)
    return rc == 0


def parse_diagnostics(text: str, src: Path, out: Path) -> list[Diagnostic]:
    """Compiler warnings/errors with paths made relative to the source tree."""
    diags = []
    seen = set()
    for line in text.splitlines():
        m = DIAG_RE.match(line.strip())
        if not m:
            continue
        f = _relative_to_tree(m.group("file"), src, out)
        d = Diagnostic(f, int(m.group("line")), m.group("kind"), m.group("msg"))
        if d not in seen:
            seen.add(d)
            diags.append(d)
    return diags


def _relative_to_tree(name: str, src: Path, out: Path) -> str:
    """gcc names files relative to the build dir (ccache's basedir rewrites them so)."""
    path = Path(name) if name.startswith("/") else (out / name)
    try:
        return str(path.resolve().relative_to(src.resolve()))
    except ValueError:
        return name
