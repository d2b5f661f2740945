"""qemu-test for real: build the series' kernel, boot it under TCG, and check what a user relies on.

Marked `kernel`. Shares the build directory and ccache with the other kernel tests."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import yaml

from zcache_forge import cli, qemutest, verdict

from .conftest import ROOT

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> qemutest.KernelImage:
    return qemutest.build_kernel(ROOT / "series.yaml", tmp_path_factory.mktemp("patches"))


def run(image, name: str, tmp_path, **changes) -> verdict.ScenarioResult:
    sc = dataclasses.replace(qemutest.choose([name])[0], **changes)
    res = qemutest.run_scenarios(image, [sc], tmp_path)
    print(verdict.render_table(res.results))
    return res.results[0]


def test_basic_zcache_stores_loads_and_swapoff_empties_it(image, tmp_path):
    r = run(image, "basic", tmp_path)
    assert r.passed, r.reasons
    pressure, after = r.counters["pressure"], r.counters["after-swapoff"]
    assert pressure["zcache.pers_zpages"] > 0 and pressure["zcache.pers_pageframes"] > 0
    assert pressure["frontswap.succ_stores"] > 0 and pressure["frontswap.loads"] > 0
    # swapoff brought every page back: zcache holds nothing, and every page re-verified intact
    assert after["zcache.pers_zpages"] == 0 and after["zcache.pers_pageframes"] == 0
    assert after["zcache.obj_count"] == 0 and after["zcache.zero_filled_pages"] == 0
    runs = [w for w in r.workloads if w["phase"] == "run"]
    rechecks = [w for w in r.workloads if w["phase"] == "recheck"]
    assert runs and rechecks and all(w["pages_corrupted"] == 0 for w in r.workloads)
    assert sum(w["pages_checked"] for w in rechecks) == sum(w["pages"] for w in runs)


def test_random_data_is_refused_as_poorly_compressible(image, tmp_path):
    r = run(image, "random", tmp_path)
    assert r.passed, r.reasons
    assert r.counters["pressure"]["zcache.compress_poor"] > 0
    assert all(w["pages_corrupted"] == 0 for w in r.workloads)


def test_hanging_guest_is_a_timeout(image, tmp_path):
    sc = qemutest.choose(["basic"])[0]
    r = run(image, "basic", tmp_path, timeout_s=25, cmdline_extra=sc.cmdline_extra + " zcf.hang=1")
    assert not r.passed
    assert r.exit_kind == "timeout"
    assert any("timeout" in reason or "timed out" in reason for reason in r.reasons), r.reasons


def test_bad_boot_parameters_fall_back_and_still_verify(image, tmp_path):
    r = run(image, "bad-params", tmp_path)
    assert r.passed, r.reasons
    log = (tmp_path / "bad-params" / "console.log").read_text(errors="replace")
    assert "zcache: compressor nosuch not available, falling back to lzo" in log
    assert "zcache: poor_percent=500 out of range 1..95, using 87" in log
    assert "zcache: max_pool_percent=0 out of range 1..100, using 50" in log
    assert r.counters["pressure"]["zcache.pers_zpages"] > 0


def test_pool_limit_caps_the_page_frames(image, tmp_path):
    """zcache.max_pool_percent=3: the frames stay within 3% of the guest's RAM (plus at most one
    frame per CPU that raced past the check), the rest goes to the swap disk, and every page
    still comes back intact."""
    r = run(image, "pool-limit", tmp_path)
    assert r.passed, r.reasons
    pressure = r.counters["pressure"]
    limit = r.boot["memtotal_kib"] // 4 * 3 // 100
    assert pressure["zcache.pool_limit_hit"] > 0
    assert 0.8 * limit <= pressure["zcache.pers_pageframes_max"] <= limit + r.boot["nproc"], (limit, pressure)
    assert pressure["pswpout"] > 0  # what did not fit went to the disk


def test_broken_kernel_fails_with_the_splat_quoted(tmp_path, capsys):
    """A temporary series with one extra patch that BUGs in zcache's store path.

    Last in this file: it rebuilds the shared build directory with the broken kernel, which
    the module's `image` still points at."""
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "templates", proj / "templates")
    data = yaml.safe_load((ROOT / "series.yaml").read_text())
    promote = data["series"][1]
    promote["name"] = "zcache-broken"
    promote["patches"].append({
        "subject": "mm: zcache: break the store path on purpose",
        "message": "messages/promote-docs.j2",
        "ops": [{"op": "insert", "path": "mm/zcache/zcache-main.c",
                 "after": "\tzcache_stat_inc(ZCACHE_STAT_PERS_PUTS);",
                 "text": "\tBUG_ON(zcache_stat_read(ZCACHE_STAT_PERS_PUTS) > 2000);"}],
    })
    (proj / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    rc = cli.qemu_test(proj / "series.yaml", proj / "patches", ["basic"], "zcache-broken", None, False,
                       tmp_path / "results")
    capsys.readouterr()
    assert rc == 1
    data = yaml.safe_load((tmp_path / "results" / "qemu-test-zcache-broken-v1.json").read_text())
    sc = data["scenarios"][0]
    assert not sc["passed"]
    assert sc["exit_kind"] != "timeout"  # the panic ended the run, not the clock
    assert any("kernel BUG at mm/zcache/zcache-main.c" in s["text"] for s in sc["splats"]), sc["splats"]
    assert any("kernel BUG at mm/zcache/zcache-main.c" in reason for reason in sc["reasons"]), sc["reasons"]

