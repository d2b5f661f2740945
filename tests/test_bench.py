"""invoke bench without a kernel: disk models, figures, tables and results from synthetic console logs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from zcache_forge import bench, cli, report
from zcache_forge.errors import ForgeError
from zcache_forge.guest import initramfs, qemu, qemutest
from zcache_forge.guest.qemu import GuestRun
from zcache_forge.guest.scenarios import Scenario, Workload

from .conftest import ROOT

PAGES = 81920  # 320 MiB
SWAP = {"meminfo.SwapTotal_kib": 524284, "meminfo.SwapFree_kib": 300000}
BEFORE = {"frontswap.loads": 100, "frontswap.succ_stores": 0, "pswpin": 50, "pswpout": 0,
          "zcache.written_back_pages": 0, "zcache.pers_puts": 0, "zcache.failed_pers_puts": 0,
          "meminfo.SwapTotal_kib": 524284, "meminfo.SwapFree_kib": 524284}
PRESSURE = {
    "zcache": {"zcache.pers_puts": 90000, "zcache.failed_pers_puts": 1000, "zcache.pers_zpages": 60000,
               "zcache.zero_filled_pages": 0, "zcache.pers_pageframes": 30000,
               "zcache.pers_pageframes_max": 31000, "zcache.written_back_pages": 700,
               "zcache.pool_limit_hit": 5, "frontswap.succ_stores": 89000, "frontswap.loads": 1100,
               "pswpin": 250, "pswpout": 5000, **SWAP},
    "zswap": {"zswap.stored_pages": 50000, "zswap.pool_total_size": 25000 * 4096,
              "zswap.written_back_pages": 42, "frontswap.succ_stores": 60000, "frontswap.loads": 600,
              "pswpin": 550, "pswpout": 9000, **SWAP},
    "none": {"frontswap.succ_stores": 0, "frontswap.loads": 100, "pswpin": 3050, "pswpout": 40000, **SWAP},
}
ELAPSED = {("zcache", "ssd"): 30.0, ("zswap", "ssd"): 32.0, ("none", "ssd"): 60.0,
           ("zcache", "host"): 25.0, ("zswap", "host"): 26.0, ("none", "host"): 20.0}


def scenario(backend: str = "zcache", name: str = "bench-t") -> Scenario:
    return Scenario(name=name, backend=backend, memory_mib=256, cpus=1, swap_mib=512, cmdline_extra="",
                    workloads=(Workload(320, "text", 2, 13),), timeout_s=240, swapoff_recheck=False)


def rec(obj: dict) -> str:
    return "ZCF-RESULT " + json.dumps(obj)


def counters(phase: str, values: dict) -> str:
    return rec({"kind": "counters", "phase": phase, "uptime_s": 1.0, "values": values})


def workload(phase: str = "run", elapsed: float = 30.0, drop: tuple[str, ...] = (), **override) -> str:
    r = {"kind": "workload", "id": "w0", "phase": phase, "pattern": "text", "bytes": PAGES * 4096,
         "pages": PAGES, "passes": 2 if phase == "run" else 1,
         "pages_checked": PAGES * (2 if phase == "run" else 1), "pages_corrupted": 0, "pages_sigbus": 0,
         "elapsed_s": elapsed, "fill_mbps": 70.0, "verify_mbps": 30.0}
    r.update(override)
    return rec({k: v for k, v in r.items() if k not in drop})


def console(backend: str = "zcache", elapsed: float = 30.0, pressure: dict | None = None,
            run_record: str | None = None) -> str:
    lines = [
        "[    1.000000] Run /init as init process",
        rec({"kind": "boot", "name": "bench-t", "kernel": "6.1.0", "nproc": 1, "memtotal_kib": 250000}),
        counters("before", BEFORE),
        run_record or workload("run", elapsed),
        counters("pressure", PRESSURE[backend] if pressure is None else pressure),
        workload("recheck", 10.0),
        rec({"kind": "exit", "id": "w0", "status": 0}),
        counters("after", PRESSURE[backend] if pressure is None else pressure),
        "ZCF-DONE status=0",
    ]
    return "\r\n".join(lines) + "\r\n"


def guest_run(tmp_path: Path, text: str, name: str = "run") -> GuestRun:
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "console.log").write_text(text)
    return GuestRun(name=name, console_log=d / "console.log", exit_kind="exit", guest_status=0,
                    qemu_exit_code=1, seconds=40.0, accel="tcg")


def measured(tmp_path: Path, backend: str = "zcache", **kw) -> bench.Run:
    return bench.measure(scenario(backend), guest_run(tmp_path, console(backend, **kw)))


# ---------------------------------------------------------------- disk models

def test_disk_models_are_one_table_with_qemu_throttling():
    models = {m.name: m for m in qemu.DISK_MODELS}
    assert list(models) == ["host", "ssd", "hdd"]
    assert models["host"].drive_options() == ""
    assert models["ssd"].stands_for == "a SATA SSD at queue depth 1: 450 MiB/s, 10,000 IOPS"
    assert models["ssd"].drive_options() == ",throttling.bps-total=471859200,throttling.iops-total=10000"
    assert models["hdd"].stands_for == "a 7,200 rpm disk: 150 MiB/s, 150 IOPS"
    assert models["hdd"].drive_options() == ",throttling.bps-total=157286400,throttling.iops-total=150"


def boot(tmp_path: Path, **kw) -> qemu._Boot:
    return qemu._Boot(name="t", kernel=tmp_path / "bzImage", initrd=tmp_path / "initrd", memory_mib=256,
                      cpus=1, append=["console=ttyS0"],
                      swap_imgs=(tmp_path / "swap.img", tmp_path / "swap1.img"),
                      workdir=tmp_path, accel="tcg", timeout_s=10, **kw)


def test_every_swap_drive_gets_the_disk_model(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu, "_qemu_binary", lambda: "qemu-system-x86_64")
    argv = qemu.qemu_argv(boot(tmp_path, disk=qemu.disk_model("ssd")), tmp_path / "console.log")
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives == [f"file={tmp_path / img},if=virtio,format=raw,cache=unsafe,"
                      "throttling.bps-total=471859200,throttling.iops-total=10000"
                      for img in ("swap.img", "swap1.img")]
    # no model: today's unthrottled drives, unchanged
    argv = qemu.qemu_argv(boot(tmp_path), tmp_path / "console.log")
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"] == [
        f"file={tmp_path / img},if=virtio,format=raw,cache=unsafe" for img in ("swap.img", "swap1.img")]


def test_run_guest_rejects_an_unknown_disk_model_first(tmp_path):
    with pytest.raises(ForgeError, match=r"unknown disk model 'nvme' \(known: host, ssd, hdd\)"):
        qemu.run_guest(tmp_path / "no-kernel", tmp_path / "no-initrd", scenario(), tmp_path, "tcg",
                       disk="nvme")


def test_choose_disks_puts_throttled_models_first():
    assert bench.choose_disks(None) == ("ssd", "host")
    assert bench.choose_disks(["host", "ssd", "ssd"]) == ("ssd", "host")
    assert bench.choose_disks(["hdd", "host", "ssd"]) == ("hdd", "ssd", "host")
    assert bench.choose_disks(["host"]) == ("host",)
    with pytest.raises(ForgeError, match=r"unknown --disk 'nvme' \(known: host, ssd, hdd\)"):
        bench.choose_disks(["ssd", "nvme"])


# ---------------------------------------------------------------- figures

def test_zcache_hit_rate_and_written_back(tmp_path):
    run = measured(tmp_path, "zcache")
    assert run.passed, run.result.reasons
    m = run.figures
    # over the measured phase: loads 1100-100, pswpin 250-50
    assert m["hit_rate"] == pytest.approx(1000 / 1200)
    assert m["written_back"] == 700
    assert m["pswpout"] == 5000 and m["pswpin"] == 200
    assert m["density"] == pytest.approx(2.0)
    assert m["throughput_mbps"] == pytest.approx(320 * 3 / 30.0)
    assert m["corrupted"] == 0


def test_zswap_written_back_and_plain_swap_hit_rate(tmp_path):
    z = measured(tmp_path / "z", "zswap").figures
    assert z["written_back"] == 42
    assert z["hit_rate"] == pytest.approx(500 / 1000)
    plain = measured(tmp_path / "p", "none").figures
    assert plain["hit_rate"] == 0.0  # every swap-in came from the disk
    assert plain["written_back"] is None  # no backend, nothing to write back


def test_hit_rate_is_none_without_swap_ins(tmp_path):
    assert bench.hit_rate(0, 0) is None
    assert bench.hit_rate(None, 10) is None and bench.hit_rate(10, None) is None
    assert bench.hit_rate(3, 1) == 0.75
    quiet = {**PRESSURE["zcache"], "frontswap.loads": 100, "pswpin": 50}
    assert measured(tmp_path, "zcache", pressure=quiet).figures["hit_rate"] is None


def test_spread():
    assert bench.spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert bench.spread([None, None]) == {"median": None, "min": None, "max": None}


# ---------------------------------------------------------------- malformed records

def test_workload_record_without_a_field_is_a_failed_run(tmp_path):
    run = measured(tmp_path, "zcache", run_record=workload("run", drop=("bytes",)))
    assert not run.passed and run.figures == {}
    assert any("malformed console records" in r and "'bytes'" in r for r in run.result.reasons)
    cell = bench.Cell("zcache", "bench-t", "ssd", runs=[run])
    assert not cell.passed and cell.figures == {} and "'bytes'" in cell.failure


def test_counters_without_a_key_are_a_failed_run(tmp_path):
    pressure = {k: v for k, v in PRESSURE["zcache"].items() if k != "zcache.pers_pageframes"}
    run = measured(tmp_path, "zcache", pressure=pressure)
    assert not run.passed
    assert any("'zcache.pers_pageframes'" in r for r in run.result.reasons)


def test_a_record_the_verdict_cannot_read_is_a_failed_run(tmp_path):
    run = measured(tmp_path, "zcache", run_record=workload("run", pages_sigbus="many"))
    assert not run.passed and run.figures == {}
    # the record is a typed ParseError naming its line, and the verdict goes on without it
    assert run.result.reasons[0] == ("malformed console records: console line 4: workload record: "
                                     "'pages_sigbus' is not a number: 'many'")
    assert "workload w0 (320 MiB text): no 'run' result" in run.result.reasons
    assert [e.line for e in run.result.parse_errors] == [4]


# ---------------------------------------------------------------- the bench loop

class FakeGuest:
    """qemu.run_guest's stand-in: writes a console log per backend and disk model."""

    def __init__(self, malformed: tuple[str, str] | None = None, interrupt_at: int | None = None):
        self.calls: list[tuple[str, str]] = []
        self.malformed = malformed
        self.interrupt_at = interrupt_at

    def __call__(self, kernel, initrd, job, workdir, accel=None, disk="host"):
        self.calls.append((job.backend, disk))
        if self.interrupt_at == len(self.calls):
            raise KeyboardInterrupt
        elapsed = ELAPSED[(job.backend, disk)]
        run_record = workload("run", drop=("elapsed_s",)) if (job.backend, disk) == self.malformed else None
        return guest_run(workdir, console(job.backend, elapsed, run_record=run_record), "")


