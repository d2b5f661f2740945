"""--distcc on the real kernel: the guest kernel's compiles that ccache misses go to a distccd on
127.0.0.1 that this test starts, and the kernel built that way passes the smoke scenario.

A temporary series adds one line of code (a new string, which survives preprocessing, so ccache
really misses) to zcache-main.c: that compile must show up in distccd's own log. Marked `kernel`;
it rebuilds the shared guest build directory, as the broken-kernel test does."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid

import pytest
import yaml

from zcache_forge import cli

from .conftest import ROOT

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("distccd") is None,
                                 reason="needs distccd: apt-get install distcc")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def distccd(tmp_path):
    port = free_port()
    log = tmp_path / "distccd.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(["distccd", "--no-detach", "--daemon", "--listen", "127.0.0.1", "--allow",
                                 "127.0.0.1", "--port", str(port), "--jobs", "2", "--log-stderr",
                                 "--log-level", "info"], stdin=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"distccd did not listen on 127.0.0.1:{port}: {log.read_text()[-500:]}")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}/2", log
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_kernel_built_through_distcc_passes_smoke(tmp_path, distccd, capsys):
    hosts, log = distccd
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "templates", proj / "templates")
    data = yaml.safe_load((ROOT / "series.yaml").read_text())
    promote = data["series"][1]
    promote["name"] = "zcache-distcc"
    tag = uuid.uuid4().hex
    promote["patches"].append({
        "subject": "mm: zcache: a line of code no ccache has seen",
        "message": "messages/promote-docs.j2",
        "ops": [{"op": "insert", "path": "mm/zcache/zcache-main.c",
                 "after": "\tzcache_stat_inc(ZCACHE_STAT_PERS_PUTS);",
                 "text": f'\tpr_debug("zcache: distcc build {tag}\\n");'}],
    })
    (proj / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    rc = cli.qemu_test(proj / "series.yaml", proj / "patches", ["smoke"], "zcache-distcc", None, False,
                       tmp_path / "results", distcc_hosts=hosts)
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    result = json.loads((tmp_path / "results" / "qemu-test-zcache-distcc-v1.json").read_text())
    assert result["passed"] and result["scenarios"][0]["summary"]["corrupted"] == 0
    said = log.read_text(errors="replace")
    assert "COMPILE_OK" in said and "zcache-main.c" in said, said[-2000:]
