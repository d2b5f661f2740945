"""`--runner lava`: scenarios submitted as LAVA jobs to a LAVA server, polled, their logs pulled
back and judged by the same verdict code as a local run.

The server is named by its URL and an API token (LAVA's REST API v0.2: POST /api/v0.2/jobs/,
GET /api/v0.2/jobs/?id__in=..., GET /api/v0.2/jobs/ID/logs/?start=N, POST .../cancel/). The lab's
worker downloads the job's images over HTTP: the kernel and the initramfs are copied into a
directory the user names, which the user serves at a base URL (both given as options), and the
swap disks are made there (sparse, empty), and so is the ext4 disk of a scenario with a file-system
job (fs_mib; made with mke2fs, empty, sparse); nothing else is uploaded. Every job of a batch
downloads the same files. The lab needs a device of type qemu (LAVA's own device-type template)
on a worker with qemu-system-x86_64.

run_batch submits every run of a batch up front (the bench matrix: one job per backend, scenario,
disk and repetition) and then polls them all in one loop, handing each run back as its job
finishes; run_on_server is a batch of one. While a job runs its new log lines are pulled every
few seconds: the guest's console lines drive the same silence watchdog as a local run
(qemu.Watchdog: a job whose console is silent for the scenario's limit is cancelled and judged a
hang), and the wall clock from the job's start is the backstop. A queued job waits for a device
as long as the lab runs some job of the batch; when none of them has run for QUEUE_MARGIN_S, the
queued ones are cancelled (a lab without a free qemu device).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcache_forge.errors import ForgeError
from zcache_forge.guest import qemu
from zcache_forge.guest.scenarios import Scenario
from zcache_forge.lava import job as jobmod
from zcache_forge.lava import run

log = logging.getLogger(__name__)

POLL_S = 3.0
HTTP_TIMEOUT_S = 30
QUEUE_MARGIN_S = 600  # queued jobs are cancelled when the lab has run none of the batch's jobs this long
POLL_ERRORS = 5  # polling fails this many times in a row: the batch ends (its jobs are cancelled)
STATES_PER_CALL = 50  # job ids per GET jobs/?id__in= (LAVA's page size)


@dataclass(frozen=True)
class LabConfig:
    url: str  # the server's base URL, e.g. http://lava.example.org/
    token: str  # an API token of a user allowed to submit
    artifacts_dir: Path  # where the job's images are copied ...
    artifacts_url: str  # ... and the URL the lab's workers download them from


class LavaServer:
    """The few REST calls a run needs; every failure names the URL and what the server said."""

    def __init__(self, url: str, token: str) -> None:
        self.base = url.rstrip("/") + "/api/v0.2/"
        self.token = token

    def _call(self, path: str, data: dict | None = None, missing_ok: bool = False) -> bytes:
        url = urllib.parse.urljoin(self.base, path)
        req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     headers={"Authorization": f"Token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                return b""
            said = exc.read().decode(errors="replace").strip()[:500]
            raise ForgeError(f"LAVA server {url}: HTTP {exc.code}: {said}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ForgeError(f"LAVA server {url}: {getattr(exc, 'reason', exc)}") from None

    def submit(self, definition: str) -> int:
        answer = json.loads(self._call("jobs/", {"definition": definition}))
        ids = answer.get("job_ids") or []
        if not ids:
            raise ForgeError(f"LAVA server {self.base}: no job id in its answer: {answer}")
        return int(ids[0])

    def job(self, job_id: int) -> dict[str, Any]:
        return json.loads(self._call(f"jobs/{job_id}/"))

    def states(self, job_ids: list[int]) -> dict[int, str]:
        """The jobs' states ("Submitted", "Running", "Finished", ...), a call per STATES_PER_CALL jobs."""
        out: dict[int, str] = {}
        for k in range(0, len(job_ids), STATES_PER_CALL):
            chunk = job_ids[k:k + STATES_PER_CALL]
            query = urllib.parse.urlencode({"id__in": ",".join(map(str, chunk)), "limit": len(chunk)})
            answer = json.loads(self._call(f"jobs/?{query}"))
            out.update({int(j["id"]): str(j.get("state")) for j in answer.get("results", [])})
        for job_id in job_ids:  # one the list left out (not visible to the token's user?): ask for it
            if job_id not in out:
                out[job_id] = str(self.job(job_id).get("state"))
        return out

    def logs(self, job_id: int, start: int = 0) -> str:
        """The job's log from line `start` on (lines as lava-run prints them, each after "- "); empty
        until the job has one."""
        return self._call(f"jobs/{job_id}/logs/?start={start}", missing_ok=True).decode(errors="replace")

    def cancel(self, job_id: int) -> None:
        self._call(f"jobs/{job_id}/cancel/", {})


