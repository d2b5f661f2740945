"""invoke tasks: parse options, call zcache_forge, print. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import task

from zcache_forge import cli

ROOT = Path(__file__).resolve().parent


@task(help={
    "series_file": "the series YAML (default: series.yaml)",
    "series": "export only this series (repeatable; default: all)",
    "out": "where patches/<series>/v<N>/ go (default: patches/)",
    "check": "run checkpatch --strict on the result (default: on)",
    "json": "print the result as JSON instead of a table",
})
def build_patches(c, series_file="series.yaml", series=None, out="patches", check=True, json=False):
    """Render zcache from templates, commit it on the kernel base, export with git format-patch."""
    sys.exit(cli.build_patches(ROOT / series_file, ROOT / out, series and [series], check, json))



@task
def setup(c):
    """Install what the tool needs on Debian 12 (apt and pip packages); idempotent."""
    c.run(f"sh {ROOT / 'setup.sh'}")
