"""--runner lava-run on the real kernel: basic and mixed as LAVA jobs run by this machine's
lava-dispatcher, judged by the same verdict code, give the verdict a local run gives.

Marked `kernel`; the guests run two at a time (verdicts, not figures)."""

from __future__ import annotations

import shutil

import pytest

from zcache_forge import report
from zcache_forge.guest import qemutest

from .conftest import ROOT

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("lava-run") is None,
                                 reason="needs lava-run: apt-get install lava-dispatcher")]

SCENARIOS = ["basic", "mixed"]


def test_lava_run_gives_the_local_verdict(tmp_path):
    image = qemutest.build_kernel(ROOT / "series.yaml", tmp_path / "patches")
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
