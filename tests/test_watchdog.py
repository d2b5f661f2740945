"""The hang watchdog of qemu.watch on a real process (a small Python script, not QEMU).

A slow process that keeps printing is not a hung one: it must outlive the silence limit. One that
goes silent is killed within the silence limit (plus a poll), and the wall-clock limit still ends
one that prints forever."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from zcache_forge.guest import qemu

# prints `lines` lines, `gap` seconds apart, to the file argv[1]; then sleeps `then` s in silence
SCRIPT = textwrap.dedent("""
    import sys, time
    lines, gap, then = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    with open(sys.argv[1], "a") as out:
        for i in range(lines):
            out.write(f"progress {i}\\n")
            out.flush()
            time.sleep(gap)
        time.sleep(then)
""")


def start(tmp_path: Path, lines: int, gap: float, then: float) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / "console.log"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(lines), str(gap), str(then)])
    return proc, out


def test_a_slow_printer_outlives_the_silence_limit(tmp_path):
    # 12 lines, 0.25 s apart: 3 s of work against a 1.5 s silence limit
    proc, out = start(tmp_path, 12, 0.25, 0)
    end = qemu.watch(proc, out, wall_limit_s=30, silence_limit_s=1.5, name="slow", poll_s=0.05)
    assert end.kind == "exit" and end.words == "exited"
    assert proc.returncode == 0
    assert end.seconds > 2.5  # it ran well past the silence limit
    assert end.max_silent_s < 1.5
    assert out.read_text().count("progress") == 12


def test_a_silent_process_is_killed_within_the_silence_limit(tmp_path):
    proc, out = start(tmp_path, 2, 0.1, 60)  # two lines, then a minute of silence
    t0 = time.monotonic()
    end = qemu.watch(proc, out, wall_limit_s=30, silence_limit_s=1.5, name="silent", poll_s=0.05)
    took = time.monotonic() - t0
    assert end.kind == "hang"
    assert end.words == "hang: console silent for 2 s"  # whole seconds, as the verdict shows them
    assert 1.5 <= end.silent_s < 2.5
    assert took < 5, took
    assert proc.poll() is not None  # killed and reaped
    assert qemu.last_line(out) == "progress 1"


def test_silence_counts_from_the_start(tmp_path):
    proc, out = start(tmp_path, 0, 0, 60)  # never prints: a guest that never boots is a hang too
    end = qemu.watch(proc, out, wall_limit_s=30, silence_limit_s=1, name="mute", poll_s=0.05)
    assert end.kind == "hang" and end.seconds < 4
    assert proc.poll() is not None


def test_the_wall_clock_backstop_ends_an_endless_printer(tmp_path):
    proc, out = start(tmp_path, 1000, 0.1, 0)  # prints forever (100 s), never silent
    end = qemu.watch(proc, out, wall_limit_s=2, silence_limit_s=1, name="chatty", poll_s=0.05)
    assert end.kind == "timeout" and end.words == "timeout: wall-clock limit 2 s"
    assert 2 <= end.seconds < 5
    assert proc.poll() is not None


def test_no_silence_limit_means_the_wall_clock_only(tmp_path):
    proc, out = start(tmp_path, 1, 0, 60)
    end = qemu.watch(proc, out, wall_limit_s=1.5, silence_limit_s=None, name="probe", poll_s=0.05)
    assert end.kind == "timeout"


def test_the_kvm_probe_has_a_silence_limit_too(tmp_path, monkeypatch):
    """The probe boot gets the hang watchdog as the guest runs do; a silent guest means tcg."""
    seen: list[qemu._Boot] = []

    def silent_boot(b: qemu._Boot) -> qemu.GuestRun:
        seen.append(b)
        return qemu.GuestRun(b.name, tmp_path / "console.log", "hang", None, None, b.silence_timeout_s or 0,
                             b.accel, ended_by=f"hang: console silent for {b.silence_timeout_s:.0f} s")

    monkeypatch.setattr(qemu, "_boot", silent_boot)
    monkeypatch.setattr(qemu, "_accel_verdict", None)
    monkeypatch.setattr(qemu, "kvm_usable", lambda: True)
    monkeypatch.delenv(qemu.ACCEL_ENV, raising=False)
    assert qemu.probe_accel(tmp_path / "bzImage", tmp_path / "initrd", tmp_path) == "tcg"
    assert seen[0].silence_timeout_s == qemu.PROBE_SILENCE_TIMEOUT_S < seen[0].timeout_s


def test_the_watchdog_alone_on_a_clock_of_its_own():
    """qemu.Watchdog, as a LAVA server's jobs use it (fed growth per poll, no process): silence
    counts from the start and from the last growth; the wall clock is the backstop."""
    dog = qemu.Watchdog(wall_limit_s=100, silence_limit_s=10, now=0)
    assert dog.tick(False, now=9) is None and dog.tick(True, now=9.5) is None
    end = dog.tick(False, now=19.5)
    assert end is not None and (end.kind, end.words) == ("hang", "hang: console silent for 10 s")
    assert (end.seconds, end.silent_s, end.max_silent_s) == (19.5, 10, 10)
    chatty = qemu.Watchdog(wall_limit_s=30, silence_limit_s=None, now=0)
    assert all(chatty.tick(True, now=t) is None for t in range(30))
    assert chatty.tick(True, now=30).words == "timeout: wall-clock limit 30 s"
    done = qemu.Watchdog(wall_limit_s=30, silence_limit_s=10, now=0)
    done.tick(True, now=2)
    assert done.exited(now=7) == qemu.Ending("exit", "exited", 7, 5, 5)
