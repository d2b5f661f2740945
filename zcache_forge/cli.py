"""What the invoke tasks call: set up logging, check the options, run one stage, print, map errors
to exit codes.

Errors (ForgeError) are caught here and only here. Exit status: 0 success; 1 bad input or a tool
error (one line per problem, no traceback); 2 a kernel build, a patch check or a scenario failed."""

from __future__ import annotations

import json as jsonlib
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from zcache_forge import cachelock, kernel, options
from zcache_forge.errors import EXIT_FAILED, ForgeError
from zcache_forge.guest import runners, scenarios
from zcache_forge.series import checkpatch, pipeline

if TYPE_CHECKING:
    from zcache_forge.lava.server import LabConfig
    from zcache_forge.series import patchbuild

T = TypeVar("T")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="zcache-forge: %(message)s", stream=sys.stderr)


def _guard(task: str, fn: Callable[[T], int], check: Callable[[], T]) -> int:
    """check() the options and files (nothing is written, the cache is not touched), then run
    fn(checked) under the cache lock. A ForgeError becomes its lines on stderr and its exit
    status (1, or 2 for a failed build or check)."""
    _setup_logging()
    try:
        checked = check()
        with cachelock.held(kernel.cache_dir(), task, cachelock.timeout_from_env()):
            return fn(checked)
    except ForgeError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code


LAVA_TOKEN_ENV = "ZCF_LAVA_TOKEN"  # --lava-token's default: a token kept out of the process list
LAVA_LAB_OPTIONS = ("url", "token", "artifacts", "artifacts_url")


def use_distcc(hosts: str | None) -> None:
    """--distcc HOSTS: every kernel build of this task sends ccache's misses to these hosts."""
    from zcache_forge.kernel import distcc

    if hosts:
        os.environ[distcc.ENV] = hosts


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def build_patches(series_file: Path, out: Path, only: list[str] | None, check: bool, as_json: bool,
                  build: bool = False, boot: bool = False, accel: str | None = None,
                  distcc_hosts: str | None = None) -> int:
    def go(opts: options.BuildPatchesOptions) -> int:
        from zcache_forge.series import patchbuild

        use_distcc(opts.distcc)
        res = pipeline.build_patches(series_file, out, opts.series or None)
        checks = pipeline.check_patches(res) if check else {}
        booter = patchbuild.Booter(kernel.cache_dir() / "runs" / "patches", accel) if boot else None
        builds = patchbuild.build_every_patch(res, booter) if build else []
        built = {(p.series, p.number): p for sb in builds for p in sb.patches}
        rows = []
        for s in res.series:
            patches = [f for f in s.files if not checkpatch.is_cover(f)]
            for f in s.files:
                r = checks.get(str(f))
                pb = built.get((s.name, patches.index(f) + 1)) if f in patches else None
                rows.append([s.name, f"v{s.version}", f.name,
                             f"{r.errors}/{r.warnings}/{r.checks}" if r else "-",
                             f"{pb.status} {pb.seconds:.0f} s" if pb else "-",
                             *([pb.boot.cell() if pb and pb.boot else "-"] if boot else [])])
        data = {
            "kernel_base": res.kernel_base,
            "base_version": res.base_version,
            "base_notice": res.base_notice,
            "seconds": round(res.seconds, 2),
            "series": [{"name": s.name, "version": s.version, "branch": s.branch, "tip": s.tip,
                        "files": [str(f) for f in s.files]} for s in res.series],
            "checkpatch": {k: {"errors": v.errors, "warnings": v.warnings, "checks": v.checks}
                           for k, v in checks.items()},
            "builds": [p.to_dict() for sb in builds for p in sb.patches],
        }
        if as_json:
            print(jsonlib.dumps(data, indent=2))
        else:
            print(table(["series", "version", "file", "checkpatch E/W/C", "build",
                         *(["boot (smoke)"] if boot else [])], rows))
            print(f"kernel base {res.kernel_base[:12]} (Linux {res.base_version}); "
                  f"{sum(len(s.files) for s in res.series)} files in {res.seconds:.1f} s")
            if not build:
                print("not build-checked: `invoke build-patches --build` builds after every patch "
                      "(send-patches needs it)")
        bad = [r for r in checks.values() if not r.clean]
        for r in bad:
            print(f"checkpatch: {r.patch.name}: {r.errors} errors, {r.warnings} warnings\n{r.output}",
                  file=sys.stderr)
        failed = [p for sb in builds for p in sb.patches if not p.passed]
        for p in failed:
            what = "does not build" if p.status == "fail" else "builds with warnings in zcache's files"
            print(f"build: {p.series} patch {p.number} ({p.subject}) {what}:", file=sys.stderr)
            for m in p.messages:
                print(f"  {m}", file=sys.stderr)
            print(f"  full log: {p.log}", file=sys.stderr)
        unbooted = [p for sb in builds for p in sb.patches if p.boot and not p.boot.passed and p.passed]
        for p in unbooted:
            print(f"boot: {p.series} patch {p.number} ({p.subject}) failed its smoke boot:", file=sys.stderr)
            for reason in p.boot.reasons:
                print(f"  {reason}", file=sys.stderr)
            print(f"  console: {p.boot.console_log}", file=sys.stderr)
        if check:
            _record_check_stamps(res, checks)
        if build:
            _record_build_stamps(res, builds, boot)
        return EXIT_FAILED if bad or failed or unbooted else 0

    def check_options() -> options.BuildPatchesOptions:  # before the cache is touched
        opts = options.check(options.BuildPatchesOptions, series_file, series=only, boot=boot, accel=accel,
                             distcc=distcc_hosts)
        if boot and not build:
            raise ForgeError("--boot boots each patch's kernel: it needs --build")
        if opts.distcc and not build:
            raise ForgeError("--distcc spreads the kernel builds: it needs --build")
        return opts

    return _guard("build-patches", go, check_options)



