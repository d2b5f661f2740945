"""--runner lava against a real LAVA server on 127.0.0.1: the test starts PostgreSQL, lava-server,
the scheduler and a worker with two qemu devices (tests/lavalab.py), serves the images over HTTP,
submits the basic scenario through qemu-test and gets its verdict back, then a small bench matrix
as one batch of jobs. Marked `kernel`."""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from zcache_forge import cli

from . import lavalab
from .conftest import ROOT

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(lavalab.missing() is not None,
                                                      reason=lavalab.missing() or "")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with lavalab.lab(tmp_path_factory.mktemp("lab"), devices=2) as lab:
        yield lab


def options(lab: lavalab.Lab) -> dict[str, str]:
    return {"url": lab.url, "token": lab.token, "artifacts": str(lab.artifacts),
            "artifacts_url": lab.artifacts_url}


def test_basic_through_a_lava_server_gives_its_verdict(lab, tmp_path, capsys):
    rc = cli.qemu_test(ROOT / "series.yaml", tmp_path / "patches", ["basic"], None, None, False,
                       tmp_path / "results", runner="lava", lava=options(lab))
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


BENCH = ["zcache", "zswap-zbud"]


def test_a_bench_batch_on_a_lava_server(lab, tmp_path, capsys):
    """Two cells (zcache and zswap on smoke, one run each) submitted as one batch: both jobs are
    queued before either ends, run side by side on the lab's two devices, and come back as the
    bench.json a local bench writes."""
    results = tmp_path / "results"
    rc = cli.bench(ROOT / "series.yaml", tmp_path / "patches", ["smoke"], BENCH, 1, None, False, results,
                   False, 20, ["host"], runner="lava", lava=options(lab))
    out = capsys.readouterr()
    print(out.out, out.err)
    data = json.loads((results / "bench.json").read_text())
    assert data["environment"]["runner"] == "lava" and data["environment"]["accelerator"] == "tcg"
    assert data["complete"] and data["runs_done"] == data["runs_planned"] == 2
    assert [(c["backend"], c["disk"]) for c in data["cells"]] == [(b, "host") for b in BENCH]
    for cell in data["cells"]:
        (run,) = cell["runs"]
        assert cell["passed"], (cell["backend"], cell["error"], run["reasons"])
        assert run["metrics"]["corrupted"] == 0 and run["metrics"]["pswpout"] > 0
    assert rc == 0, out.err[-3000:]
    assert "| zcache |" in (results / "bench.md").read_text()
    # the lab's own record: both jobs were submitted before the first one ended
    req = urllib.request.Request(lab.url + "api/v0.2/jobs/?ordering=-id&limit=2",
                                 headers={"Authorization": f"Token {lab.token}"})
    jobs = json.loads(urllib.request.urlopen(req, timeout=30).read())["results"]
    assert [j["health"] for j in jobs] == ["Complete", "Complete"]
    when = {k: [datetime.fromisoformat(j[k].replace("Z", "+00:00")) for j in jobs]
            for k in ("submit_time", "start_time", "end_time")}
    assert max(when["submit_time"]) < min(when["end_time"])
    print("bench batch on the lab:", {k: [t.isoformat() for t in v] for k, v in when.items()})
