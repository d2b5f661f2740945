"""The bench as a batch of LAVA jobs, without a lab: server.run_batch's submitting, polling and
gathering, and bench's recording of what comes back, over LavaServer's four REST calls answered
from a real lava-run log (tests/data/lava-smoke.lava.log: a smoke boot, served line by line as a
server serves a running job's log). The jobs, the served images and the verdicts are real; only
the lab's answers are replayed. tests/test_lava_server_kernel.py runs a batch on a real
lava-server."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from zcache_forge import bench
from zcache_forge.errors import ForgeError
from zcache_forge.guest import initramfs, qemutest
from zcache_forge.lava import server

from .conftest import ROOT
from .test_lava import lava_line

RECORDED = (ROOT / "tests" / "data" / "lava-smoke.lava.log").read_text().splitlines()
FAILED = [*RECORDED[:60], lava_line("error", "Kernel panic - not syncing: Attempted to kill init!"),
          lava_line("results", {"definition": "lava", "case": "job", "result": "fail",
                                "error_msg": "lava-test-shell timed out"})]


class ReplayLab:
    """LavaServer's calls answered from scripted jobs: job n waits `queued` polls, then runs for
    `running` polls, its log (the recorded lines, or `log`) served a slice per poll; then Finished.
    A job given no lines stays silent; `refuse` makes its submission fail as a server's would."""

    def __init__(self, scripts: list[dict]) -> None:
        self.scripts = scripts
        self.jobs: dict[int, dict] = {}
        self.calls: list[tuple[str, object]] = []

    def __call__(self, url: str, token: str) -> ReplayLab:  # stands for the LavaServer class
        return self

    def submit(self, definition: str) -> int:
        script = {"queued": 0, "running": 3, "log": RECORDED, **self.scripts[len(self.jobs)]}
        job_id = 100 + len(self.jobs)
        self.jobs[job_id] = {**script, "definition": yaml.safe_load(definition), "polls": 0, "served": 0,
                             "state": "Submitted"}
        self.calls.append(("submit", job_id))
        if script.get("refuse"):
            raise ForgeError("LAVA server http://lab/api/v0.2/jobs/: HTTP 400: Invalid job definition")
        return job_id

    def states(self, job_ids: list[int]) -> dict[int, str]:
        self.calls.append(("states", tuple(job_ids)))
        out = {}
        for job_id in job_ids:
            j = self.jobs[job_id]
            if j["state"] not in ("Finished", "Canceling"):
                j["polls"] += 1
                ran = j["polls"] - j["queued"]
                if ran > 0:
                    j["state"] = "Running" if ran <= j["running"] else "Finished"
                    j["served"] = len(j["log"]) * min(ran, j["running"]) // j["running"]
            elif j["state"] == "Canceling":
                j["state"] = "Finished"
            out[job_id] = j["state"]
        return out

    def logs(self, job_id: int, start: int = 0) -> str:
        j = self.jobs[job_id]
        return "".join(f"- {line}\n" for line in j["log"][start:j["served"]])

    def cancel(self, job_id: int) -> None:
        self.calls.append(("cancel", job_id))
        self.jobs[job_id]["state"] = "Canceling"


@pytest.fixture
def lab(tmp_path, monkeypatch, cache):
    monkeypatch.setattr(server, "POLL_S", 0.01)
    for name in ("bzImage", "initramfs.cpio.gz"):
        (tmp_path / name).write_bytes(name.encode())
    monkeypatch.setattr(initramfs, "build_initramfs", lambda out: tmp_path / "initramfs.cpio.gz")
    return server.LabConfig("http://lab/", "t0ken", tmp_path / "served", "http://files.lab/zcf/")


def replay(monkeypatch, scripts: list[dict]) -> ReplayLab:
    fake = ReplayLab(scripts)
    monkeypatch.setattr(server, "LavaServer", fake)
    return fake


def smoke(**changes):
    return dataclasses.replace(qemutest.choose(["smoke"])[0], **changes)


