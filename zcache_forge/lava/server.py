"""`--runner lava`: a scenario submitted as a LAVA job to a LAVA server, polled, its log pulled back
and judged by the same verdict code as a local run.

The server is named by its URL and an API token (LAVA's REST API v0.2: POST /api/v0.2/jobs/,
GET /api/v0.2/jobs/ID/, GET /api/v0.2/jobs/ID/logs/?start=N, POST .../cancel/). The lab's worker
downloads the job's images over HTTP: the kernel, the initramfs and the swap disks are copied
into a directory the user names, which the user serves at a base URL (both given as options);
nothing else is uploaded. The lab needs a device of type qemu (LAVA's own device-type template)
on a worker with qemu-system-x86_64.

While the job runs, the new log lines are pulled every few seconds: the guest's console lines
drive the same silence watchdog as a local run (a job whose console is silent for the
scenario's limit is cancelled and judged a hang), and the wall clock is the backstop.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zcache_forge.errors import ForgeError
from zcache_forge.guest import qemu
from zcache_forge.guest.scenarios import Scenario
from zcache_forge.lava import job as jobmod
from zcache_forge.lava.logs import parse_log
from zcache_forge.lava.run import outcome

log = logging.getLogger(__name__)

POLL_S = 3.0
HTTP_TIMEOUT_S = 30
QUEUE_MARGIN_S = 600  # a job may wait this long for a free device before the backstop counts


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


def run_on_server(kernel: Path, initrd: Path, scenario: Scenario, workdir: Path, accel: str,
                  lab: LabConfig, disk: str = qemu.DEFAULT_DISK) -> qemu.GuestRun:
    server = LavaServer(lab.url, lab.token)
    workdir.mkdir(parents=True, exist_ok=True)
    swaps = [qemu.make_swap_image(workdir / f"swap{i or ''}.img", scenario.swap_mib)
             for i in range(scenario.swap_devices)]
    prefix = f"{scenario.name}-{int(time.time() * 1000)}"
    try:
        urls = publish([kernel, initrd, *swaps], lab, prefix)
    finally:
        for img in swaps:
            img.unlink(missing_ok=True)
    art = jobmod.Artifacts(urls[0], urls[1], tuple(urls[2:]))
    definition = jobmod.definition(scenario, art, accel, qemu.disk_model(disk))
    text = jobmod.dump(definition)
    (workdir / "lava-job.yaml").write_text(text)
    job_id = server.submit(text)
    url = lab.url.rstrip("/") + f"/scheduler/job/{job_id}"
    log.info("%s: LAVA job %d submitted (%s)", scenario.name, job_id, url)
    lines: list[str] = []
    start = time.monotonic()
    last_growth, longest, last_state = start, 0.0, ""
    backstop = scenario.wall_limit_s + 60 * jobmod.DEPLOY_MINUTES + QUEUE_MARGIN_S
    end_kind, end_words = "exit", "exited"
    while True:
        info = server.job(job_id)
        state = str(info.get("state"))
        new = log_lines(server.logs(job_id, len(lines)))
        lines += new
        now = time.monotonic()
        if state != last_state:
            log.info("%s: LAVA job %d %s", scenario.name, job_id, state)
            last_state = state
        if state == "Finished":
            break
        running = state == "Running"
        if any('"lvl": "target"' in x for x in new) or not running:
            last_growth = now  # silence counts only while the guest runs
        silent = now - last_growth
        longest = max(longest, silent)
        if silent >= scenario.silence_timeout_s or now - start >= backstop:
            end_kind, end_words = (("hang", f"hang: console silent for {scenario.silence_timeout_s} s")
                                   if silent >= scenario.silence_timeout_s
                                   else ("timeout", f"timeout: wall-clock limit {backstop} s"))
            log.warning("%s: %s, cancelling LAVA job %d", scenario.name, end_words, job_id)
            server.cancel(job_id)
            break
        time.sleep(POLL_S)
    lines += log_lines(server.logs(job_id, len(lines)))
    lava_log = workdir / "lava.log"
    lava_log.write_text("".join(x + "\n" for x in lines))
    parsed = parse_log(lava_log.read_text())
    console = workdir / "console.log"
    console.write_text(parsed.console_text())
    kind, status, ended = outcome(f"{job_id} ({url})", parsed, lava_log, end_kind, end_words)
    return qemu.GuestRun(name=scenario.name, console_log=console, exit_kind=kind, guest_status=status,
                         qemu_exit_code=None, seconds=time.monotonic() - start, accel=accel,
                         argv=[url], qemu_stderr="\n".join(parsed.errors)[-2000:], ended_by=ended,
                         last_console=qemu.last_line(console), max_silence_s=round(longest, 1))
