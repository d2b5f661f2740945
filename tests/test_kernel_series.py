"""build-patches against the real base (Debian's linux-source-6.1): what reviewers and bisect see.

Marked `kernel`: these import the kernel tarball and build it after every patch."""

from __future__ import annotations

import subprocess

import pytest

from zcache_forge import build, checkpatch, kernel, pipeline
from zcache_forge.run import run

from .conftest import ROOT
from .test_build_patches import snapshot

pytestmark = pytest.mark.kernel

ZCACHE_DIRS = ("drivers/staging/zcache/", "mm/zcache/")


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


def test_checkpatch_strict_is_clean(generated):
    repo = kernel.work_repo()
    tree = kernel.checkout(repo, generated.series[-1].tip, kernel.cache_dir() / "src")
    results = [r for s in generated.series for r in checkpatch.check_series(tree, s.files)]
    assert len(results) == sum(len(s.commits) for s in generated.series)
    for r in results:
        print(f"{r.patch.name}: {r.errors} errors, {r.warnings} warnings, {r.checks} checks")
        assert (r.errors, r.warnings, r.checks) == (0, 0, 0), r.output


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

def test_every_patch_builds_without_zcache_warnings(generated):
    """Bisectability: the guest config with zcache builds (W=1) after each patch of both series."""
    repo = kernel.work_repo()
    frags = [ROOT / "kconfig" / "guest.config", ROOT / "kconfig" / "zcache.config"]
    out = kernel.cache_dir() / "build" / "guest"
    for s in generated.series:
        for commit in s.commits:
            subject = repo.commit(commit).summary
            src = kernel.checkout(repo, commit, kernel.cache_dir() / "src")
            b = build.build(src, out, "guest", frags)
            print(f"{subject}: {b.targets} in {b.seconds:.0f} s")
            errors = [d for d in b.diagnostics if d.kind == "error"]
            assert b.ok, f"build fails after '{subject}': {errors[:5]} (log: {b.log})"
            assert b.diagnostics_in(ZCACHE_DIRS) == [], f"warnings after '{subject}'"
            assert b.image.is_file()