def lab_options(lava: dict[str, str | None] | None) -> dict[str, str]:
    """The --lava-* options given (as options.RunnerOptions' lava_* fields), the token from
    $ZCF_LAVA_TOKEN when not given."""
    given = {k: v for k, v in (lava or {}).items() if v}
    if "token" not in given and os.environ.get(LAVA_TOKEN_ENV):
        given["token"] = os.environ[LAVA_TOKEN_ENV]
    return {f"lava_{k}": v for k, v in given.items()}


def check_lab(opts: options.RunnerOptions) -> None:
    """--runner lava needs every --lava-* option; the others go only with it."""
    lab = {k: getattr(opts, f"lava_{k}") for k in LAVA_LAB_OPTIONS}
    if opts.runner == "lava":
        missing = [f"--lava-{k.replace('_', '-')}" for k, v in lab.items() if not v]
        if missing:
            raise ForgeError(f"--runner lava: needs {', '.join(missing)} (the token may come from "
                             f"${LAVA_TOKEN_ENV})")
    elif any(v for k, v in lab.items() if k != "token"):
        raise ForgeError("--lava-url, --lava-artifacts and --lava-artifacts-url go with --runner lava")


def lab_config(opts: options.RunnerOptions) -> LabConfig | None:
    from zcache_forge.lava.server import LabConfig

    if opts.runner != "lava":
        return None
    return LabConfig(opts.lava_url, opts.lava_token, Path(opts.lava_artifacts), opts.lava_artifacts_url)