def publish(files: list[Path], lab: LabConfig, prefix: str) -> list[str]:
    """Copy the job's images into the served directory; their URLs, in order."""
    dest = lab.artifacts_dir / prefix
    dest.mkdir(parents=True, exist_ok=True)
    urls = []
    for f in files:
        shutil.copyfile(f, dest / f.name)
        urls.append(f"{lab.artifacts_url.rstrip('/')}/{prefix}/{f.name}")
    return urls


def log_lines(text: str) -> list[str]:
    """The server's log (a YAML list, one record a line) as lava-run's lines."""
    return [line[2:] if line.startswith("- ") else line for line in text.splitlines() if line.strip()]


QUEUED = ("Submitted", "Scheduling", "Scheduled")  # a job without a device yet: it has no log


@dataclass(frozen=True)
class Request:
    """One guest run of a batch: the scenario, its run directory (lava-job.yaml, lava.log and
    console.log land there), the accelerator and the swap-disk model."""

    scenario: Scenario
    workdir: Path
    accel: str = "tcg"
    disk: str = qemu.DEFAULT_DISK


@dataclass
class Job:
    """A submitted job, as the polling loop sees it."""

    request: Request
    id: int
    url: str  # its page on the server
    submitted: float
    lines: list[str] = field(default_factory=list)  # its log so far, as lava-run's lines
    state: str = ""
    dog: qemu.Watchdog | None = None  # from the job's start on the lab's device

    @property
    def label(self) -> str:
        return f"{self.id} ({self.url})"


# what run_batch hands back for each request: the finished run, or why there is none
Outcome = qemu.GuestRun | ForgeError
OnDone = Callable[[int, Request, "Job | None", Outcome], None]


class Images:
    """The batch's images in the served directory, under one prefix: the kernel and the initramfs
    copied once, a sparse swap disk per (device, size) and an empty ext4 image per size (for the
    file-system job, made with mke2fs as a local run makes it) the batch's scenarios need."""

    def __init__(self, kernel: Path, initrd: Path, lab: LabConfig, prefix: str) -> None:
        self.lab, self.prefix = lab, prefix
        self.dir = lab.artifacts_dir / prefix
        self.kernel, self.initrd = publish([kernel, initrd], lab, prefix)

    def url(self, name: str) -> str:
        return f"{self.lab.artifacts_url.rstrip('/')}/{self.prefix}/{name}"

    def artifacts(self, scenario: Scenario) -> jobmod.Artifacts:
        swaps = []
        for i in range(scenario.swap_devices):
            name = f"swap{i or ''}-{scenario.swap_mib}m.img"
            if not (self.dir / name).exists():
                qemu.make_swap_image(self.dir / name, scenario.swap_mib)
            swaps.append(self.url(name))
        fs = None
        if scenario.fs_mib:  # the worker downloads a copy: every job of the batch starts from this empty ext4
            name = f"fs-{scenario.fs_disk_mib}m.img"
            if not (self.dir / name).exists():
                qemu.make_fs_image(self.dir / name, scenario.fs_disk_mib)
            fs = self.url(name)
        return jobmod.Artifacts(self.kernel, self.initrd, tuple(swaps), fs)


def _submit(server: LavaServer, lab: LabConfig, images: Images, req: Request) -> Job:
    req.workdir.mkdir(parents=True, exist_ok=True)
    definition = jobmod.definition(req.scenario, images.artifacts(req.scenario), req.accel,
                                   qemu.disk_model(req.disk))
    text = jobmod.dump(definition)
    (req.workdir / "lava-job.yaml").write_text(text)
    job_id = server.submit(text)
    url = lab.url.rstrip("/") + f"/scheduler/job/{job_id}"
    log.info("%s: LAVA job %d submitted (%s)", req.scenario.name, job_id, url)
    return Job(req, job_id, url, time.monotonic())


def _wall_limit(sc: Scenario) -> float:
    return sc.wall_limit_s + 60 * jobmod.DEPLOY_MINUTES


def _poll(server: LavaServer, job: Job, state: str, now: float) -> qemu.Ending | None:
    """One look at a job: its state and new log lines. None while it runs within its limits; the
    Ending once it finished, or once the watchdog stopped it (the job is cancelled then)."""
    sc = job.request.scenario
    if state != job.state:
        log.info("%s: LAVA job %d %s", sc.name, job.id, state)
        job.state = state
    if state in QUEUED:
        return None
    if job.dog is None:  # its limits count from its start on a device
        job.dog = qemu.Watchdog(_wall_limit(sc), sc.silence_timeout_s, now)
    new = log_lines(server.logs(job.id, len(job.lines)))
    job.lines += new
    if state == "Finished":
        return job.dog.exited(now)
    # silence counts only while the guest runs
    end = job.dog.tick(any('"lvl": "target"' in x for x in new) or state != "Running", now)
    if end is not None:
        log.warning("%s: %s, cancelling LAVA job %d", sc.name, end.words, job.id)
        server.cancel(job.id)
    return end


