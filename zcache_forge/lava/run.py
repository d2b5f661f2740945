"""`--runner lava-run`: a scenario run as a LAVA job by this machine's lava-dispatcher, as a lab's
worker runs it, and handed back as the same GuestRun a local QEMU run gives, so that one verdict
code judges both.

The job is validated first (`lava-run --validate`); a job LAVA refuses is an error naming the job
file. lava-run prints one log record per console line, so the local runner's watchdog watches its
log: a guest whose console goes silent is a hang, and the wall clock is the backstop. The
console is rebuilt from the log (logs.py) into the run directory's console.log.

How the run ended, for the verdict: the console's ``ZCF-DONE status=N`` gives the guest's status
(exit_kind "exit"), as isa-debug-exit does locally; a job that ended without it is
"lava-error", and the verdict names the LAVA job id, LAVA's errors and the log.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from zcache_forge.errors import ForgeError
from zcache_forge.guest import qemu
from zcache_forge.guest.scenarios import Scenario
from zcache_forge.lava import job as jobmod
from zcache_forge.lava.logs import LavaLog, parse_log

log = logging.getLogger(__name__)

LAVA_RUN = "lava-run"
LAVA_TMP = Path("/var/lib/lava/dispatcher/tmp")  # lava-run's work directory per job id
DONE = re.compile(r"^ZCF-DONE status=(\d+)\s*$")
VALIDATE_TIMEOUT_S = 120
_ids = itertools.count(1)


def lava_run_binary() -> str:
    path = shutil.which(LAVA_RUN)
    if path is None:
        raise ForgeError(f"{LAVA_RUN} not found: apt-get install lava-dispatcher (setup.sh installs it)")
    return path


def new_job_id(name: str) -> str:
    return f"zcf-{name}-{os.getpid()}-{next(_ids)}"


def _argv(job_id: str, out: Path, device: Path, job_file: Path, validate: bool = False) -> list[str]:
    return [lava_run_binary(), "--job-id", job_id, "--output-dir", str(out), "--device", str(device),
            *(["--validate"] if validate else []), str(job_file)]


def validate(job_id: str, workdir: Path, device: Path, job_file: Path) -> None:
    """lava-run --validate; a refused job is an error naming the job file and LAVA's words."""
    proc = subprocess.run(_argv(job_id + "-validate", workdir / "lava-validate", device, job_file, True),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=VALIDATE_TIMEOUT_S)
    parsed = parse_log(proc.stdout)  # lava-run logs to stderr
    if proc.returncode != 0 or parsed.job_result != "pass":
        why = parsed.reasons() or proc.stdout.strip().splitlines()[-3:] or ["no reason given"]
        raise ForgeError(f"{job_file}: LAVA refused the job (lava-run --validate exit {proc.returncode}): "
                         + "; ".join(why))


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """Kill lava-run and the QEMU it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.warning("lava-run (pid %d) did not die after SIGKILL", proc.pid)


def last_console_line(lava_log: Path) -> str:
    """The guest's last console line in lava-run's log so far (for progress), else LAVA's last record."""
    tail = qemu.last_line(lava_log, max_bytes=16384)
    parsed = parse_log(tail)
    return parsed.console[-1] if parsed.console else tail


def guest_status(console: list[str]) -> int | None:
    for line in reversed(console):
        m = DONE.match(line)
        if m:
            return int(m.group(1))
    return None


def outcome(job_id: str, parsed: LavaLog, lava_log: Path, end_kind: str,
            end_words: str) -> tuple[str, int | None, str]:
    """(exit_kind, guest_status, ended_by) of a finished or killed LAVA job."""
    if end_kind != "exit":
        return end_kind, None, end_words
    status = guest_status(parsed.console)
    if status is not None:
        if parsed.job_result != "pass":
            log.warning("LAVA job %s: the guest finished (status %d) but LAVA says %s: %s", job_id, status,
                        parsed.job_result, "; ".join(parsed.errors) or "no error given")
        return "exit", status, "guest"
    if parsed.job_result == "pass":
        what = "passed, but its console has no ZCF-DONE line"
    else:
        what = (f"{'failed' if parsed.job_result == 'fail' else 'did not finish'} before the guest finished: "
                + "; ".join(parsed.reasons() or ["no error given"]))
    return "lava-error", None, f"LAVA job {job_id} {what} (log: {lava_log})"


