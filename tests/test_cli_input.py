"""Bad input through the real CLI path (the cli functions the invoke tasks call, and invoke itself):
exit 1, one line on stderr naming the file and the field (or the flag), no traceback, nothing
written (patches/ unchanged, the cache not even created), no kernel built. No kernel needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from invoke import Collection, Program

from zcache_forge import cli, options
from zcache_forge.guest import qemutest, scenarios

from .conftest import ROOT, make_project
from .test_build_patches import snapshot
from .test_send_patches import smtp, stamp_all, world  # noqa: F401 (fixtures)


@pytest.fixture
def proj(tmp_path, mini_kernel, cache, monkeypatch) -> Path:
    """A project copy (series.yaml, templates/, a scenario file) with a patches/ folder to watch."""
    p = make_project(tmp_path, mini_kernel)
    shutil.copy(scenarios.DEFAULT_FILE, p / "scenarios.yaml")
    monkeypatch.setattr(scenarios, "DEFAULT_FILE", p / "scenarios.yaml")

    def no_build(*a, **kw):
        raise AssertionError("a kernel build started before the input was checked")

    monkeypatch.setattr(qemutest, "build_kernel", no_build)
    (p / "patches").mkdir()
    (p / "patches" / "keep.txt").write_text("mine\n")
    return p


def edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run(proj: Path, task: str, **kw) -> int:
    sf, out = proj / "series.yaml", proj / "patches"
    if task == "build-patches":
        return cli.build_patches(sf, out, kw.get("series"), False, False, kw.get("build", False),
                                 distcc_hosts=kw.get("distcc"))
    if task == "qemu-test":
        return cli.qemu_test(sf, out, kw.get("scenario"), kw.get("series"), kw.get("accel"), False,
                             proj / "results", jobs=kw.get("jobs"), distcc_hosts=kw.get("distcc"),
                             runner=kw.get("runner"), lava=kw.get("lava"))
    if task == "bench":
        return cli.bench(sf, out, kw.get("scenario"), kw.get("backend"), kw.get("reps"), kw.get("accel"),
                         False, proj / "results", False, kw.get("pool_percent"), kw.get("disk"),
                         kw.get("runner"))
    return cli.send_patches(sf, out, kw.get("series"), kw.get("send", False), False, None,
                            kw.get("smtp_port"), None, kw.get("dry_run", False))


def assert_rejected(proj: Path, cache: Path, capsys, rc: int, *expect: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for e in expect:
        assert e in lines[0], lines[0]
    assert snapshot(proj / "patches") == {"keep.txt": b"mine\n"}
    assert not cache.exists()  # not even the lock: the input is checked first
    assert not (proj / "results").exists()
    return lines[0]


SERIES_CASES = [
    ("to-string", lambda d: d.update(to="someone@example.org"),
     "to: expected a list, found 'someone@example.org'"),
    ("cc-number", lambda d: d.update(cc=["linux-kernel@vger.kernel.org", 42]), "cc[1]: expected an address"),
    ("cc-not-an-address", lambda d: d.update(cc=["x"]), "cc[0]: expected an address"),
    ("top-level-key", lambda d: d.update(colour="blue"), "colour: expected one of the keys author, base"),
    ("op-name", lambda d: d["series"][0]["patches"][0]["ops"][0].update(op="frobnicate"),
     "series[0].patches[0].ops[0].op: expected one of write, move"),
    ("op-key", lambda d: d["series"][0]["patches"][0]["ops"][0].update(after="x"),
     "series[0].patches[0].ops[0].after: expected one of the keys op, path, template, found unknown key"),
    ("bad-date", lambda d: d.update(date="2026-13-45 09:00:00 +0000"),
     "date: expected a date 'YYYY-MM-DD HH:MM:SS +ZZZZ', found '2026-13-45"),
    ("duplicate-series", lambda d: d["series"][1].update(name="zcache-staging"),
     "series[1].name: expected a new series name, found 'zcache-staging' again"),
    ("patch-without-ops", lambda d: d["series"][1]["patches"][0].update(ops=[]),
     "series[1].patches[0].ops: expected a non-empty list, found an empty list"),
    ("knob-as-string", lambda d: d["knobs"]["zcache"].update(poor_percent="87"),
     "knobs.zcache.poor_percent: expected an integer 1..95, found '87'"),
    ("counter-max", lambda d: d["counters"][0].update(max="yes"), "counters[0].max: expected true or false"),
    ("made-on", lambda d: d["base"].update(made_on="six"), "base.made_on: expected a kernel version"),
    ("version", lambda d: d["series"][0].update(version=0),
     "series[0].version: expected an integer 1..99, found 0"),
]


@pytest.mark.parametrize("name, change, expect", SERIES_CASES, ids=[c[0] for c in SERIES_CASES])
def test_bad_series_file(proj, cache, capsys, name, change, expect):
    edit(proj / "series.yaml", change)
    line = assert_rejected(proj, cache, capsys, run(proj, "build-patches"), expect)
    assert line.startswith(f"error: {proj / 'series.yaml'}: ")


SCENARIO_CASES = [
    ("cpus-string", lambda d: d["scenarios"][3].update(cpus="2"),
     "scenarios[3].cpus: expected an integer 1..4, found '2'"),
    ("negative-memory", lambda d: d["scenarios"][0].update(memory_mib=-256),
     "scenarios[0].memory_mib: expected an integer 64..16384, found -256"),
    ("duplicate-name", lambda d: d["scenarios"][1].update(name="basic"),
     "scenarios[1].name: expected a new scenario name, found 'basic' again"),
    ("unknown-backend", lambda d: d["scenarios"][0].update(backend="zram"),
     "scenarios[0].backend: expected one of zcache, zswap, none, found 'zram'"),
    ("silence-timeout", lambda d: d["scenarios"][0].update(silence_timeout_s=0),
     "scenarios[0].silence_timeout_s: expected an integer >= 1, found 0"),
    ("workload-pattern", lambda d: d["scenarios"][1]["workloads"][0].update(pattern="lorem"),
     "scenarios[1].workloads[0].pattern: expected one of zero, text, mixed, random, found 'lorem'"),
]


@pytest.mark.parametrize("name, change, expect", SCENARIO_CASES, ids=[c[0] for c in SCENARIO_CASES])
@pytest.mark.parametrize("task", ["qemu-test", "bench"])
def test_bad_scenario_file(proj, cache, capsys, name, change, expect, task):
    edit(proj / "scenarios.yaml", change)
    line = assert_rejected(proj, cache, capsys, run(proj, task), expect)
    assert line.startswith(f"error: {proj / 'scenarios.yaml'}: ")


def test_silence_timeout_is_loaded(proj):
    edit(proj / "scenarios.yaml", lambda d: d["scenarios"][0].update(silence_timeout_s=90))
    assert scenarios.load_scenarios(proj / "scenarios.yaml").get("basic").silence_timeout_s == 90


OPTION_CASES = [
    ("bench", {"reps": "x"}, "--reps: expected an integer 1..1000, found 'x'"),
    ("bench", {"reps": "0"}, "--reps: expected an integer 1..1000, found '0'"),
    ("bench", {"pool_percent": "abc"}, "--pool-percent: expected an integer 1..100, found 'abc'"),
    ("bench", {"pool_percent": "0"}, "--pool-percent: expected an integer 1..100, found '0'"),
    ("bench", {"pool_percent": "101"}, "--pool-percent: expected an integer 1..100, found '101'"),
    ("bench", {"accel": "hvf"}, "--accel: expected one of tcg, kvm, found 'hvf'"),
    ("bench", {"backend": ["zcache", "zram"]}, "--backend[1]: expected one of zcache, zswap-zbud"),
    ("bench", {"disk": ["nvme"]}, "--disk[0]: expected one of host, ssd, hdd, found 'nvme'"),
    ("bench", {"scenario": ["nope"]}, "--scenario[0]: expected a scenario of scenarios.yaml (basic,"),
    ("qemu-test", {"accel": "hvf"}, "--accel: expected one of tcg, kvm, found 'hvf'"),
    ("qemu-test", {"scenario": ["basic", "nope"]}, "--scenario[1]: expected a scenario of scenarios.yaml"),
    ("qemu-test", {"jobs": "0"}, "--jobs: expected an integer 1..64, found '0'"),
    ("qemu-test", {"jobs": "two"}, "--jobs: expected an integer 1..64, found 'two'"),
    ("qemu-test", {"distcc": "build box!"},
     "--distcc: expected distcc hosts, host[:port][/limit] separated by spaces or commas, "
     "found 'build box!'"),
    ("qemu-test", {"distcc": "127.0.0.1:99999/2"}, "--distcc: expected distcc hosts"),
    ("build-patches", {"distcc": "127.0.0.1:3632/2"}, "--distcc spreads the kernel builds: it needs --build"),
    ("qemu-test", {"runner": "lab"}, "--runner: expected one of local, lava-run, lava, found 'lab'"),
    ("qemu-test", {"runner": "lava", "lava": {"url": "http://127.0.0.1:1/"}},
     "--runner lava: needs --lava-token, --lava-artifacts, --lava-artifacts-url (the token may come from "
     "$ZCF_LAVA_TOKEN)"),
    ("qemu-test", {"runner": "lava", "lava": {"url": "lava.example.org", "token": "t", "artifacts": "/srv",
                                              "artifacts_url": "http://x/"}},
     "--lava-url: expected an http(s) URL, found 'lava.example.org'"),
    ("qemu-test", {"lava": {"url": "http://127.0.0.1:1/"}},
     "--lava-url, --lava-artifacts and --lava-artifacts-url go with --runner lava"),
    ("qemu-test", {"runner": "lava-run", "scenario": ["ramster"]},
     "--runner lava-run: ramster is a two-guest scenario (peer:), which only --runner local runs: multi-node "
     "LAVA jobs are not built"),
    ("bench", {"runner": "lava-run", "scenario": ["bench-text"], "backend": ["zcache", "ramster"]},
     "--runner lava-run: bench-text is a two-guest scenario (peer:), which only --runner local runs"),
    ("qemu-test", {"series": "nope"},
     "--series: expected a series of series.yaml (zcache-staging, zcache-promote), found 'nope'"),
    ("build-patches", {"series": ["zcache-staging", "nope"]},
     "--series[1]: expected a series of series.yaml"),
    ("send-patches", {"smtp_port": "abc"}, "--smtp-port: expected an integer 1..65535, found 'abc'"),
    ("send-patches", {"send": True, "dry_run": True},
     "--dry-run: expected either -n/--dry-run or --send, found both"),
]


@pytest.mark.parametrize("task, opts, expect", OPTION_CASES,
                         ids=[f"{t}-{'-'.join(o)}-{i}" for i, (t, o, _) in enumerate(OPTION_CASES)])
def test_bad_option(proj, cache, capsys, task, opts, expect):
    line = assert_rejected(proj, cache, capsys, run(proj, task, **opts), expect)
    assert line == f"error: {expect}" or line.startswith(f"error: {expect}")


ACCEL_ENV_ERROR = "ZCF_ACCEL: expected one of tcg, kvm (or unset: probe), found 'hvf'"


@pytest.mark.parametrize("task", ["qemu-test", "bench", "bench-loop", "build-patches --boot"])
def test_bad_accel_environment_variable(proj, cache, capsys, monkeypatch, task):
    """ZCF_ACCEL is checked with the options: exit 1 before any build, not when the probe reads it."""
    monkeypatch.setenv("ZCF_ACCEL", "hvf")
    sf = proj / "series.yaml"
    if task == "bench-loop":
        rc = cli.bench_loop(sf, None, False)
    elif task == "build-patches --boot":
        rc = cli.build_patches(sf, proj / "patches", None, False, False, False, True, None)
    else:
        rc = run(proj, task)
    assert assert_rejected(proj, cache, capsys, rc, ACCEL_ENV_ERROR) == f"error: {ACCEL_ENV_ERROR}"


def test_accel_environment_variable_is_not_checked_where_nothing_boots(proj, monkeypatch):
    monkeypatch.setenv("ZCF_ACCEL", "hvf")
    opts = options.check(options.BuildPatchesOptions, proj / "series.yaml")
    assert opts.boot is False


# --- invoke's own parsing: no automatic short flags, -n is a dry run, repeatable means repeatable ---


def parse(argv: list[str], monkeypatch) -> dict:
    """Run `invoke ARGV` on tasks.py in process with the cli function replaced by a recorder."""
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.remove(str(ROOT))
    seen: dict = {}

    def record(name):
        def fn(*args):
            seen[name] = args
            return 0
        return fn

    for name in ("build_patches", "qemu_test", "bench", "send_patches"):
        monkeypatch.setattr(tasks.cli, name, record(name))
    with pytest.raises(SystemExit) as info:
        Program(namespace=Collection.from_module(tasks)).run(["invoke", *argv], exit=True)
    seen["exit"] = info.value.code
    return seen


def test_dash_n_is_a_dry_run_never_a_send(monkeypatch):
    args = parse(["send-patches", "-n"], monkeypatch)["send_patches"]
    # (series_file, out, names, send, force, server, port, user, dry_run)
    assert args[3] is False and args[4] is False and args[8] is True


def test_dash_n_with_send_is_an_error_and_sends_nothing(proj, cache, capsys):
    r = subprocess.run([sys.executable, "-m", "invoke", "send-patches", "-n", "--send",
                        "--series-file", str(proj / "series.yaml")], cwd=ROOT, capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin", "ZCACHE_FORGE_CACHE": str(cache),
                                       "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == "error: --dry-run: expected either -n/--dry-run or --send, found both"
    assert not cache.exists()


@pytest.mark.parametrize("flag", ["-s", "-f", "-j", "-c", "-b", "-r", "-a"])
def test_no_automatic_short_flags(monkeypatch, capsys, flag):
    for task in ("build-patches", "qemu-test", "bench", "send-patches"):
        if (task, flag) == ("qemu-test", "-j"):
            continue  # chosen: make's -j (test_qemu_test_dash_j_is_jobs)
        seen = parse([task, flag], monkeypatch)
        assert seen["exit"] != 0 and len(seen) == 1, (task, flag, seen)


def test_qemu_test_dash_j_is_jobs(monkeypatch):
    args = parse(["qemu-test", "-j", "2"], monkeypatch)["qemu_test"]
    assert args[8] == "2"  # (series_file, out, scenario, series, accel, json, results, debug, jobs, runner)


def test_repeatable_options_repeat(monkeypatch):
    args = parse(["build-patches", "--series", "zcache-staging", "--series", "zcache-promote"],
                 monkeypatch)["build_patches"]
    assert args[2] == ["zcache-staging", "zcache-promote"]
    args = parse(["bench", "--scenario", "a", "--scenario", "b", "--backend", "zcache", "--backend",
                  "plain-swap", "--disk", "ssd", "--disk", "hdd", "--reps", "x"], monkeypatch)["bench"]
    assert (args[2], args[3], args[4], args[10]) == (["a", "b"], ["zcache", "plain-swap"], "x",
                                                      ["ssd", "hdd"])
    args = parse(["send-patches", "--series", "a", "--series", "b"], monkeypatch)["send_patches"]
    assert args[2] == ["a", "b"]


def test_dash_n_through_invoke_sends_nothing_to_a_real_smtp_server(world, smtp, monkeypatch, capsys):  # noqa: F811
    """What `invoke send-patches -n` passes on, run for real against the local SMTP server: a dry run."""
    real = cli.send_patches
    args = list(parse(["send-patches", "-n"], monkeypatch)["send_patches"])
    # the task's arguments, with this world's files and the local server in place of git's config
    args[0], args[1], args[5], args[6] = world / "series.yaml", world / "patches", "127.0.0.1", str(smtp.port)
    stamp_all(world)  # so that only the dry run stands between these files and the server
    assert real(*args) == 0
    assert smtp.received == []
    assert "dry run: nothing sent" in capsys.readouterr().out
