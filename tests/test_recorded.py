"""Console logs recorded from real runs (tests/data/) through console, ktap, judge, bench and report:
nothing is built or booted.

bench-zcache and bench-plain-swap: a zcache and a plain-swap boot of bench-overpool on the ssd disk;
bench-zcache-truncated: the same zcache log with its workload "run" record cut short, as a serial console
can lose it; bench-zcache-died: a zcache boot whose console stops in memhog's second pass (no ZCF-DONE);
kunit-basic: a debug kernel's boot with zcache's KUnit suites, then the basic scenario."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from zcache_forge import bench, cli, report
from zcache_forge.guest import console, initramfs, judge, ktap, qemu, qemutest
from zcache_forge.guest.console import (
    BootRecord,
    CountersRecord,
    ExitRecord,
    OtherRecord,
    ParseError,
    WorkloadRecord,
    parse_console,
)

from .conftest import ROOT, recorded

ZCACHE, PLAIN = bench.BACKENDS[0], bench.BACKENDS[3]


@pytest.fixture(scope="module")
def overpool():
    return qemutest.choose(["bench-overpool"])[0]


def guest_run(tmp_path: Path, log: str, exit_kind: str = "exit", status: int | None = 0,
              seconds: float = 70.0) -> qemu.GuestRun:
    d = tmp_path / log
    d.mkdir(parents=True, exist_ok=True)
    (d / "console.log").write_text(recorded(log))
    return qemu.GuestRun(name=log, console_log=d / "console.log", exit_kind=exit_kind, guest_status=status,
                         qemu_exit_code=None if status is None else 2 * status + 1, seconds=seconds,
                         accel="kvm")


# ---------------------------------------------------------------- console

def test_a_recorded_console_is_parsed_once_into_typed_records():
    con = parse_console(recorded("bench-zcache"))
    assert con.errors == [] and con.done_status == 0 and con.splats == []
    assert [type(r).__name__ for r in con.records] == [
        "BootRecord", "CountersRecord", "WorkloadRecord", "CountersRecord", "WorkloadRecord", "ExitRecord",
        "CountersRecord"]
    (boot,) = con.boots
    assert isinstance(boot, BootRecord) and (boot.name, boot.kernel, boot.nproc) == (
        "bench-overpool", "6.1.192+", 1)
    assert [c.phase for c in con.counters] == ["before", "pressure", "after"]
    assert all(isinstance(v, (int, float)) for c in con.counters for v in c.values.values())
    run, recheck = con.workloads
    assert isinstance(run, WorkloadRecord) and (run.id, run.phase, run.passes) == ("w0", "run", 2)
    assert run.pages == 98304 and run.pages_checked == 2 * 98304 and run.bytes == 384 * 2**20
    assert run.elapsed_s == pytest.approx(44.652) and run.pages_corrupted == 0
    assert recheck.phase == "recheck" and run.raw["fill_mbps"] == 61.6  # the record as printed, kept
    (exit_,) = con.of(ExitRecord)
    assert (exit_.id, exit_.status) == ("w0", 0)
    assert con.lines[run.line - 1].startswith('ZCF-RESULT {"kind":"workload"')  # lines are 1-based


def test_a_truncated_record_is_a_parse_error_naming_its_line():
    con = parse_console(recorded("bench-zcache-truncated"))
    (err,) = con.errors
    assert isinstance(err, ParseError) and err.unreadable and err.line == 52
    assert err.text.startswith('ZCF-RESULT {"kind":"workload","id":"w0","phase":"run"')
    assert "unreadable JSON" in err.why
    assert [w.phase for w in con.workloads] == ["recheck"]  # the rest of the console is read as before


@pytest.mark.parametrize("record,kind,why", [
    ({"kind": "workload", "id": "w0", "phase": "run", "pages_sigbus": "many"}, "workload",
     "'pages_sigbus' is not a number: 'many'"),
    ({"kind": "workload", "phase": "run"}, "workload", "no 'id'"),
    ({"kind": "counters", "phase": "pressure"}, "counters", "no 'values' object"),
    ({"kind": "exit", "id": "w0"}, "exit", "no 'status'"),
    ({"kind": "boot", "nproc": True}, "boot", "'nproc' is not a number: True"),
    ({"kind": "step", "step": "swapoff", "start_s": "soon"}, "step", "'start_s' is not a number: 'soon'"),
])
def test_a_record_with_a_bad_field_is_a_parse_error_of_its_kind(record, kind, why):
    con = parse_console("noise\r\nZCF-RESULT " + json.dumps(record) + "\r\nZCF-DONE status=0\r\n")
    assert con.records == [] and con.done_status == 0
    assert con.errors == [ParseError(2, "ZCF-RESULT " + json.dumps(record), why, kind=kind)]
    assert not con.errors[0].unreadable


def test_records_of_an_unknown_kind_are_kept_not_judged():
    con = parse_console('ZCF-RESULT {"kind":"progress","id":"w0","pct":50}\nZCF-RESULT ["no kind"]')
    assert con.records == [OtherRecord(1, "progress", {"kind": "progress", "id": "w0", "pct": 50})]
    assert [(e.line, e.why) for e in con.errors] == [(2, "no JSON object after the mark")]


def test_counters_keep_only_numbers():
    con = parse_console('ZCF-RESULT {"kind":"counters","phase":"before","values":{"a":1,"b":"x","c":2.5}}')
    (c,) = con.of(CountersRecord)
    assert c.values == {"a": 1, "c": 2.5}


# ---------------------------------------------------------------- judge

def test_a_recorded_cell_passes_and_a_died_one_fails_with_its_reasons(overpool):
    job = bench.variant(overpool, ZCACHE, 20)
    ok = judge.judge(job, recorded("bench-zcache"), seconds=70.0, accel="kvm")
    assert ok.passed, ok.reasons
    assert ok.summary["zcache_stored"] and ok.summary["corrupted"] == 0 and ok.parse_errors == []
    died = judge.judge(job, recorded("bench-zcache-died"), exit_kind="reset", guest_status=None)
    assert not died.passed
    assert died.reasons == [
        "the guest rebooted or halted instead of exiting through isa-debug-exit "
        "(kernel panic, or /init died)",
        "no ZCF-DONE line: the guest stopped before /init finished",
        "workload w0 (384 MiB text): no 'run' result",
        "workload w0 (384 MiB text): no 'recheck' result",
        "no 'pressure' counters record: the run phase did not complete"]
    assert died.counters.keys() == {"before"}


def test_evaluate_is_pure_on_typed_records(overpool):
    con = parse_console(recorded("bench-zcache"))
    job = bench.variant(overpool, ZCACHE, 20)
    first = judge.evaluate(job, con, [], judge.RunOutcome(seconds=70.0, accel="kvm"))
    again = judge.evaluate(job, con, [], judge.RunOutcome(seconds=70.0, accel="kvm"))
    assert first == again and first.passed
    timed_out = judge.evaluate(job, con, [], judge.RunOutcome("timeout", None, 301.0))
    assert timed_out.reasons == ["timeout: wall-clock limit 900 s: QEMU was killed after 301 s; the console "
                                 "said last: 'ZCF-DONE status=0'"]
    assert timed_out.ended_by == "timeout: wall-clock limit 900 s"


# ---------------------------------------------------------------- ktap on a recorded KUnit boot

def test_recorded_kunit_boot(kunit_tree):
    sc = qemutest.for_debug(qemutest.choose(["basic"])[0])
    r = judge.judge(sc, recorded("kunit-basic"), seconds=300.0, accel="kvm")
    assert r.passed, r.reasons
    assert ktap.kunit_counts(r.kunit) == {"suites": 2, "cases": 38, "passed": 38, "failed": 0, "skipped": 0,
                                          "incomplete": 0}
    first = r.kunit[0]
    assert (first.suite, first.case, first.status) == ("zcache_tmem", "tmem_test_init_twice", "ok")
    assert recorded("kunit-basic").split("\r\n")[first.line - 1].endswith("    ok 1 tmem_test_init_twice")
    assert report.render_table([r]).splitlines()[2].split()[-1] == "38/38"


def test_recorded_kunit_boot_with_a_failing_case(kunit_tree):
    expectation = "tmem_test_put_replaces: EXPECTATION FAILED at drivers/staging/zcache/tmem_test.c:210"
    text = recorded("kunit-basic").replace(
        "[    4.306098]     ok 7 tmem_test_put_replaces\r\n",
        f"[    4.306090]     # {expectation}\r\n[    4.306098]     not ok 7 tmem_test_put_replaces\r\n", 1)
    assert text != recorded("kunit-basic")
    sc = qemutest.for_debug(qemutest.choose(["basic"])[0])
    r = judge.judge(sc, text, seconds=300.0, accel="kvm")
    (reason,) = r.reasons
    assert reason.startswith("KUnit zcache_tmem.tmem_test_put_replaces: not ok (console line ")
    assert reason.endswith(f"): {expectation}")
    assert report.render_table([r]).splitlines()[2].split()[-1] == "37/38"


def test_recorded_kunit_boot_cut_inside_a_suite(kunit_tree):
    lines = recorded("kunit-basic").split("\r\n")
    cut = next(i for i, ln in enumerate(lines) if ln.endswith("    ok 5 zbud_test_buddies_keep_data"))
    results = ktap.parse_ktap(lines[:cut])
    assert [(r.label, r.note) for r in results if r.status != "ok"] == [
        ("zcache_zbud", "the console ended first; 4 of 19 planned results")]


def test_ktap_without_the_kernel_tree_names_the_path(tmp_path):
    lines = recorded("kunit-basic").split("\r\n")
    with pytest.raises(ktap.KunitParserMissing) as exc:
        ktap.parse_ktap(lines, src=tmp_path / "no-linux")
    assert str(tmp_path / "no-linux" / "tools/testing/kunit/kunit_parser.py") in str(exc.value)
    # a console without KTAP needs no kernel tree at all
    assert ktap.parse_ktap(recorded("bench-zcache").split("\r\n"), src=tmp_path / "no-linux") == []


# ---------------------------------------------------------------- bench cells and their report

def test_bench_cells_from_recorded_logs(tmp_path, overpool):
    zc, plain = bench.variant(overpool, ZCACHE, 20), bench.variant(overpool, PLAIN, 20)
    good = bench.measure(zc, guest_run(tmp_path, "bench-zcache"))
    assert good.passed and good.figures["pswpout"] == 151171
    assert good.figures["density"] == pytest.approx(1.72, abs=0.01)
    base = bench.measure(plain, guest_run(tmp_path, "bench-plain-swap"))
    assert base.passed and base.figures["hit_rate"] == 0.0
    truncated = bench.measure(zc, guest_run(tmp_path, "bench-zcache-truncated"))
    assert not truncated.passed and truncated.figures == {}  # no figures from a console that lost records
    assert truncated.result.reasons[0].startswith("unreadable ZCF-RESULT line at console line 52: ")
    died = bench.measure(zc, guest_run(tmp_path, "bench-zcache-died", "timeout", None, 301.0))
    assert not died.passed
    assert died.result.reasons[0] == ("timeout: wall-clock limit 900 s: QEMU was killed after 301 s; the "
                                      "console said last: 'memhog: w0: pass 2 90%'")

    res = bench.BenchResult(image=SimpleNamespace(), accelerator="kvm", reps=2, disks=("ssd",), complete=True)
    res.cells = [bench.Cell("zcache", "bench-overpool", "ssd", runs=[good, truncated]),
                 bench.Cell("plain-swap", "bench-overpool", "ssd", runs=[base]),
                 bench.Cell("zswap-zbud", "bench-overpool", "ssd", runs=[died])]
    assert not res.passed
    zcache_cell = res.cells[0]
    # the figures are the good run's alone
    assert zcache_cell.figures["pswpout"] == {"median": 151171, "min": 151171, "max": 151171}
    md = report.markdown(res)
    assert "| zcache (FAILED) | 151,171 | 22% |" in md
    assert "| plain-swap | 193,018 | 0% |" in md
    assert "- zcache on the ssd disk failed: unreadable ZCF-RESULT line at console line 52: " in md
    assert ("- zswap-zbud on the ssd disk failed: timeout: wall-clock limit 900 s: QEMU was killed after "
            "301 s") in md
    data = res.to_dict({"series": "s", "series_version": 1, "kernel_commit": "0" * 40, "accelerator": "kvm",
                        "compressor": "lzo", "reps": 2, "pool_percent": 20})
    assert [c["passed"] for c in data["cells"]] == [False, True, False]
    assert max(len(ln) for ln in report.cover_table(data).splitlines()) <= report.COVER_WIDTH


class RecordedGuest:
    """qemu.run_guest's stand-in: serves a recorded console log per backend."""

    def __init__(self, logs: dict[str, tuple[str, str, int | None]]):
        self.logs = logs  # backend -> (log, exit kind, guest status)

    def __call__(self, kernel, initrd, job, workdir, accel=None, disk="host"):
        log, kind, status = self.logs[job.backend]
        return guest_run(workdir, log, kind, status)