def qemu_test(series_file: Path, out: Path, scenario_names: list[str] | None, series: str | None,
              accel: str | None, as_json: bool, results_dir: Path, debug: bool = False,
              jobs: int | str | None = None, runner: str | None = None,
              distcc_hosts: str | None = None, lava: dict[str, str | None] | None = None) -> int:
    """lava: the lab for --runner lava (url, token, artifacts, artifacts_url)."""
    from zcache_forge import report
    from zcache_forge.guest import qemutest

    def go(opts: options.QemuTestOptions) -> int:
        t0 = time.monotonic()
        use_distcc(opts.distcc)
        chosen = qemutest.choose(opts.scenario or None, debug=debug)
        image = qemutest.build_kernel(series_file, out, opts.series, debug=debug)
        # one run directory per kernel config: a debug run keeps the normal run's logs
        runs = kernel.cache_dir() / "runs" / ("debug" if debug else "guest")
        res = qemutest.run_scenarios(image, chosen, runs, opts.accel, opts.jobs, opts.runner,
                                     lab_config(opts))
        data = res.to_dict()
        data["total_seconds"] = round(time.monotonic() - t0, 1)
        results_dir.mkdir(parents=True, exist_ok=True)
        kind = "-debug" if debug else ""
        path = results_dir / f"qemu-test-{image.series}-v{image.version}{kind}.json"
        path.write_text(jsonlib.dumps(data, indent=2) + "\n")
        if as_json:
            print(jsonlib.dumps(data, indent=2))
        else:
            print(report.render_table(res.results))
            print(f"{image.series} v{image.version} ({image.commit[:12]}), accelerator {res.accelerator}, "
                  f"runner {res.runner}, build {image.build.seconds:.0f} s, "
                  f"total {data['total_seconds']:.0f} s: "
                  f"{'PASS' if res.passed else 'FAIL'}; results in {path}")
        return 0 if res.passed else EXIT_FAILED

    def check_options() -> options.QemuTestOptions:
        opts = options.check(options.QemuTestOptions, series_file, scenarios.DEFAULT_FILE,
                             scenario=scenario_names, series=series, accel=accel, jobs=jobs, runner=runner,
                             distcc=distcc_hosts, **lab_options(lava))
        check_lab(opts)
        runners.check_scenarios(opts.runner, qemutest.choose(opts.scenario or None, debug=debug))
        return opts

    return _guard("qemu-test", go, check_options)


def bench(series_file: Path, out: Path, scenario_names: list[str] | None, backend_names: list[str] | None,
          reps: int | str | None, accel: str | None, as_json: bool, results_dir: Path, cover: bool,
          pool_percent: int | str | None = None, disk_names: list[str] | None = None,
          runner: str | None = None, lava: dict[str, str | None] | None = None) -> int:
    """runner: local (the default) or lava-run boot one guest at a time; lava submits the whole
    matrix to the lab (lava: url, token, artifacts, artifacts_url) as a batch of jobs."""
    from zcache_forge import bench as bench_mod
    from zcache_forge import report
    from zcache_forge import series as series_mod
    from zcache_forge.guest import qemutest

    def check() -> options.BenchOptions:  # every option, before the kernel build
        opts = options.check(options.BenchOptions, series_file, scenarios.DEFAULT_FILE,
                             scenario=scenario_names, backend=backend_names, reps=reps, accel=accel,
                             pool_percent=pool_percent, disk=disk_names, runner=runner, **lab_options(lava))
        check_lab(opts)
        known = {b.name: b for b in bench_mod.BACKENDS}
        asked = [known[b] for b in opts.backend] if opts.backend else list(bench_mod.DEFAULT_BACKENDS)
        chosen = qemutest.choose(opts.scenario or list(bench_mod.DEFAULT_SCENARIOS))
        bench_mod.check_runner(opts.runner, chosen, asked)
        if cover and series_mod.load(series_file).cover_results is None:
            raise ForgeError(f"{series_file}: cover_results: expected a file name for --cover's table, "
                             "found nothing")
        return opts

    def go(opts: options.BenchOptions) -> int:
        known = {b.name: b for b in bench_mod.BACKENDS}
        reps, accel = opts.reps, opts.accel
        pool = bench_mod.POOL_PERCENT_DEFAULT if opts.pool_percent is None else opts.pool_percent
        disks = bench_mod.choose_disks(opts.disk or None)
        backends = [known[b] for b in opts.backend] if opts.backend else list(bench_mod.DEFAULT_BACKENDS)
        chosen = qemutest.choose(opts.scenario or list(bench_mod.DEFAULT_SCENARIOS))
        sf = series_mod.load(series_file)
        image = qemutest.build_kernel(series_file, out)
        json_path = results_dir / "bench.json"

        def environment(res: bench_mod.BenchResult) -> dict[str, object]:
            boots = [r.result.boot for c in res.cells for r in c.runs if r.result.boot]
            return {
                "kernel_commit": image.commit, "series": image.series, "series_version": image.version,
                "config_hash": image.config_hash(), "accelerator": res.accelerator, "runner": opts.runner,
                "reps": reps,
                "compressor": sf.knobs.zcache.compressor, "pool_percent": pool,
                "guest_memory_mib": {sc.name: sc.memory_mib for sc in chosen},
                "kernel_release": boots[0].get("kernel") if boots else None,
            }

        def save(res: bench_mod.BenchResult) -> None:  # after every run: an interrupted bench keeps it
            bench_mod.write_json(json_path, res.to_dict(environment(res)))

        res = bench_mod.run_bench(image, chosen, backends, reps, kernel.cache_dir() / "bench", accel, pool,
                                  disks, on_run=save, runner=opts.runner, lab=lab_config(opts))
        data = res.to_dict(environment(res))
        bench_mod.write_json(json_path, data)
        md = report.markdown(res)
        env_line = (f"Measured by `invoke bench` on {image.series} v{image.version} ({image.commit[:12]}), "
                    f"kernel config {data['environment']['config_hash']}, QEMU {res.accelerator}"
                    f"{'' if opts.runner == 'local' else f' through --runner {opts.runner}'}, "
                    f"compressor {data['environment']['compressor']}, median of {reps} run(s) (min..max), "
                    f"zcache and zswap pool {pool}% of RAM.")
        (results_dir / "bench.md").write_text(env_line + "\n\n" + md)
        png = report.chart(res, results_dir / "bench.png")
        if cover and sf.cover_results is not None:
            sf.cover_results.write_text(report.cover_table(data))
            print(f"results for the cover letters written to {sf.cover_results}; "
                  "invoke build-patches puts them in", file=sys.stderr)
        if as_json:
            print(jsonlib.dumps(data, indent=2))
        else:
            print(env_line + "\n\n" + md)
            print(f"{'PASS' if res.passed else 'FAIL'} in {res.seconds:.0f} s; "
                  f"{json_path}, {results_dir / 'bench.md'}, {png}")
        return 0 if res.passed else EXIT_FAILED

    return _guard("bench", go, check)


