"""Boot the guest kernel in QEMU with a scenario's job and wait for it to finish.

The guest's serial console goes to a file; the guest ends the run by writing
its status to the isa-debug-exit device, which makes QEMU exit with
(status << 1) | 1.

A guest that hangs is told by its console going silent: the watchdog kills QEMU when the
console has said nothing for the scenario's silence_timeout_s (a slow guest that keeps
printing progress is not a hung one). A wall-clock limit stays as a generous backstop for a
guest that keeps printing but never ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcache_forge.errors import ForgeError
from zcache_forge.guest.scenarios import Scenario

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
MIB = 1024 * 1024
# panic=-1: reboot at once on a panic, which -no-reboot turns into QEMU exiting;
# oops=panic: an oops ends the run at once instead of leaving a half-dead guest.
BASE_APPEND = ("console=ttyS0", "panic=-1", "oops=panic")
DEBUG_EXIT = "isa-debug-exit,iobase=0xf4,iosize=0x04"
PROGRESS_EVERY_S = 10.0
POLL_S = 0.5
PROBE_TIMEOUT_S = 20
# The probe's console-silence limit (the guest runs' hang watchdog, with the probe's own limit):
# a KVM guest prints its first kernel line within a second or two, so a console that says
# nothing for this long is a KVM that does not run the guest; PROBE_TIMEOUT_S is the backstop.
PROBE_SILENCE_TIMEOUT_S = 10
PROBE_MEMORY_MIB = 128
ACCELS = ("tcg", "kvm")
ACCEL_ENV = "ZCF_ACCEL"  # forces the accelerator where none is given (checked by options.check)


@dataclass(frozen=True)
class DiskModel:
    """What the guest's swap disks stand for: QEMU throttles the virtio drive to that device's speed."""

    name: str
    stands_for: str
    throttling: tuple[tuple[str, int], ...] = ()  # QEMU -drive throttling.<option>=<value>

    def drive_options(self) -> str:
        """The -drive options that throttle the drive ("" for none)."""
        return "".join(f",throttling.{opt}={value}" for opt, value in self.throttling)


# The one table of disk models. Without throttling the swap disk is a host file served from the
# host's page cache, faster than any real device: plain swap then looks best and the I/O that
# compression saves never shows in the time. (QEMU's block throttling: `-drive ...,throttling.*`.)
DISK_MODELS = (
    DiskModel("host", "the host file through the host's page cache, unthrottled"),
    DiskModel("ssd", "a SATA SSD at queue depth 1: 450 MiB/s, 10,000 IOPS",
              (("bps-total", 450 * MIB), ("iops-total", 10_000))),
    DiskModel("hdd", "a 7,200 rpm disk: 150 MiB/s, 150 IOPS",
              (("bps-total", 150 * MIB), ("iops-total", 150))),
)
DEFAULT_DISK = "host"


def disk_model(name: str) -> DiskModel:
    """The disk model called name; ForgeError naming the known ones otherwise."""
    for m in DISK_MODELS:
        if m.name == name:
            return m
    raise ForgeError(f"unknown disk model {name!r} (known: {', '.join(m.name for m in DISK_MODELS)})")

_accel_verdict: str | None = None  # probe_accel's answer, once per process
_live: set[subprocess.Popen[bytes]] = set()  # QEMU processes running now (several with --jobs)
_live_lock = threading.Lock()


def stop_all() -> None:
    """Kill every QEMU this process started and that still runs (an aborted parallel run)."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        _stop(proc)


@dataclass
class GuestRun:
    """How one QEMU run ended."""

    name: str
    console_log: Path
    # "exit" (isa-debug-exit), "reset" (guest rebooted/powered off), "hang" (killed: console
    # silent), "timeout" (killed: wall-clock limit), "qemu-error"
    exit_kind: str
    guest_status: int | None  # the status /init passed to isa-debug-exit
    qemu_exit_code: int | None  # None if QEMU was killed (hang or timeout)
    seconds: float
    accel: str
    argv: list[str] = field(default_factory=list)
    qemu_stderr: str = ""
    # what ended the run: "guest" (QEMU exited by itself), or the watchdog's words:
    # "hang: console silent for 120 s" / "timeout: wall-clock limit 900 s"
    ended_by: str = "guest"
    last_console: str = ""  # the console's last non-empty line when the run ended
    max_silence_s: float = 0.0  # the console's longest silence during the run
    peer: PeerRun | None = None  # a two-guest run (guest/pair.py): how its peer B ran


