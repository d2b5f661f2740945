"""build-patches against the real base (Debian's linux-source-6.1): what reviewers and bisect see.

Marked `kernel`: these import the kernel tarball and build it after every patch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from zcache_forge import checkpatch, cli, kernel, pipeline, stamps
from zcache_forge.run import run

from .conftest import ROOT
from .test_build_patches import snapshot

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> pipeline.BuildResult:
    out = tmp_path_factory.mktemp("patches")
    return pipeline.build_patches(ROOT / "series.yaml", out)


def test_committed_patches_match_a_fresh_run(generated):
    fresh = snapshot(generated.series[0].files[0].parent.parent.parent)
    committed = snapshot(ROOT / "patches")
    assert sorted(fresh) == sorted(committed)
    for name in fresh:
        assert fresh[name] == committed[name], f"patches/{name} differs from what build-patches writes now"


def test_git_am_reproduces_the_trees(generated, tmp_path):
    repo = kernel.work_repo()
    wt = kernel.cache_dir() / "am"
    kernel.checkout(repo, generated.kernel_base, wt)
    env = {**kernel.PLAIN_GIT_ENV, **kernel.ident_env("t", "t@t", "2020-01-01 00:00:00 +0000")}
    run(["git", "-C", wt, "checkout", "-q", "-B", "am-test", generated.kernel_base], env=env)
    try:
        for s in generated.series:
            patches = [f for f in s.files if not checkpatch.is_cover(f)]
            run(["git", "-C", wt, "am", "-q", *map(str, patches)], env=env, what=f"git am {s.name}")
            got = run(["git", "-C", wt, "rev-parse", "HEAD^{tree}"]).stdout.decode().strip()
            assert got == kernel.tree_of(repo, s.tip), f"git am of {s.name} gives another tree"
    finally:
        subprocess.run(["git", "-C", str(wt), "am", "--abort"], capture_output=True)


def test_build_patches_build_checks_every_patch_and_stamps(tmp_path, capsys):
    """`invoke build-patches --build`, for real: checkpatch --strict and a W=1 build of the
    guest config with zcache after each patch of both series (bisectability); both checks are
    stamped for exactly these files, which is what send-patches requires."""
    out = tmp_path / "patches"
    rc = cli.build_patches(ROOT / "series.yaml", out, None, True, True, build=True)
    data = json.loads(capsys.readouterr().out)
    builds = data["builds"]
    for b in builds:
        print(f"{b['series']} {b['number']}: {b['subject']}: {b['status']} in {b['seconds']} s")
    assert rc == 0, [b for b in builds if b["status"] != "pass"]
    assert [(b["series"], b["number"]) for b in builds] == [
        (s["name"], i) for s in data["series"] for i in range(1, len(s["files"]))]
    assert all(b["status"] == "pass" and b["messages"] == [] for b in builds)
    # checkpatch --strict ran once, in the same command: 0 errors, warnings and CHECKs per patch
    for name, counts in data["checkpatch"].items():
        print(f"{Path(name).name}: {counts}")
    assert len(data["checkpatch"]) == len(builds)
    assert all((c["errors"], c["warnings"], c["checks"]) == (0, 0, 0) for c in data["checkpatch"].values()), \
        data["checkpatch"]
    for s in data["series"]:
        stamp = stamps.load(out / s["name"] / f"v{s['version']}")
        assert stamp.missing() == [], stamp.checks
        assert stamp.checks["build"]["patches"] == len(s["files"]) - 1


def test_a_patch_that_breaks_the_build_is_named_with_the_error(tmp_path, capsys):
    """A template edit that breaks zbud: build-patches --build exits 1, names the zbud patch and
    the file:line the compiler gave, and stamps the staging series as not built."""
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "templates", proj / "templates")
    shutil.copy(ROOT / "bench-results.txt", proj / "bench-results.txt")
    # its own series name, so the cache's zcache-staging branches (range-diff bases) stay as they are
    data = yaml.safe_load((ROOT / "series.yaml").read_text())
    data["series"] = [{**data["series"][0], "name": "zcache-broken-build"}]
    (proj / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    zbud = proj / "templates" / "zcache" / "zbud.c.j2"
    text = zbud.read_text()
    anchor = "static unsigned int zbud_chunks(unsigned int size)\n{\n"
    assert anchor in text
    zbud.write_text(text.replace(anchor, anchor + "\tzbud_no_such_symbol++;\n"))
    out = tmp_path / "patches"
    rc = cli.build_patches(proj / "series.yaml", out, None, False, False, build=True)
    err = capsys.readouterr().err
    assert rc == 2  # a patch that does not build: exit 2
    assert "build: zcache-broken-build patch 2 (staging: zcache: add the zbud allocator)" in err, err
    assert re.search(r"drivers/staging/zcache/zbud\.c:\d+: error: .*zbud_no_such_symbol", err), err
    assert not stamps.load(out / "zcache-broken-build" / "v1").passed("build")