def bench_loop(series_file: Path, accel: str | None, as_json: bool) -> int:
    """Time the edit loop: touch a template comment, build-patches, kernel rebuild, smoke boot, verdict."""
    from zcache_forge.bench import loop as benchloop

    def go(opts: options.BenchLoopOptions) -> int:
        res = benchloop.run_loop(series_file, kernel.cache_dir() / "runs" / "bench-loop", accel)
        if as_json:
            print(jsonlib.dumps(res.to_dict(), indent=2))
        else:
            rows = [[name, f"{secs:.1f}"] for name, secs in res.steps]
            rows.append(["total", f"{res.total:.1f}"])
            print(table(["step", "seconds"], rows))
            v = res.verdict
            print(f"checkpatch: {res.checkpatch_problems} errors and warnings over the series (timed, "
                  "not judged: build-patches reports them)")
            print(f"touched {res.touched}; warm-up build {res.warmup_seconds:.0f} s (not counted); "
                  f"accelerator {res.accelerator}; smoke {'PASS' if res.passed else 'FAIL'}"
                  f"{'' if v is None else f' in {v.seconds:.1f} s of guest time'}")
            for reason in v.reasons if v else []:
                print(f"smoke: {reason}")
        return 0 if res.passed else EXIT_FAILED

    return _guard("bench-loop", go, lambda: options.check(options.BenchLoopOptions, series_file, accel=accel))


def _record_check_stamps(res: pipeline.BuildResult, checks: dict[str, checkpatch.CheckResult]) -> None:
    """Stamp each exported version folder with its checkpatch outcome: send-patches needs a pass."""
    from zcache_forge.series import stamps

    for s in res.series:
        if not s.files:
            continue
        results = [checks[str(f)] for f in s.files if str(f) in checks]
        clean = len(results) == len(s.commits) and all(r.clean for r in results)
        stamps.record(s.files[0].parent, "checkpatch", clean, {
            "patches": len(results), "errors": sum(r.errors for r in results),
            "warnings": sum(r.warnings for r in results), "checks": sum(r.checks for r in results),
        })