@dataclass
class PeerRun:
    """How the peer B of a two-guest run ran, beside the guest under test A (guest/pair.py)."""

    port: int  # the socket netdev's 127.0.0.1 port
    run: GuestRun | None = None  # B's QEMU run (None: it never started)
    ready_s: float | None = None  # B printed its peer-ready record this long after its QEMU started
    kill_after_s: int | None = None  # the scenario's: kill B this long after A is loaded
    loaded_at_s: float | None = None  # A's console showed it is loaded, this long after A's QEMU started
    killed_at_s: float | None = None  # the host SIGKILLed B's QEMU this long after A's QEMU started
    hang_after_s: int | None = None  # the scenario's: stop B this long after A is loaded,
    hang_for_s: int | None = None    # and let it go on this long after
    hung_at_s: float | None = None     # the host SIGSTOPped B's QEMU this long after A's QEMU started
    resumed_at_s: float | None = None  # and SIGCONTed it this long after A's QEMU started
    # why the host stopped B when it was not the scenario's kill ("" if it exited by itself)
    stopped: str = ""
    error: str = ""  # B could not serve (never ready): A did not run


@dataclass(frozen=True)
class _Boot:
    """Everything one QEMU invocation needs."""

    name: str
    kernel: Path
    initrd: Path
    memory_mib: int
    cpus: int
    append: list[str]
    swap_imgs: tuple[Path, ...]  # virtio disks /dev/vda, /dev/vdb, ...
    workdir: Path
    accel: str
    timeout_s: float  # the wall-clock backstop
    disk: DiskModel = DISK_MODELS[0]  # the speed of every swap disk (default: host, unthrottled)
    silence_timeout_s: float | None = None  # kill QEMU when the console is silent this long
    data_imgs: tuple[Path, ...] = ()  # more virtio disks after the swap disks, never throttled (the fs disk)
    net: tuple[str, ...] = ()  # QEMU's network options (a two-guest run's socket netdev); none by default


def _qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise ForgeError(f"{QEMU} not found: apt-get install qemu-system-x86")
    return path


def qemu_argv(b: _Boot, console: Path) -> list[str]:
    """The QEMU command line for one boot."""
    argv = [_qemu_binary(), "-machine", "q35", "-accel", b.accel]
    if b.accel == "kvm":
        argv += ["-cpu", "host"]
    argv += [
        "-m", str(b.memory_mib), "-smp", str(b.cpus),
        "-nodefaults", "-nographic", "-no-reboot",
        "-serial", f"file:{console}", "-monitor", "none",
        "-device", DEBUG_EXIT,
        "-kernel", str(b.kernel), "-initrd", str(b.initrd),
        "-append", " ".join(b.append),
    ]
    for img in b.swap_imgs:
        argv += ["-drive", f"file={img},if=virtio,format=raw,cache=unsafe{b.disk.drive_options()}"]
    for img in b.data_imgs:
        argv += ["-drive", f"file={img},if=virtio,format=raw,cache=unsafe"]
    return argv + list(b.net)


def make_swap_image(path: Path, size_mib: int) -> Path:
    """A sparse raw disk of size_mib MiB (recreated, so every run starts clean)."""
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
    return path


@contextmanager
def swap_images(scenario: Scenario, workdir: Path) -> Iterator[tuple[Path, ...]]:
    """The scenario's swap disks, fresh sparse files in workdir (swap.img, swap1.img, ... for
    /dev/vda, /dev/vdb, ...), removed when the context ends."""
    made: list[Path] = []
    try:
        for i in range(scenario.swap_devices):
            made.append(make_swap_image(workdir / f"swap{i or ''}.img", scenario.swap_mib))
        yield tuple(made)
    finally:
        for img in made:
            img.unlink(missing_ok=True)


def _mke2fs() -> str:
    """mke2fs's path; it is in /sbin, which a user's PATH may lack."""
    for path in (shutil.which("mke2fs"), "/usr/sbin/mke2fs", "/sbin/mke2fs"):
        if path and os.access(path, os.X_OK):
            return path
    raise ForgeError("mke2fs not found: apt-get install e2fsprogs")