def test_cli_bench_survives_bad_cells_and_fails_at_the_end(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setattr(initramfs, "build_initramfs", lambda out: tmp_path / "initramfs.cpio.gz")
    monkeypatch.setattr(qemu, "run_guest", RecordedGuest({
        "zcache": ("bench-zcache-truncated", "exit", 0),
        "zswap": ("bench-zcache-died", "reset", None),
        "none": ("bench-plain-swap", "exit", 0)}))
    image = SimpleNamespace(image=tmp_path / "bzImage", commit="c39a6e1e06af" * 3, series="zcache-promote",
                            version=1, config_hash=lambda: "0123456789abcdef")
    monkeypatch.setattr(qemutest, "build_kernel", lambda series_file, out: image)
    saved: list[int] = []
    write_json = bench.write_json

    def spy(path, data):
        saved.append(sum(len(c["runs"]) for c in data["cells"]))
        return write_json(path, data)

    monkeypatch.setattr(bench, "write_json", spy)
    results = tmp_path / "results"
    rc = cli.bench(ROOT / "series.yaml", tmp_path / "patches", ["bench-overpool"],
                   ["zcache", "zswap-zbud", "plain-swap"], 1, "kvm", False, results, False, 20, ["ssd"])
    out = capsys.readouterr().out
    assert rc == 2, out  # the exit status says the bench failed (2: the work ran and failed)
    assert saved == [1, 2, 3, 3]  # after every cell, then the final one
    data = json.loads((results / "bench.json").read_text())
    assert data["complete"] and not data["passed"] and data["runs_done"] == 3
    assert [(c["backend"], c["passed"]) for c in data["cells"]] == [
        ("zcache", False), ("zswap-zbud", False), ("plain-swap", True)]
    md = (results / "bench.md").read_text()
    assert "- zcache on the ssd disk failed: unreadable ZCF-RESULT line at console line 52" in md
    assert "- zswap-zbud on the ssd disk failed: the guest rebooted or halted" in md
    assert "| plain-swap | 193,018 |" in md
    assert out.rstrip().splitlines()[-1].startswith("FAIL in ")


def test_a_run_that_cannot_be_judged_is_a_failed_run(tmp_path, overpool, monkeypatch):
    def broken(*a, **kw):
        raise ktap.KunitParserMissing("no parser at /x")

    monkeypatch.setattr(judge, "judge_run", broken)
    run = bench.measure(bench.variant(overpool, ZCACHE, 20), guest_run(tmp_path, "bench-zcache"))
    assert not run.passed and run.figures == {}
    assert run.result.reasons == ["could not judge the run: KunitParserMissing: no parser at /x"]


def test_console_module_constants_are_the_splat_protocol():
    # the splat patterns live with the console protocol, the verdict's reasons quote their matching line
    assert dict(console.SPLAT_PATTERNS)["oom"].search("Out of memory: Killed process 12")
    assert dataclasses.is_dataclass(judge.Verdict)


def test_the_qemu_test_json_and_table_name_the_unreadable_line(overpool):
    r = judge.judge(bench.variant(overpool, ZCACHE, 20), recorded("bench-zcache-truncated"), seconds=70.0)
    (data,) = json.loads(report.to_json([r]))
    assert [(e["line"], e["kind"]) for e in data["parse_errors"]] == [(52, None)]
    assert data["workloads"][0]["phase"] == "recheck"
    table = report.render_table([r])
    assert table.splitlines()[2].split()[3] == "FAIL"
    assert "bench-overpool: unreadable ZCF-RESULT line at console line 52: " in table
