"""A LAVA lab on 127.0.0.1 for the tests: PostgreSQL, lava-server (gunicorn), the scheduler and a
worker, started by the test itself (these machines have no systemd to start them), plus an HTTP
server for the job's images. Debian's lava-server 2023.01 and postgresql (setup.sh installs both;
lava-server's install needs the database running).

Names of this run (user, worker, device) carry the process id, so a lab left over from a run
that was killed does not get in the way; what the lab made is retired and removed at the end.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEVICES = Path("/etc/lava-server/dispatcher-config/devices")
NEEDED = ("lava-server", "lava-worker", "gunicorn3", "pg_lsclusters", "pg_ctlcluster")


def missing() -> str | None:
    """Why the lab cannot start here, or None."""
    gone = [tool for tool in NEEDED if shutil.which(tool) is None]
    if gone:
        return f"needs {', '.join(gone)}: apt-get install postgresql lava-server (setup.sh does)"
    if os.geteuid() != 0:
        return "the LAVA lab runs as root (lava-server's tools, the worker's /var/lib/lava)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(*args: str) -> str:
    proc = subprocess.run(["lava-server", "manage", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"lava-server manage {' '.join(args)}: {proc.stderr.strip()[-800:]}")
    return proc.stdout


def wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                said = log.read_text(errors="replace")[-800:]
                raise RuntimeError(f"{url} did not answer: {said}") from None
            time.sleep(0.5)


@contextmanager
def postgres() -> Iterator[None]:
    """The first PostgreSQL cluster running (started here, and stopped again, when it was not)."""
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    line = listing.split("\n")[0]
    version, cluster, _port, status = line.split()[:4]
    started = status != "online"
    if started:
        subprocess.run(["pg_ctlcluster", version, cluster, "start"], check=True, timeout=120)
    try:
        yield
    finally:
        if started:
            subprocess.run(["pg_ctlcluster", version, cluster, "stop"], timeout=120)


@dataclass
class Lab:
    url: str
    token: str
    artifacts: Path
    artifacts_url: str
    logs: Path


@contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_files(directory: Path) -> Iterator[str]:
    """The directory served on 127.0.0.1 (a free port) while the context lasts; its base URL."""
    handler = functools.partial(_QuietFiles, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@contextmanager
def lab(workdir: Path, devices: int = 1) -> Iterator[Lab]:
    """The lab, with `devices` qemu devices on its one worker (jobs run side by side on them)."""
    # the scheduler and gunicorn's workers drop to the lavaserver user and reopen their logs: a
    # directory of their own that every user can reach (a test's tmp_path is root's alone)
    logs = Path(tempfile.mkdtemp(prefix="zcf-lavalab-"))
    logs.chmod(0o777)
    tag = f"zcf{os.getpid()}"
    user, worker = f"{tag}-user", f"{tag}-worker"
    names = [f"{tag}-qemu{i or ''}" for i in range(devices)]
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    artifacts = workdir / "artifacts"
    artifacts.mkdir()
    with postgres():
        manage("users", "add", user, "--superuser", "--staff", "--passwd", tag)
        token = manage("tokens", "add", "--user", user).strip().splitlines()[-1]
        worker_token = re.search(r"Token: (\S+)", manage("workers", "add", worker)).group(1)
        if "qemu" not in manage("device-types", "list"):
            manage("device-types", "add", "qemu")
        for device in names:
            manage("devices", "add", "--device-type", "qemu", "--worker", worker, device)
            (DEVICES / f"{device}.jinja2").write_text("{% extends 'qemu.jinja2' %}\n")
            manage("devices", "update", "--health", "GOOD", device)
        try:
            with _process(["gunicorn3", "lava_server.wsgi", "--bind", f"127.0.0.1:{port}", "-u", "lavaserver",
                           "-g", "lavaserver", "--worker-class", "eventlet", "--workers", "2",
                           "--log-file", str(logs / "gunicorn.log")], logs / "gunicorn.out") as server, \
                 _process(["lava-server", "manage", "lava-scheduler", "--level", "INFO",
                           "--log-file", str(logs / "scheduler.log")], logs / "scheduler.out") as scheduler, \
                 _process(["lava-worker", "--name", worker, "--url", url, "--token", worker_token,
                           "--worker-dir", str(workdir / "worker"), "--level", "INFO",
                           "--log-file", str(logs / "worker.log")], logs / "worker.out") as lava_worker, \
                 http_files(artifacts) as artifacts_url:
                wait_http(url + "api/v0.2/", server, logs / "gunicorn.log")
                time.sleep(3)
                for proc, name in ((scheduler, "scheduler"), (lava_worker, "worker")):
                    if proc.poll() is not None:
                        said = (logs / f"{name}.out").read_text(errors="replace")[-1500:]
                        raise RuntimeError(f"the LAVA {name} died at start (logs in {logs}): {said}")
                yield Lab(url, token, artifacts, artifacts_url, logs)
        finally:
            # the devices leave the scheduler's pool; the worker stays (lava-server 2023.01's
            # `workers update --health RETIRED` fails with a TypeError) and is offline once stopped.
            # A failure here is reported, not raised: it must not hide the test's own result.
            for device in names:
                (DEVICES / f"{device}.jinja2").unlink(missing_ok=True)
                try:
                    manage("devices", "update", "--health", "RETIRED", device)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"lavalab: could not retire {device}: {exc}")