def _collect(server: LavaServer, job: Job, end: qemu.Ending) -> qemu.GuestRun:
    """The job's whole log into its run directory, judged as lava-run's is."""
    job.lines += log_lines(server.logs(job.id, len(job.lines)))
    req = job.request
    lava_log = req.workdir / "lava.log"
    lava_log.write_text("".join(x + "\n" for x in job.lines))
    started = job.dog.start if job.dog is not None else job.submitted
    return run.guest_run(req.scenario, req.workdir, lava_log, job.label, end, req.accel, [job.url],
                         time.monotonic() - started)


def run_batch(kernel: Path, initrd: Path, requests: list[Request], lab: LabConfig,
              on_done: OnDone | None = None, poll_s: float | None = None) -> list[Outcome]:
    """Submit every request as a LAVA job, then poll them all, handing each back (on_done, in the
    order they finish, and the returned list, in the requests' order) as its job finishes: a
    GuestRun, or a ForgeError naming the job when it could not be submitted or its log not pulled
    back (the other jobs go on). Interrupted, it cancels the jobs still pending."""
    poll_s = POLL_S if poll_s is None else poll_s
    server = LavaServer(lab.url, lab.token)
    results: list[Outcome | None] = [None] * len(requests)

    def done(i: int, job: Job | None, what: Outcome) -> None:
        results[i] = what
        if on_done is not None:
            on_done(i, requests[i], job, what)

    images = Images(kernel, initrd, lab, f"{requests[0].scenario.name if len(requests) == 1 else 'batch'}-"
                                         f"{int(time.time() * 1000)}")
    pending: dict[int, tuple[int, Job]] = {}
    try:
        for i, req in enumerate(requests):
            try:
                job = _submit(server, lab, images, req)
            except ForgeError as exc:
                log.error("%s: not submitted: %s", req.scenario.name, exc)
                done(i, None, ForgeError(f"{req.scenario.name}: not submitted: {exc}"))
                continue
            pending[job.id] = (i, job)
        if len(requests) > 1:
            log.info("%d LAVA jobs submitted, %d not; polling every %.0f s", len(pending),
                     len(requests) - len(pending), poll_s)
        last_active, errors = time.monotonic(), 0
        while pending:
            try:
                states = server.states(list(pending))
                errors = 0
            except ForgeError as exc:  # a server that stumbles once does not end the batch
                errors += 1
                if errors >= POLL_ERRORS:
                    raise
                log.warning("polling the LAVA jobs (%d/%d): %s", errors, POLL_ERRORS, exc)
                time.sleep(poll_s)
                continue
            now = time.monotonic()
            if any(states.get(job_id, "") not in QUEUED for job_id in pending):
                last_active = now
            for job_id, (i, job) in list(pending.items()):
                state = states.get(job_id, "Submitted")
                try:
                    if state in QUEUED and now - last_active >= QUEUE_MARGIN_S:
                        end = qemu.Ending("timeout", f"timeout: queued {QUEUE_MARGIN_S} s while the lab ran "
                                          "no job of this batch (no free qemu device?)", now - job.submitted,
                                          0.0)
                        log.warning("%s: %s, cancelling LAVA job %d", job.request.scenario.name, end.words,
                                    job_id)
                        server.cancel(job_id)
                    else:
                        end = _poll(server, job, state, now)
                        if end is None:
                            continue
                    del pending[job_id]
                    done(i, job, _collect(server, job, end))
                except ForgeError as exc:
                    pending.pop(job_id, None)
                    log.error("%s: LAVA job %s: %s", job.request.scenario.name, job.label, exc)
                    done(i, job, ForgeError(f"LAVA job {job.label}: {exc}"))
            if pending:
                time.sleep(poll_s)
    except BaseException:
        for _, job in pending.values():
            try:
                server.cancel(job.id)
                log.warning("%s: LAVA job %d cancelled", job.request.scenario.name, job.id)
            except ForgeError as exc:
                log.warning("%s: could not cancel LAVA job %d: %s", job.request.scenario.name, job.id, exc)
        raise
    return [r for r in results if r is not None]


def run_on_server(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str,
                  lab: LabConfig, disk: str = qemu.DEFAULT_DISK) -> qemu.GuestRun:
    """One scenario as one LAVA job (a batch of one)."""
    (outcome,) = run_batch(kernel, initrd, [Request(scenario, workdir, accel, disk)], lab)
    if isinstance(outcome, ForgeError):
        raise outcome
    return outcome
