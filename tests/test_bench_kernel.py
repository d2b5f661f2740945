"""A reduced bench for CI: one repetition of a small scenario on every backend, same kernel image."""

from __future__ import annotations

import json

import pytest

from zcache_forge import cli

from .conftest import ROOT

pytestmark = pytest.mark.kernel


def test_reduced_bench_reports_every_backend(tmp_path, capsys):
    results = tmp_path / "results"
    rc = cli.bench(ROOT / "series.yaml", tmp_path / "patches", ["bench-small"], None, 1, None, False,
                   results, False)
    out = capsys.readouterr().out
    print(out)
    assert rc == 0
    data = json.loads((results / "bench.json").read_text())
    env = data["environment"]
    assert env["accelerator"] in ("tcg", "kvm") and env["compressor"] == "lzo"
    assert env["config_hash"] and env["kernel_commit"] and env["series_version"] == 1
    cells = {c["backend"]: c for c in data["cells"]}
    assert set(cells) == {"zcache", "zswap-zbud", "zswap-zsmalloc", "plain-swap"}
    for name, cell in cells.items():
        assert cell["passed"], (name, [r["reasons"] for r in cell["runs"]])
        (run,) = cell["runs"]
        assert run["metrics"]["corrupted"] == 0
        for key in ("pswpout", "throughput_mbps", "elapsed_s"):
            assert set(cell["figures"][key]) == {"median", "min", "max"}
    # every page was checked in every pass, on every backend
    for cell in data["cells"]:
        assert cell["figures"]["corrupted"]["max"] == 0
    assert cells["zcache"]["figures"]["density"]["median"] > 1.0
    assert cells["zswap-zbud"]["figures"]["density"]["median"] > 1.0
    plain, zc = cells["plain-swap"]["figures"], cells["zcache"]["figures"]
    assert plain["pswpout"]["median"] > zc["pswpout"]["median"]
    assert cells["zcache"]["comparisons"]["pswpout_reduction_pct"] > 0
    assert cells["zswap-zbud"]["comparisons"]["throughput_ratio"] == pytest.approx(1.0)
    md = (results / "bench.md").read_text()
    for name in cells:
        assert f"| {name} |" in md
    assert (results / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
