"""invoke tasks: parse options, call zcache_forge, print. No logic lives here.

No automatic short flags (invoke would make `-n` mean --send, and `-s` differ per task): the only
short flags are the ones named in `short=` below, chosen after git's habits. Options are passed
on as given; zcache_forge.cli checks them all before any work starts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from invoke import Task, task

from zcache_forge import cli

ROOT = Path(__file__).resolve().parent


class ForgeTask(Task):
    """A task without invoke's automatic short flags; `short` maps an option to its one short flag."""

    def __init__(self, body: Any, short: dict[str, str] | None = None, **kwargs: Any) -> None:
        kwargs["auto_shortflags"] = False
        super().__init__(body, **kwargs)
        self.short = short or {}

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name in self.short:
            opts["names"].append(self.short[name])
        return opts


@task(klass=ForgeTask, iterable=["series"], short={"out": "o"}, help={
    "series_file": "the series YAML (default: series.yaml)",
    "series": "export only this series (repeatable; default: all)",
    "out": "where patches/<series>/v<N>/ go (default: patches/; -o as git format-patch)",
    "check": "run checkpatch --strict on the result (default: on)",
    "json": "print the result as JSON instead of a table",
    "build": "also build the guest kernel after every patch (W=1; zcache's files must not warn); "
             "send-patches needs this check",
    "boot": "with --build: also boot each patch's kernel on the smoke scenario (through zcache once it "
            "registers); stamped, send-patches shows it",
    "accel": "with --boot: tcg or kvm (default: probe)",
    "distcc": "with --build: distcc hosts (host[:port][/limit], as DISTCC_HOSTS) for ccache's misses",
})
def build_patches(c, series_file="series.yaml", series=None, out="patches", check=True, json=False,
                  build=False, boot=False, accel=None, distcc=None):
    """Render zcache from templates, commit it on the kernel base, export with git format-patch."""
    sys.exit(cli.build_patches(ROOT / series_file, ROOT / out, series or None, check, json, build,
                               boot, accel, distcc))



@task(klass=ForgeTask, iterable=["scenario"], short={"jobs": "j"}, help={
    "scenario": "run this scenario (repeatable; default: basic, mixed, random, concurrent, thp, memcg, "
                "swap-devices, load-fail)",
    "series": "boot the tip of this series (default: the last one in the series file)",
    "series_file": "the series YAML (default: series.yaml)",
    "accel": "tcg or kvm (default: probe for a KVM that really boots, else tcg)",
    "json": "print the results as JSON instead of a table",
    "debug": "build and boot the debug kernel (KASAN, lockdep, DEBUG_VM, fault injection)",
    "jobs": "host CPUs for guests: run scenarios side by side within them (default 1: one guest at "
            "a time, so each guest's seconds are its own)",
    "runner": "local (QEMU here, the default), lava-run (each scenario a LAVA job run by this machine's "
              "lava-dispatcher, as a lab's worker runs it) or lava (submitted to a LAVA server: --lava-*)",
    "distcc": "distcc hosts (host[:port][/limit], as DISTCC_HOSTS) for the kernel build's ccache misses",
    "lava_url": "with --runner lava: the LAVA server's URL",
    "lava_token": "with --runner lava: an API token (default: $ZCF_LAVA_TOKEN)",
    "lava_artifacts": "with --runner lava: a directory your HTTP server serves; the images are copied there",
    "lava_artifacts_url": "with --runner lava: the URL the lab's workers reach that directory at",
})
def qemu_test(c, scenario=None, series=None, series_file="series.yaml", accel=None, json=False, debug=False,
              jobs=None, runner=None, distcc=None, lava_url=None, lava_token=None, lava_artifacts=None,
              lava_artifacts_url=None):
    """Build the patched kernel, boot it in QEMU under memory pressure, verify every page."""
    sys.exit(cli.qemu_test(ROOT / series_file, ROOT / "patches", scenario or None, series, accel, json,
                           ROOT / "results", debug, jobs, runner, distcc,
                           {"url": lava_url, "token": lava_token, "artifacts": lava_artifacts,
                            "artifacts_url": lava_artifacts_url}))