BACKENDS = [b for b in bench.BACKENDS if b.name in ("zcache", "zswap-zbud", "plain-swap")]


@pytest.fixture
def fake_boot(tmp_path, monkeypatch, cache):
    monkeypatch.setattr(initramfs, "build_initramfs", lambda out: tmp_path / "initramfs.cpio.gz")
    fake = FakeGuest()
    monkeypatch.setattr(qemu, "run_guest", fake)
    return fake


def run_fake_bench(tmp_path: Path, disks=("ssd", "host"), on_run=None) -> bench.BenchResult:
    image = SimpleNamespace(image=tmp_path / "bzImage")
    return bench.run_bench(image, [scenario()], BACKENDS, 1, tmp_path / "work", "tcg", 20, disks, on_run)


def test_bench_writes_after_every_run_and_a_malformed_run_does_not_stop_it(tmp_path, fake_boot):
    fake_boot.malformed = ("zswap", "ssd")
    path = tmp_path / "results" / "bench.json"
    seen: list[int] = []

    def save(res: bench.BenchResult) -> None:
        bench.write_json(path, res.to_dict({}))
        seen.append(sum(len(c["runs"]) for c in json.loads(path.read_text())["cells"]))

    res = run_fake_bench(tmp_path, on_run=save)
    assert fake_boot.calls == [("zcache", "ssd"), ("zswap", "ssd"), ("none", "ssd"),
                               ("zcache", "host"), ("zswap", "host"), ("none", "host")]
    assert seen == [1, 2, 3, 4, 5, 6]  # the file grew run by run
    assert res.complete and res.runs_done == res.runs_planned == 6
    data = res.to_dict({})
    cells = {(c["backend"], c["disk"]): c for c in data["cells"]}
    bad = cells[("zswap-zbud", "ssd")]
    assert not bad["passed"] and "'elapsed_s'" in bad["runs"][0]["reasons"][-1]
    assert all(c["passed"] for k, c in cells.items() if k != ("zswap-zbud", "ssd"))
    assert [d["name"] for d in data["disks"]] == ["ssd", "host"]
    assert data["disks"][0]["qemu_drive_options"] == (
        "throttling.bps-total=471859200,throttling.iops-total=10000")
    assert cells[("zcache", "ssd")]["figures"]["hit_rate"]["median"] == pytest.approx(1000 / 1200)
    assert cells[("zcache", "ssd")]["figures"]["written_back"]["median"] == 700
    # no reference on ssd: no ratio there, but the host comparison stands
    assert cells[("zcache", "ssd")]["comparisons"]["throughput_ratio"] is None
    assert cells[("zcache", "host")]["comparisons"]["throughput_ratio"] == pytest.approx(26.0 / 25.0)
    md = report.markdown(res)
    assert "| zswap-zbud (FAILED) |" in md
    assert "- zswap-zbud on the ssd disk failed: malformed console records:" in md