def make_fs_image(path: Path, size_mib: int) -> Path:
    """A sparse raw disk of size_mib MiB holding an empty ext4 (made on the host, no mount needed).

    The inode tables and the journal are initialised here, not lazily by the guest, so the
    guest's disk counters show the workload's I/O only."""
    make_swap_image(path, size_mib)
    argv = [_mke2fs(), "-t", "ext4", "-F", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0",
            "-L", "zcf-fs", str(path)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ForgeError(f"mke2fs on {path} failed (status {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return path


@contextmanager
def fs_image(scenario: Scenario, workdir: Path) -> Iterator[Path | None]:
    """The scenario's file-system disk (workdir/fs.img, a fresh ext4 of fs_disk_mib MiB), removed
    when the context ends; None for a scenario without a file-system job."""
    if not scenario.fs_mib:
        yield None
        return
    img = workdir / "fs.img"
    try:
        yield make_fs_image(img, scenario.fs_disk_mib)
    finally:
        img.unlink(missing_ok=True)


def last_line(path: Path, max_bytes: int = 4096) -> str:
    """The last non-empty line of a (growing) text file, or ''."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - max_bytes))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").split("\n") if ln.strip()]
    return lines[-1] if lines else ""


def decode_exit(code: int | None, timed_out: bool, console_empty: bool,
                hung: bool = False) -> tuple[str, int | None]:
    """(exit kind, guest status) from QEMU's exit code.

    isa-debug-exit makes QEMU exit with (status << 1) | 1, so odd codes come
    from the guest. QEMU itself exits 1 when it cannot start; that is told
    apart from "guest status 0" by the guest never having written anything.
    hung/timed_out: the watchdog killed QEMU (console silent / wall-clock limit).
    """
    if hung:
        return "hang", None
    if timed_out:
        return "timeout", None
    if code == 0:
        return "reset", None
    if code is not None and code > 0 and code % 2 == 1 and not (code == 1 and console_empty):
        return "exit", code >> 1
    return "qemu-error", None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the QEMU we started and reap it."""
    proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.warning("QEMU (pid %d) did not die after SIGKILL", proc.pid)


@dataclass(frozen=True)
class Ending:
    """How the watchdog saw a process end: by itself (kind "exit"), or killed by it."""

    kind: str  # "exit", "hang" (output silent too long) or "timeout" (wall-clock limit)
    words: str  # "exited", "hang: console silent for 120 s", "timeout: wall-clock limit 900 s"
    seconds: float
    silent_s: float  # how long the output had been silent at the end
    max_silent_s: float = 0.0  # the longest silence of the run (to tune silence limits by)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Watchdog:
    """The hang and backstop limits over anything that shows progress. Fed once per poll with
    whether its output grew, it says when to stop it: after silence_limit_s without growth (a hang:
    silence counts from the start, so a guest that never prints is one too; None: no limit), or
    after wall_limit_s in all (the backstop for one that prints forever). One per QEMU or lava-run
    process (watch), one per LAVA job on a server (lava/server.py watches a batch in one loop)."""

    def __init__(self, wall_limit_s: float, silence_limit_s: float | None, now: float | None = None) -> None:
        self.wall_limit_s = wall_limit_s
        self.silence_limit_s = silence_limit_s
        self.start = time.monotonic() if now is None else now
        self.last_growth = self.start
        self.longest = 0.0

    def tick(self, grew: bool, now: float | None = None) -> Ending | None:
        """One poll: None while within the limits, else the Ending ("hang" or "timeout") to stop it with."""
        now = time.monotonic() if now is None else now
        if grew:
            self.last_growth = now
        silent = now - self.last_growth
        self.longest = max(self.longest, silent)
        if self.silence_limit_s is not None and silent >= self.silence_limit_s:
            words = f"hang: console silent for {self.silence_limit_s:.0f} s"
            return Ending("hang", words, now - self.start, silent, self.longest)
        if now - self.start >= self.wall_limit_s:
            words = f"timeout: wall-clock limit {self.wall_limit_s:.0f} s"
            return Ending("timeout", words, now - self.start, silent, self.longest)
        return None

    def exited(self, now: float | None = None) -> Ending:
        """It ended by itself."""
        now = time.monotonic() if now is None else now
        silent = now - self.last_growth
        return Ending("exit", "exited", now - self.start, silent, max(self.longest, silent))


def watch(proc: subprocess.Popen[Any], output: Path, wall_limit_s: float, silence_limit_s: float | None,
          name: str = "guest", poll_s: float = POLL_S, progress_every_s: float = PROGRESS_EVERY_S,
          stop: Callable[[subprocess.Popen[Any]], None] = _stop,
          describe: Callable[[Path], str] | None = None) -> Ending:
    """Wait for proc to exit, killing it when the Watchdog over `output` (a file it appends to)
    says so: output silent for silence_limit_s, or wall_limit_s in all."""
    dog = Watchdog(wall_limit_s, silence_limit_s)
    last_size = _size(output)
    next_report = dog.start + progress_every_s
    while proc.poll() is None:
        size = _size(output)
        end = dog.tick(size != last_size)
        last_size = size
        if end is not None:
            log.warning("%s: %s, killing it (last line: %r)", name, end.words, last_line(output)[:120])
            stop(proc)
            return dataclasses.replace(end, seconds=time.monotonic() - dog.start)
        now = time.monotonic()
        if now >= next_report:
            log.info("%s: %4.0f s  %s", name, now - dog.start, (describe or last_line)(output)[:120])
            next_report += progress_every_s
        time.sleep(poll_s)
    return dog.exited()


def _boot(b: _Boot, started: Callable[[subprocess.Popen[bytes]], None] | None = None) -> GuestRun:
    """Run one QEMU to its end under the watchdog. started(proc) is called once QEMU runs (a
    two-guest run kills its peer through it)."""
    b.workdir.mkdir(parents=True, exist_ok=True)
    console = b.workdir / "console.log"
    console.unlink(missing_ok=True)
    stderr_path = b.workdir / "qemu.stderr"
    argv = qemu_argv(b, console)
    log.debug("qemu: %s", " ".join(argv))
    start = time.monotonic()
    with stderr_path.open("wb") as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        except OSError as exc:
            raise ForgeError(f"cannot start {QEMU}: {exc}") from exc
        with _live_lock:
            _live.add(proc)
        try:
            if started is not None:
                started(proc)
            end = watch(proc, console, b.timeout_s, b.silence_timeout_s, b.name)
        except BaseException:
            _stop(proc)
            raise
        finally:
            with _live_lock:
                _live.discard(proc)
    seconds = time.monotonic() - start
    killed = end.kind != "exit"
    code = None if killed else proc.returncode
    empty = not console.exists() or console.stat().st_size == 0
    kind, status = decode_exit(code, end.kind == "timeout", empty, hung=end.kind == "hang")
    stderr_text = stderr_path.read_text(errors="replace").strip()
    log.info("%s: QEMU %s (code %s, guest status %s) after %.1f s; longest console silence %.1f s",
             b.name, kind, code, status, seconds, end.max_silent_s)
    if kind == "qemu-error" and stderr_text:
        log.warning("%s: QEMU said: %s", b.name, stderr_text.splitlines()[-1])
    return GuestRun(name=b.name, console_log=console, exit_kind=kind, guest_status=status,
                    qemu_exit_code=code, seconds=seconds, accel=b.accel, argv=argv,
                    qemu_stderr=stderr_text[-2000:], ended_by=end.words if killed else "guest",
                    last_console=last_line(console), max_silence_s=round(end.max_silent_s, 1))


def _check_boot_files(kernel: Path, initrd: Path) -> None:
    if not kernel.is_file():
        raise ForgeError(f"kernel image {kernel} not found: build the guest kernel first")
    if not initrd.is_file():
        raise ForgeError(f"initramfs {initrd} not found: build it with initramfs.build_initramfs()")


def kvm_usable() -> bool:
    """Whether /dev/kvm exists and this process may open it read-write."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _forced_accel() -> str | None:
    """The accelerator ZCF_ACCEL forces (the tasks check its value with their options)."""
    return os.environ.get(ACCEL_ENV, "").strip() or None


def _kvm_boots(kernel: Path, initrd: Path, workdir: Path) -> bool:
    """Boot the guest under KVM with a trivial job; True if it reported back in time."""
    b = _Boot(name="kvm-probe", kernel=kernel, initrd=initrd, memory_mib=PROBE_MEMORY_MIB, cpus=1,
              append=[*BASE_APPEND, "zcf.name=kvm-probe", "zcf.probe=1"], swap_imgs=(),
              workdir=workdir / "kvm-probe", accel="kvm", timeout_s=PROBE_TIMEOUT_S,
              silence_timeout_s=PROBE_SILENCE_TIMEOUT_S)
    r = _boot(b)
    if r.exit_kind == "exit" and r.guest_status == 0:
        return True
    log.info("KVM probe: guest %s (%s) after %.0f s; last console line: %r", r.exit_kind, r.ended_by,
             r.seconds, last_line(r.console_log))
    return False


def probe_accel(kernel: Path, initrd: Path, workdir: Path) -> str:
    """"kvm" if a KVM guest boots and reports back, else "tcg"; $ZCF_ACCEL forces one.

    The answer is cached for the rest of the process.
    """
    global _accel_verdict
    forced = _forced_accel()
    if forced:
        return forced
    if _accel_verdict is None:
        if not kvm_usable():
            log.info("accelerator: tcg (/dev/kvm missing or not accessible)")
            _accel_verdict = "tcg"
        else:
            log.info("accelerator: probing KVM (up to %d s, %d s of console silence)", PROBE_TIMEOUT_S,
                     PROBE_SILENCE_TIMEOUT_S)
            _accel_verdict = "kvm" if _kvm_boots(kernel, initrd, workdir) else "tcg"
            log.info("accelerator: %s", _accel_verdict)
    return _accel_verdict


def run_guest(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path,
              accel: str | None = None, disk: str = DEFAULT_DISK) -> GuestRun:
    """Boot kernel+initrd with the scenario's job; the console log lands in workdir.

    A scenario with a peer is a two-guest run (guest/pair.py): its peer B boots first, its console in
    workdir/peer/. disk: the DISK_MODELS entry every swap disk is throttled to."""
    model = disk_model(disk)
    _check_boot_files(kernel, initrd)
    workdir.mkdir(parents=True, exist_ok=True)
    if accel is None:
        accel = probe_accel(kernel, initrd, workdir)
    elif accel not in ACCELS:
        raise ForgeError(f"accelerator {accel!r}: expected one of {', '.join(ACCELS)}")
    with swap_images(scenario, workdir) as swap_imgs, fs_image(scenario, workdir) as fs_img:
        data_imgs = (fs_img,) if fs_img is not None else ()
        b = guest_boot(kernel, initrd, scenario, workdir, accel, model, swap_imgs, data_imgs)
        log.info("%s: booting (%s, %d MiB RAM of which %d MiB balloon, %d CPU, %d MiB swap on %s disk, %s"
                 "hang after %d s of console silence, wall-clock limit %d s)", scenario.name, accel,
                 b.memory_mib, scenario.balloon_mib, b.cpus, scenario.swap_mib, model.name,
                 f"{scenario.fs_disk_mib} MiB ext4 on /dev/{scenario.fs_disk}, " if data_imgs else "",
                 scenario.silence_timeout_s, scenario.wall_limit_s)
        if scenario.peer is not None:
            from zcache_forge.guest import pair

            return pair.run_pair(b, scenario)
        return _boot(b)


def guest_boot(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str,
               model: DiskModel = DISK_MODELS[0], swap_imgs: tuple[Path, ...] = (),
               data_imgs: tuple[Path, ...] = ()) -> _Boot:
    """The QEMU boot of the scenario's guest (without the network a two-guest run adds)."""
    return _Boot(name=scenario.name, kernel=kernel, initrd=initrd, memory_mib=scenario.guest_ram_mib,
                 cpus=scenario.cpus, append=[*BASE_APPEND, *scenario.kernel_args()], swap_imgs=swap_imgs,
                 workdir=workdir, accel=accel, timeout_s=scenario.wall_limit_s, disk=model,
                 silence_timeout_s=scenario.silence_timeout_s, data_imgs=data_imgs)