def test_a_bench_batch_is_submitted_at_once_and_gathered_as_jobs_finish(tmp_path, lab, monkeypatch, caplog):
    """2 disks x 2 repetitions of zcache on smoke: 4 jobs submitted before the first poll; the last
    submitted finishes first, and the second fails in LAVA (a panic); every finished job is judged
    and recorded at once, in the matrix's order, with a progress line naming its job."""
    fake = replay(monkeypatch, [{"running": 8}, {"running": 6, "log": FAILED}, {"running": 4},
                                {"running": 2}])
    saved: list[list[tuple[str, int]]] = []
    path = tmp_path / "results" / "bench.json"

    def save(res: bench.BenchResult) -> None:
        bench.write_json(path, res.to_dict({}))
        data = json.loads(path.read_text())
        saved.append([(c["disk"], len(c["runs"])) for c in data["cells"]])

    zcache = [b for b in bench.BACKENDS if b.name == "zcache"]
    image = SimpleNamespace(image=tmp_path / "bzImage")
    with caplog.at_level(logging.INFO, logger="zcache_forge"):
        res = bench.run_bench(image, [smoke()], zcache, 2, tmp_path / "work", None, 20, ["ssd", "host"],
                              on_run=save, runner="lava", lab=lab)
    kinds = [c[0] for c in fake.calls]
    assert kinds[:4] == ["submit"] * 4 and "submit" not in kinds[4:]  # all up front
    assert fake.calls[4] == ("states", (100, 101, 102, 103))  # one call for every job's state
    # gathered as they finished (103, 102, 101, 100), recorded at once, the cells in the matrix's order
    assert saved == [[("ssd", 0), ("host", 1)], [("ssd", 0), ("host", 2)], [("ssd", 1), ("host", 2)],
                     [("ssd", 2), ("host", 2)]]
    assert res.complete and res.runs_done == res.runs_planned == 4 and res.accelerator == "tcg"
    ssd, host = res.cells
    assert (ssd.disk, host.disk) == ("ssd", "host") and [r.rep for r in host.runs] == [0, 1]
    assert host.passed and all(r.figures and r.result.counters["pressure"]["zcache.pers_puts"] > 0
                               for r in host.runs)
    # the job that failed in LAVA is a failed run naming its job id, its URL and its log; the rest passed
    bad = res.cells[0].runs[1]
    assert not bad.passed and bad.result.exit_kind == "lava-error"
    why = bad.result.reasons
    lava_log = tmp_path / "work" / "smoke-zcache-ssd-1" / "lava.log"
    assert any(f"LAVA job 101 (http://lab/scheduler/job/101) failed before the guest finished: "
               f"lava-test-shell timed out (log: {lava_log})" in r for r in why), why
    assert "Kernel panic" in lava_log.read_text()
    assert all(r.passed for c in res.cells for r in c.runs if r is not bad)
    # a progress line per finished job: n/total, the cell, the job id, the verdict
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    assert progress[0].startswith("[1/4] zcache on smoke (host disk), rep 2: LAVA job 103: ok, ")
    assert progress[2].startswith("[3/4] zcache on smoke (ssd disk), rep 2: LAVA job 101: FAILED: ")
    # the jobs: real definitions, the images published once and shared, throttling per disk model
    jobs = [json.loads(json.dumps(j["definition"])) for j in fake.jobs.values()]
    images = [j["actions"][0]["deploy"]["images"] for j in jobs]
    assert len({i["kernel"]["url"] for i in images}) == 1 and len({i["vda"]["url"] for i in images}) == 1
    served = lab.artifacts_dir / images[0]["kernel"]["url"].split("/")[-2]
    swap = f"swap-{smoke().swap_mib}m.img"
    assert sorted(p.name for p in served.iterdir()) == ["bzImage", "initramfs.cpio.gz", swap]
    assert (served / swap).stat().st_blocks == 0  # sparse
    assert images[0]["kernel"]["url"].startswith("http://files.lab/zcf/batch-")
    assert "throttling.bps-total" in images[0]["vda"]["image_arg"]
    assert "throttling" not in images[2]["vda"]["image_arg"]
    assert (tmp_path / "work" / "smoke-zcache-host-1" / "lava-job.yaml").is_file()
    assert "\nZCF-DONE status=0\n" in (tmp_path / "work" / "smoke-zcache-host-1" / "console.log").read_text()


def test_a_job_not_submitted_is_its_cells_error_and_the_rest_runs(tmp_path, lab, monkeypatch):
    fake = replay(monkeypatch, [{"refuse": True}, {}])
    both = [b for b in bench.BACKENDS if b.name in ("zcache", "zswap-zbud")]
    res = bench.run_bench(SimpleNamespace(image=tmp_path / "bzImage"), [smoke()], both, 1, tmp_path / "work",
                          "tcg", 20, ["host"], runner="lava", lab=lab)
    bad, good = res.cells
    assert bad.error == ("smoke: not submitted: LAVA server http://lab/api/v0.2/jobs/: HTTP 400: "
                         "Invalid job definition") and not bad.runs
    assert good.runs and good.runs[0].result.exit_kind == "exit" and res.runs_done == 2
    assert ("cancel", 100) not in fake.calls


