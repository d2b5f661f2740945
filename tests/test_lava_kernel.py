"""--runner lava-run on the real kernel: basic and mixed as LAVA jobs run by this machine's
lava-dispatcher, judged by the same verdict code, give the verdict a local run gives; and a job
whose guest panics at once fails fast, named by its LAVA job id and its log.

Marked `kernel`; the guests run two at a time (verdicts, not figures)."""

from __future__ import annotations

import dataclasses
import shutil
import time

import pytest
import yaml

from zcache_forge import report
from zcache_forge.guest import qemutest

from .conftest import ROOT

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("lava-run") is None,
                                 reason="needs lava-run: apt-get install lava-dispatcher")]

SCENARIOS = ["basic", "mixed"]
# the panic: an initramfs's /init is run as rdinit=, so rdinit= names one that is not there; the
# kernel then looks for a root file system, finds none (no root=) and panics, and panic=-1 (the base
# command line) with -no-reboot makes QEMU exit. init= too, in case a root were ever found.
PANIC_ARGS = "rdinit=/nonexistent init=/nonexistent"
PANIC_LIMIT_S = 90  # validate, deploy, a boot to the panic and LAVA's end: 3-8 s here


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return qemutest.build_kernel(ROOT / "series.yaml", tmp_path_factory.mktemp("lava-kernel") / "patches")


def test_lava_run_gives_the_local_verdict(image, tmp_path):
    chosen = qemutest.choose(SCENARIOS)
    res = {runner: qemutest.run_scenarios(image, chosen, tmp_path / runner, jobs=2, runner=runner)
           for runner in ("local", "lava-run")}
    for runner, r in res.items():
        print(runner)
        print(report.render_table(r.results))
    local, lava = ({x.name: x for x in res[k].results} for k in ("local", "lava-run"))
    for name in SCENARIOS:
        a, b = local[name], lava[name]
        assert a.passed and b.passed, (name, a.reasons, b.reasons)
        assert (b.exit_kind, b.guest_status, b.ended_by) == ("exit", 0, "guest")
        # every page verified, in the same workloads and phases
        def shape(r):
            keys = ("id", "phase", "pages", "pages_checked", "pages_corrupted")
            return [tuple(w[k] for k in keys) for w in r.workloads]

        assert shape(a) == shape(b)
        assert all(w["pages_corrupted"] == 0 for w in b.workloads)
        # zcache's counters, in every phase the local run has them
        assert set(b.counters) == set(a.counters)
        pressure = b.counters["pressure"]
        assert pressure["zcache.pers_puts"] > 0 and pressure["zcache.pers_gets"] > 0
        assert b.counters["after-swapoff"]["zcache.pers_zpages"] == 0
    job = (tmp_path / "lava-run" / "basic" / "lava-job.yaml").read_text()
    assert "zcache-forge basic" in job and "ZCF-DONE" in job


def test_lava_run_rereads_files_as_a_local_run(image, tmp_path):
    """fs-reread (its ext4 disk deployed by the job and attached after the swap disk): the local
    verdict through lava-run, pass 2 served partly by zcache (eph gets > 0), the disk's sectors
    read. 19 s local, 25 s through lava-run here, one after the other."""
    chosen = qemutest.choose(["fs-reread"])
    res = {runner: qemutest.run_scenarios(image, chosen, tmp_path / runner, accel="tcg", runner=runner)
           for runner in ("local", "lava-run")}
    (a,), (b,) = res["local"].results, res["lava-run"].results
    for runner, r in res.items():
        print(runner)
        print(report.render_table(r.results))
    assert a.passed and b.passed, (a.reasons, b.reasons)
    assert (b.exit_kind, b.guest_status, b.ended_by) == ("exit", 0, "guest")
    assert [(f["phase"], f["pages"], f["pages_checked"]) for f in a.fs] == \
        [(f["phase"], f["pages"], f["pages_checked"]) for f in b.fs]
    for r in (a, b):
        s = r.summary
        assert s["fs_corrupted"] == 0 and s["fs_stale"] == 0 and s["fs_file_errors"] == 0
        assert s["eph_gets_pass2"] > 0
        assert s["fs_pass1_sectors_read"] > 0 and s["fs_pass2_sectors_read"] > 0
    job = yaml.safe_load((tmp_path / "lava-run" / "fs-reread" / "lava-job.yaml").read_text())
    images = job["actions"][0]["deploy"]["images"]
    assert list(images) == ["kernel", "initrd", "vda", "vdb"]
    assert "zcf.fs=vdb:" in images["kernel"]["image_arg"]


def test_a_guest_that_panics_fails_as_a_named_lava_job(image, tmp_path):
    """Must-show 2: a real lava-run job whose kernel panics at boot. The verdict fails, names the
    LAVA job id and its log, and the run ends as soon as the guest does (not at a timeout)."""
    smoke = qemutest.choose(["smoke"])[0]
    sc = dataclasses.replace(smoke, name="smoke-panic",
                             cmdline_extra=f"{smoke.cmdline_extra} {PANIC_ARGS}".strip())
    t0 = time.monotonic()
    res = qemutest.run_scenarios(image, [sc], tmp_path, accel="tcg", runner="lava-run")
    took = time.monotonic() - t0
    (r,) = res.results
    print(report.render_table(res.results), *r.reasons, f"{took:.0f} s", sep="\n")
    assert not r.passed and r.exit_kind == "lava-error"
    lava_log = tmp_path / sc.name / "lava.log"
    named = [x for x in r.reasons if x.startswith(f"LAVA job zcf-{sc.name}-")]
    assert named and named[0].endswith(f"(log: {lava_log})"), r.reasons
    job_id = named[0].split()[2]
    assert job_id in lava_log.read_text()  # LAVA's own records name it (its work directory)
    assert "Kernel panic" in (tmp_path / sc.name / "console.log").read_text()
    assert took < PANIC_LIMIT_S, took
    assert r.seconds < sc.silence_timeout_s, r.seconds  # ended by the panic, before any watchdog could
    assert any(x.startswith("kernel panic at console line") for x in r.reasons), r.reasons
