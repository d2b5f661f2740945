"""build-patches against the real base (Debian's linux-source-6.1): what reviewers and bisect see.

Marked `kernel`: these import the kernel tarball and build it after every patch."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from zcache_forge import cli, gitops, kernel, series
from zcache_forge.mail import sentrecord
from zcache_forge.run import run
from zcache_forge.series import baseversion, checkpatch, pipeline, stamps

from .conftest import ROOT
from .test_build_patches import snapshot

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> pipeline.BuildResult:
    out = tmp_path_factory.mktemp("patches")
    return pipeline.build_patches(ROOT / "series.yaml", out)


def test_committed_patches_match_a_fresh_run(generated):
    """Byte for byte on the point release patches/ was made on (series.yaml base.made_on); on
    another one (Debian ships every stable update), modulo what the base alone changes: the
    base-commit lines, the index lines and hunk line numbers (baseversion.normalize). Context and
    changed lines must still match: if a stable update changed those, patches/ needs regenerating."""
    made_on = series.load(ROOT / "series.yaml").base.made_on
    same_base = generated.base_version == made_on
    fresh = snapshot(generated.series[0].files[0].parent.parent.parent)
    committed = {k: v for k, v in snapshot(ROOT / "patches").items() if not k.endswith(sentrecord.FILE)}
    assert sorted(fresh) == sorted(committed)
    for name in fresh:
        if same_base:
            assert fresh[name] == committed[name], f"patches/{name} differs from what build-patches writes"
        else:
            got, want = (baseversion.normalize(x[name].decode()) for x in (fresh, committed))
            assert got == want, (f"patches/{name} differs from what build-patches writes on "
                                 f"{generated.base_version} by more than the base ({made_on}): a stable "
                                 "update changed what the series touches")


def fake_point_release(tmp: Path, sublevel: int) -> tuple[Path, str]:
    """A private cache whose kernel.git borrows the real cache's objects, and a bare 'user tree'
    holding the imported base with SUBLEVEL changed (another Debian point release, without
    repacking a tarball). Returns the tree and its ref."""
    real = kernel.work_repo()
    base = kernel.import_tarball(real, series.DEFAULT_TARBALL)  # the tests' tarball (conftest)
    cache = tmp / "cache"
    for git_dir in (cache / "kernel.git", tmp / "linux-6.1.x.git"):
        run(["git", "init", "-q", "--bare", git_dir])
        (git_dir / "objects" / "info" / "alternates").write_text(f"{Path(real.git_dir) / 'objects'}\n")
    tree = tmp / "linux-6.1.x.git"
    env = {**gitops.PLAIN_GIT_ENV, "GIT_INDEX_FILE": str(tmp / "index")}
    makefile = run(["git", "--git-dir", tree, "show", f"{base}:Makefile"]).stdout.decode()
    makefile = re.sub(r"^SUBLEVEL = \d+$", f"SUBLEVEL = {sublevel}", makefile, count=1, flags=re.M)
    blob = run(["git", "--git-dir", tree, "hash-object", "-w", "--stdin"], input=makefile.encode()).stdout
    run(["git", "--git-dir", tree, "read-tree", base], env=env)
    run(["git", "--git-dir", tree, "update-index", "--cacheinfo", f"100644,{blob.decode().strip()},Makefile"],
        env=env)
    new_tree = run(["git", "--git-dir", tree, "write-tree"], env=env).stdout.decode().strip()
    ident = kernel.ident_env("t", "t@t", "2026-01-01 00:00:00 +0000")
    commit = run(["git", "--git-dir", tree, "commit-tree", new_tree, "-p", base, "-m",
                  f"Linux 6.1.{sublevel}"], env=ident).stdout.decode().strip()
    run(["git", "--git-dir", tree, "update-ref", "refs/tags/fake", commit])
    return tree, "fake"


def test_build_patches_on_another_point_release(tmp_path, monkeypatch, caplog):
    """The base moved to another point release: build-patches says so in one line naming both
    versions, still writes the series, and only the base-commit lines differ from patches/."""
    made_on = series.load(ROOT / "series.yaml").base.made_on
    assert made_on
    other = int(made_on.split(".")[2]) + 1
    tree, ref = fake_point_release(tmp_path, other)
    monkeypatch.setenv("ZCACHE_FORGE_CACHE", str(tmp_path / "cache"))
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "templates", proj / "templates")
    shutil.copy(ROOT / "bench-results.txt", proj / "bench-results.txt")
    shutil.copytree(ROOT / "patches", proj / "patches")
    data = yaml.safe_load((ROOT / "series.yaml").read_text())
    data["base"] = {"tree": str(tree), "ref": ref, "made_on": made_on}
    (proj / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    committed = snapshot(proj / "patches")
    caplog.set_level(logging.INFO, logger="zcache_forge")
    res = pipeline.build_patches(proj / "series.yaml", proj / "patches")
    new_version = f"6.1.{other}"
    assert res.base_version == new_version
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [f"base is {new_version}, patches/ was made on {made_on}: base-commit lines will differ "
                    f"(series.yaml base.made_on now says {new_version})"]
    assert series.load(proj / "series.yaml").base.made_on == new_version
    fresh = snapshot(proj / "patches")
    assert sorted(fresh) == sorted(committed)
    for name in fresh:
        old, new = committed[name].decode().splitlines(), fresh[name].decode().splitlines()
        assert len(old) == len(new)
        differ = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
        if name.endswith("0000-cover-letter.patch"):
            assert len(differ) == 1 and all(x.startswith("base-commit: ") for x in differ[0]), differ
        else:
            assert differ == []


def test_send_patches_dry_run_on_a_fresh_clone(tmp_path, monkeypatch, capsys, caplog):
    """A clone of the project with a new cache: no branch, no build-patches. The dry run imports the
    base (here it finds the one the session imported), rebuilds both series from the committed
    patches/ and plans every message."""
    clone = tmp_path / "clone"
    for part in ("templates", "patches"):
        shutil.copytree(ROOT / part, clone / part)
    for part in ("series.yaml", "bench-results.txt"):
        shutil.copy(ROOT / part, clone / part)
    data = yaml.safe_load((clone / "series.yaml").read_text())
    if Path(data["base"]["tarball"]) != series.DEFAULT_TARBALL:  # the tests' tarball (conftest)
        data["base"]["tarball"] = str(series.DEFAULT_TARBALL)
        (clone / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    # A fresh clone, not a fresh machine: the new cache borrows the session's imported base (git
    # alternates plus the import's tag, no branch), so the test does not import the tarball again.
    session = kernel.work_repo()
    base_tag = kernel.import_tarball(session, series.DEFAULT_TARBALL) and next(
        r for r in session.git.for_each_ref("--format=%(refname)", "refs/tags/zcache-forge/base").split()
        if series.DEFAULT_TARBALL.name in r)
    monkeypatch.setenv("ZCACHE_FORGE_CACHE", str(tmp_path / "cache"))
    fresh = kernel.work_repo()
    (Path(fresh.git_dir) / "objects/info/alternates").write_text(f"{Path(session.git_dir) / 'objects'}\n")
    fresh.git.update_ref(base_tag, session.git.rev_parse(base_tag))
    assert not fresh.git.for_each_ref("refs/heads"), "a fresh cache has no series branch"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    caplog.set_level(logging.INFO, logger="zcache_forge")
    rc = cli.send_patches(clone / "series.yaml", clone / "patches", None, False, False, "127.0.0.1", "25",
                          None)
    out = capsys.readouterr().out
    assert rc == 0, out
    rebuilt = [r.getMessage() for r in caplog.records if "no branch in the cache; rebuilt" in r.getMessage()]
    assert len(rebuilt) == 2, rebuilt
    # one message per file of patches/, cover letters included (14 + 3 with ramster)
    messages = len(list((clone / "patches").glob("*/v1/*.patch")))
    assert out.count("Dry-OK. Log says:") == messages and f"dry run: nothing sent; {messages} messages" in out
    assert "Greg Kroah-Hartman <gregkh@linuxfoundation.org>" in out and "corbet@lwn.net" in out


def test_git_am_reproduces_the_trees(generated, tmp_path):
    repo = kernel.work_repo()
    wt = kernel.cache_dir() / "am"
    kernel.checkout(repo, generated.kernel_base, wt)
    env = {**gitops.PLAIN_GIT_ENV, **kernel.ident_env("t", "t@t", "2020-01-01 00:00:00 +0000")}
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
    # patch 1 brings cleancache back, 2 is tmem, 3 is zbud
    assert "build: zcache-broken-build patch 3 (staging: zcache: add the zbud allocator)" in err, err
    assert re.search(r"drivers/staging/zcache/zbud\.c:\d+: error: .*zbud_no_such_symbol", err), err
    assert not stamps.load(out / "zcache-broken-build" / "v1").passed("build")