def test_an_interrupted_bench_keeps_what_it_measured(tmp_path, fake_boot):
    fake_boot.interrupt_at = 3
    path = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        run_fake_bench(tmp_path, on_run=lambda res: bench.write_json(path, res.to_dict({})))
    data = json.loads(path.read_text())
    assert not data["complete"] and data["runs_planned"] == 6
    assert data["runs_done"] == 2
    assert [(c["backend"], c["disk"], len(c["runs"])) for c in data["cells"]] == [
        ("zcache", "ssd", 1), ("zswap-zbud", "ssd", 1)]


def test_markdown_has_a_throttled_and_an_unthrottled_column(tmp_path, fake_boot):
    md = report.markdown(run_fake_bench(tmp_path))
    head = next(ln for ln in md.splitlines() if ln.startswith("| backend |"))
    cols = [c.strip() for c in head.strip("|").split("|")]
    assert cols[cols.index("MiB/s (ssd)") + 1] == "MiB/s (host)"
    assert cols[cols.index("elapsed s (ssd)") + 1] == "elapsed s (host)"
    assert {"hit rate (%)", "written back", "vs zswap-zbud (ssd)"} <= set(cols)
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.strip("|").split("|")]
            for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| backend")}
    zc, plain = dict(zip(cols, rows["zcache"], strict=True)), dict(zip(cols, rows["plain-swap"], strict=True))
    assert zc["MiB/s (ssd)"] == "32.0" and zc["MiB/s (host)"] == "38.4"  # 960 MiB moved in 30 s, 25 s
    assert plain["MiB/s (ssd)"] == "16.0" and plain["MiB/s (host)"] == "48.0"  # slow disk, fast host file
    assert zc["hit rate (%)"] == "83" and plain["hit rate (%)"] == "0"
    assert zc["written back"] == "700" and plain["written back"] == "-"
    assert zc["vs plain swap"] == "88%" and zc["corrupted"] == "0"
    assert "**ssd**: a SATA SSD at queue depth 1: 450 MiB/s, 10,000 IOPS" in md
    assert "FAILED" not in md