def guest_run(scenario: Scenario, workdir: Path, lava_log: Path, job: str, end: qemu.Ending, accel: str,
              argv: list[str], seconds: float, exit_code: int | None = None) -> qemu.GuestRun:
    """The GuestRun of a finished or stopped LAVA job (lava-run's or a server's), whose log is in
    lava_log: the console rebuilt into workdir/console.log, and how the run ended (outcome) for the
    verdict. job: how the verdict names the job (its id, and its URL for a server's)."""
    parsed = parse_log(lava_log.read_text(errors="replace"))
    console = workdir / "console.log"
    console.write_text(parsed.console_text())
    kind, status, ended = outcome(job, parsed, lava_log, end.kind, end.words)
    log.info("%s: LAVA job %s %s (guest status %s) after %.1f s", scenario.name, job,
             parsed.job_result or "killed", status, seconds)
    return qemu.GuestRun(name=scenario.name, console_log=console, exit_kind=kind, guest_status=status,
                         qemu_exit_code=exit_code, seconds=seconds, accel=accel, argv=argv,
                         qemu_stderr="\n".join(parsed.errors)[-2000:], ended_by=ended,
                         last_console=qemu.last_line(console), max_silence_s=round(end.max_silent_s, 1))


def run_lava(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str = "tcg",
             disk: str = qemu.DEFAULT_DISK) -> qemu.GuestRun:
    """Run `scenario` as a LAVA job through lava-run; the console and LAVA's files land in workdir."""
    for f, what in ((kernel, "kernel image"), (initrd, "initramfs")):
        if not f.is_file():
            raise ForgeError(f"{what} {f} not found")
    model = qemu.disk_model(disk)
    workdir.mkdir(parents=True, exist_ok=True)
    job_id = new_job_id(scenario.name)
    lava_log = workdir / "lava.log"
    with qemu.swap_images(scenario, workdir) as swaps, qemu.fs_image(scenario, workdir) as fs:
        definition = jobmod.definition(scenario, jobmod.Artifacts.files(kernel, initrd, swaps, fs), accel,
                                       model, name=f"zcache-forge {scenario.name} ({job_id})")
        job_file, device = workdir / "lava-job.yaml", workdir / "lava-device.yaml"
        job_file.write_text(jobmod.dump(definition))
        device.write_text(jobmod.device_dictionary(definition["context"]))
        validate(job_id, workdir, device, job_file)
        argv = _argv(job_id, workdir / "lava-out", device, job_file)
        log.info("%s: LAVA job %s through lava-run (%s, %d MiB RAM, %d CPU; hang after %d s of console "
                 "silence)", scenario.name, job_id, accel, scenario.guest_ram_mib, scenario.cpus,
                 scenario.silence_timeout_s)
        start = time.monotonic()
        try:
            with lava_log.open("wb") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                try:
                    end = qemu.watch(proc, lava_log, scenario.wall_limit_s + 60 * jobmod.DEPLOY_MINUTES,
                                     scenario.silence_timeout_s, scenario.name, stop=_stop_group,
                                     describe=last_console_line)
                except BaseException:
                    _stop_group(proc)
                    raise
        finally:
            shutil.rmtree(LAVA_TMP / job_id, ignore_errors=True)  # left behind when the job was killed
    return guest_run(scenario, workdir, lava_log, job_id, end, accel, argv, time.monotonic() - start,
                     proc.returncode if end.kind == "exit" else None)