def _record_build_stamps(res: pipeline.BuildResult, builds: list[patchbuild.SeriesBuild],
                         boot: bool = False) -> None:
    """Stamp each exported version folder with its build check: send-patches needs a pass.
    With boot, also the smoke boot of every patch (send-patches shows it)."""
    from zcache_forge.series import patchbuild, stamps

    by_name = {sb.name: sb for sb in builds}
    for s in res.series:
        sb = by_name.get(s.name)
        if not s.files or sb is None:
            continue
        stamps.record(s.files[0].parent, "build", sb.passed, {
            "config": "guest", "patches": len(sb.patches),
            "failed": [f"{p.number} {p.subject}: {p.status}" for p in sb.patches if not p.passed],
        })
        if boot:
            stamps.record(s.files[0].parent, "boot", sb.booted, {
                "scenario": patchbuild.BOOT_SCENARIO, "patches": len(sb.patches),
                "through_zcache": [p.number for p in sb.patches if p.boot and p.boot.through_zcache],
                "failed": [f"{p.number} {p.subject}: {'; '.join(p.boot.reasons) if p.boot else 'not booted'}"
                           for p in sb.patches if not (p.boot and p.boot.passed)],
                "seconds": [round(p.boot.seconds, 1) if p.boot else None for p in sb.patches],
            })


def send_patches(series_file: Path, out: Path, names: list[str] | None, send: bool, force: bool,
                 smtp_server: str | None, smtp_port: str | int | None, smtp_user: str | None,
                 dry_run: bool = False) -> int:
    """Show who gets which message, dry-run git send-email and check it; send only with send=True.
    dry_run (-n) asks for the default explicitly; together with send it is an error."""
    from zcache_forge import series as series_mod
    from zcache_forge.mail import preflight, sendmail
    from zcache_forge.series import export

    def check() -> options.SendPatchesOptions:
        if dry_run and send:
            raise ForgeError("--dry-run: expected either -n/--dry-run or --send, found both")
        return options.check(options.SendPatchesOptions, series_file, series=names, smtp_port=smtp_port)

    def go(opts: options.SendPatchesOptions) -> int:
        sf = series_mod.load(series_file)
        chosen = [sf.get(n) for n in opts.series] if opts.series else list(sf.series)
        cwd = series_file.parent
        smtp = sendmail.smtp_settings(cwd, smtp_server, opts.smtp_port, smtp_user)
        who = sendmail.sender(cwd, sf)
        missing = {s.name: preflight.unchecked(export.series_dir(out, s)) for s in chosen}
        blocked = [f"{export.series_dir(out, s)} ({', '.join(missing[s.name])})" for s in chosen
                   if missing[s.name]]
        if send and blocked and not force:
            raise ForgeError("refusing to send: checks have not passed for exactly these files: "
                             f"{'; '.join(blocked)}; run invoke build-patches --build (checkpatch clean, "
                             "every patch builds), or pass --force")
        for s in chosen:  # pre-flight checks of every series before any get_maintainer.pl run
            preflight.checked_patches(s, out)
        plans = [sendmail.make_plan(sf, s, out, who) for s in chosen]
        sent_before = [x for x in map(sendmail.already_sent, plans) if x]
        if send and sent_before and not force:
            raise ForgeError("refusing to send again: " + "; ".join(sent_before) + "; bump the version in "
                             f"{series_file.name}, or pass --force (the new send is added to the record)")
        for p in plans:
            print(sendmail.describe(p, smtp, missing[p.series]) + "\n")
        for x in sent_before:
            print(f"note: {x}; sending it again needs --force\n")
        prepared = [sendmail.prepare(p, smtp, cwd) for p in plans]  # all dry runs pass before any send
        total = sum(len(p.messages) for p in plans)
        if not send:
            for pr in prepared:
                print(f"--- git send-email --dry-run: {pr.plan.series} v{pr.plan.version} ---")
                print(pr.dry_log.rstrip() + "\n")
            print(f"dry run: nothing sent; {total} messages would go via {smtp.describe()}. "
                  "Pass --send to send them.")
            return 0
        for pr in prepared:
            print(f"--- git send-email: {pr.plan.series} v{pr.plan.version} ---")
            print(sendmail.send(pr, smtp, cwd).rstrip() + "\n")
        print(f"sent {total} messages via {smtp.describe()}")
        return 0

    return _guard("send-patches", go, check)