def test_a_silent_job_is_cancelled_as_a_hang(tmp_path, lab, monkeypatch):
    fake = replay(monkeypatch, [{"running": 10**6, "log": RECORDED[:5]}])
    run = server.run_on_server(tmp_path / "bzImage", tmp_path / "initramfs.cpio.gz",
                               smoke(silence_timeout_s=0.3), tmp_path / "w", "tcg", lab)
    assert ("cancel", 100) in fake.calls
    assert (run.exit_kind, run.ended_by) == ("hang", "hang: console silent for 0 s")
    assert run.argv == ["http://lab/scheduler/job/100"] and run.max_silence_s >= 0.3


def test_jobs_the_lab_never_starts_are_cancelled(tmp_path, lab, monkeypatch):
    monkeypatch.setattr(server, "QUEUE_MARGIN_S", 0.2)
    fake = replay(monkeypatch, [{"queued": 10**6}])
    run = server.run_on_server(tmp_path / "bzImage", tmp_path / "initramfs.cpio.gz", smoke(), tmp_path / "w",
                               "tcg", lab)
    assert ("cancel", 100) in fake.calls and run.exit_kind == "timeout"
    assert "while the lab ran no job of this batch" in run.ended_by


def test_an_interrupted_batch_cancels_its_jobs(tmp_path, lab, monkeypatch):
    fake = replay(monkeypatch, [{"running": 10**6}, {"queued": 10**6}])
    polls = iter(range(3))
    real_states = fake.states

    def states(ids):
        if next(polls, None) is None:
            raise KeyboardInterrupt
        return real_states(ids)

    monkeypatch.setattr(fake, "states", states)
    reqs = [server.Request(smoke(), tmp_path / f"w{i}") for i in range(2)]
    with pytest.raises(KeyboardInterrupt):
        server.run_batch(tmp_path / "bzImage", tmp_path / "initramfs.cpio.gz", reqs, lab)
    assert {("cancel", 100), ("cancel", 101)} <= set(fake.calls)


def test_lava_run_benches_one_run_at_a_time(tmp_path, monkeypatch, cache):
    """--runner lava-run: the matrix goes cell by cell through lava-run (one local dispatcher)."""
    from zcache_forge.lava import run

    calls = []

    def fake(kernel, initrd, job, workdir, accel="tcg", disk="host"):
        calls.append((job.backend, disk))
        raise ForgeError("lava-run not here")

    monkeypatch.setattr(run, "run_lava", fake)
    monkeypatch.setattr(initramfs, "build_initramfs", lambda out: tmp_path / "initramfs.cpio.gz")
    res = bench.run_bench(SimpleNamespace(image=tmp_path / "bzImage"), [smoke()], list(bench.BACKENDS[:2]), 2,
                          tmp_path / "work", "tcg", 20, ["ssd"], runner="lava-run")
    assert calls == [("zcache", "ssd"), ("zswap", "ssd")]  # a cell that cannot run skips its other rep
    assert [c.error for c in res.cells] == ["ForgeError: lava-run not here"] * 2


def test_cli_bench_takes_the_lab_options(tmp_path, cache, monkeypatch, capsys):
    from zcache_forge import cli

    got = {}

    def fake_bench(image, chosen, backends, reps, workdir, accel, pool, disks, on_run=None, runner="local",
                   lab=None):
        got.update(runner=runner, lab=lab)
        raise ForgeError("stop here")

    image = SimpleNamespace(image=tmp_path / "bzImage")
    monkeypatch.setattr(qemutest, "build_kernel", lambda series_file, out: image)
    monkeypatch.setattr(bench, "run_bench", fake_bench)
    monkeypatch.setenv("ZCF_LAVA_TOKEN", "from-env")
    rc = cli.bench(ROOT / "series.yaml", tmp_path / "patches", ["smoke"], ["zcache"], 1, None, False,
                   tmp_path / "results", False, runner="lava",
                   lava={"url": "http://lab/", "artifacts": str(tmp_path / "srv"),
                         "artifacts_url": "http://files/"})
    assert rc == 1 and got["runner"] == "lava"
    assert got["lab"] == server.LabConfig("http://lab/", "from-env", Path(tmp_path / "srv"), "http://files/")
    rc = cli.bench(ROOT / "series.yaml", tmp_path / "patches", ["smoke"], ["zcache"], 1, None, False,
                   tmp_path / "results", False, runner="lava-run", lava={"url": "http://lab/"})
    assert rc == 1
    err = capsys.readouterr().err
    assert "--lava-url, --lava-artifacts and --lava-artifacts-url go with --runner lava" in err
