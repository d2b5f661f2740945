"""--runner lava against a real LAVA server on 127.0.0.1: the test starts PostgreSQL, lava-server,
the scheduler and a worker (tests/lavalab.py), serves the images over HTTP, submits the basic
scenario through qemu-test and gets its verdict back. Marked `kernel`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zcache_forge import cli

from . import lavalab
from .conftest import ROOT

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(lavalab.missing() is not None,
                                                      reason=lavalab.missing() or "")]


def test_basic_through_a_lava_server_gives_its_verdict(tmp_path, capsys):
    with lavalab.lab(tmp_path) as lab:
        rc = cli.qemu_test(ROOT / "series.yaml", tmp_path / "patches", ["basic"], None, None, False,
                           tmp_path / "results", runner="lava",
                           lava={"url": lab.url, "token": lab.token, "artifacts": str(lab.artifacts),
                                 "artifacts_url": lab.artifacts_url})
        out = capsys.readouterr()
        print(out.out, out.err)
        assert rc == 0, out.err[-3000:]
    data = json.loads((tmp_path / "results" / "qemu-test-zcache-promote-v1.json").read_text())
    assert data["runner"] == "lava" and data["passed"]
    (sc,) = data["scenarios"]
    assert sc["exit_kind"] == "exit" and sc["summary"]["corrupted"] == 0
    assert sc["counters"]["pressure"]["zcache.pers_puts"] > 0
    # the job went through the lab: its definition is in the run directory, its log came back
    # (the progress lines go to the tool's log handler, which capsys may not see)
    job = Path(os.environ["ZCACHE_FORGE_CACHE"]) / "runs" / "guest" / "basic" / "lava-job.yaml"
    assert "ZCF-DONE" in job.read_text()
    assert "ZCF-DONE status=0" in Path(sc["console_log"]).read_text()