@task(klass=ForgeTask, iterable=["scenario", "backend", "disk"], help={
    "scenario": "bench this scenario (repeatable; default: bench-mixed, bench-zero, bench-text)",
    "backend": "zcache, zswap-zbud, zswap-zsmalloc or plain-swap (repeatable; default: all four), or ramster "
               "(zcache with a peer guest its pool remotifies pages to: two guests per run; never a default)",
    "reps": "repetitions per backend, scenario and disk (default 3; figures are medians)",
    "accel": "tcg or kvm (default: probe)",
    "json": "print the results as JSON instead of tables",
    "cover": "also write the table to the series file's cover_results file, for the cover letters",
    "pool_percent": "RAM share, in percent, that zcache and zswap may each take (default 20)",
    "disk": "swap-disk model: ssd (SATA SSD, 450 MiB/s, 10,000 IOPS), hdd (7,200 rpm, 150 MiB/s, "
            "150 IOPS) or host (unthrottled host file) (repeatable; default: ssd and host)",
    "runner": "local (QEMU here, one guest at a time, the default), lava-run (each run a LAVA job run by "
              "this machine's lava-dispatcher, one at a time) or lava (the whole matrix submitted to a LAVA "
              "server as a batch of jobs, gathered as they finish: --lava-*)",
    "lava_url": "with --runner lava: the LAVA server's URL",
    "lava_token": "with --runner lava: an API token (default: $ZCF_LAVA_TOKEN)",
    "lava_artifacts": "with --runner lava: a directory your HTTP server serves; the images are copied there",
    "lava_artifacts_url": "with --runner lava: the URL the lab's workers reach that directory at",
})
def bench(c, scenario=None, backend=None, reps=None, accel=None, json=False, cover=False,
          series_file="series.yaml", pool_percent=None, disk=None, runner=None, lava_url=None,
          lava_token=None, lava_artifacts=None, lava_artifacts_url=None):
    """zcache against zswap (zbud, zsmalloc) and plain swap: same kernel, same scenarios, each disk model."""
    sys.exit(cli.bench(ROOT / series_file, ROOT / "patches", scenario or None, backend or None, reps, accel,
                       json, ROOT / "results", cover, pool_percent, disk or None, runner,
                       {"url": lava_url, "token": lava_token, "artifacts": lava_artifacts,
                        "artifacts_url": lava_artifacts_url}))


@task(klass=ForgeTask, help={
    "series_file": "the series YAML (default: series.yaml; a temporary copy is edited, never this one)",
    "accel": "tcg or kvm (default: probe, which is timed as a step)",
    "json": "print the figures as JSON",
})
def bench_loop(c, series_file="series.yaml", accel=None, json=False):
    """Time the edit loop: touch a zcache template comment, build-patches, rebuild, boot smoke, verdict."""
    sys.exit(cli.bench_loop(ROOT / series_file, accel, json))


@task(klass=ForgeTask)
def setup(c):
    """Install what the tool needs on Debian 12 (apt and pip packages); idempotent."""
    c.run(f"sh {ROOT / 'setup.sh'}")


@task(klass=ForgeTask, iterable=["series"], short={"dry_run": "n"}, help={
    "series": "send this series (repeatable; default: all, in series file order)",
    "series_file": "the series YAML (default: series.yaml)",
    "dry_run": "only show what would be sent (the default; -n as git send-email; an error with --send)",
    "send": "really send (no short form; default: dry run, which only shows what would be sent)",
    "force": "send even if the checks have not passed for exactly these files, or the version was "
             "already sent (patches/<series>/v<N>/sent.yaml)",
    "smtp_server": "SMTP server (default: git config sendemail.smtpServer)",
    "smtp_port": "SMTP port (default: git config sendemail.smtpServerPort)",
    "smtp_user": "SMTP user (default: git config sendemail.smtpUser; password from "
                 "$ZCACHE_FORGE_SMTP_PASSWORD or sendemail.smtpPass)",
})
def send_patches(c, series=None, series_file="series.yaml", dry_run=False, send=False, force=False,
                 smtp_server=None, smtp_port=None, smtp_user=None):
    """Mail patches/<series>/v<N>/ with git send-email: get_maintainer.pl recipients, threaded."""
    sys.exit(cli.send_patches(ROOT / series_file, ROOT / "patches", series or None, send, force,
                              smtp_server, smtp_port, smtp_user, dry_run))