def test_cover_table_fits_75_columns_with_both_disks(tmp_path, fake_boot):
    env = {"series": "zcache-promote", "series_version": 1, "kernel_commit": "c39a6e1e06af" * 3,
           "accelerator": "tcg", "compressor": "lzo", "reps": 1, "pool_percent": 20}
    text = report.cover_table(run_fake_bench(tmp_path).to_dict(env))
    assert max(len(ln) for ln in text.splitlines()) <= 75
    assert "bench-t, swap I/O on the ssd disk:" in text
    zc_io = next(ln for ln in text.splitlines() if ln.startswith("zcache") and "%" in ln)
    assert zc_io.split() == ["zcache", "5,000", "88%", "83%", "700", "2.00", "121"]
    speed = text.split("bench-t, workload throughput:\n", 1)[1].splitlines()
    assert speed[0].split() == ["backend", "MiB/s", "ssd", "MiB/s", "host", "corrupt"]
    assert speed[1].split() == ["zcache", "32.0", "38.4", "0"]


def test_chart_is_a_png(tmp_path, fake_boot):
    png = report.chart(run_fake_bench(tmp_path), tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- cli.bench

def test_unknown_disk_fails_before_any_build(tmp_path, cache, monkeypatch, capsys):
    def must_not_run(*a, **kw):
        raise AssertionError("the kernel was built before --disk was checked")

    monkeypatch.setattr(qemutest, "build_kernel", must_not_run)
    monkeypatch.setattr(bench, "run_bench", must_not_run)
    results = tmp_path / "results"
    rc = cli.bench(ROOT / "series.yaml", tmp_path / "patches", None, None, 1, None, False, results, False,
                   None, ["ssd", "nvme"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 1
    assert err == ["error: --disk[1]: expected one of host, ssd, hdd, found 'nvme'"]
    assert not results.exists() and not (tmp_path / "patches").exists()


def test_cli_bench_runs_every_disk_and_writes_the_results(tmp_path, fake_boot, monkeypatch, capsys):
    image = SimpleNamespace(image=tmp_path / "bzImage", commit="c39a6e1e06af" * 3, series="zcache-promote",
                            version=1, config_hash=lambda: "0123456789abcdef")
    monkeypatch.setattr(qemutest, "build_kernel", lambda series_file, out: image)
    results = tmp_path / "results"
    rc = cli.bench(ROOT / "series.yaml", tmp_path / "patches", ["bench-text"],
                   ["zcache", "zswap-zbud", "plain-swap"], 1, "tcg", False, results, False, 20,
                   ["host", "ssd"])
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads((results / "bench.json").read_text())
    assert data["complete"] and data["passed"]
    assert data["environment"]["pool_percent"] == 20 and data["environment"]["kernel_release"] == "6.1.0"
    assert [(c["backend"], c["disk"]) for c in data["cells"]] == [
        ("zcache", "ssd"), ("zswap-zbud", "ssd"), ("plain-swap", "ssd"),
        ("zcache", "host"), ("zswap-zbud", "host"), ("plain-swap", "host")]
    assert set(fake_boot.calls) == {(b, d) for b in ("zcache", "zswap", "none") for d in ("ssd", "host")}
    md = (results / "bench.md").read_text()
    assert "MiB/s (ssd) | MiB/s (host)" in md and "MiB/s (ssd) | MiB/s (host)" in out
    assert (results / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (results / "bench.json.tmp").exists()
