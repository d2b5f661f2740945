"""build-patches on a tiny git kernel: fast checks of the pipeline's behaviour (no kernel build)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from zcache_forge import cli, kernel
from zcache_forge.series import pipeline

from .conftest import ROOT, git


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_writes_both_series_with_cover_letters(project):
    res = pipeline.build_patches(project / "series.yaml", project / "patches")
    staging = project / "patches" / "zcache-staging" / "v1"
    promote = project / "patches" / "zcache-promote" / "v1"
    assert [p.name[:4] for p in sorted(staging.iterdir())] == [f"{i:04d}" for i in range(14)]
    cover = (staging / "0000-cover-letter.patch").read_text()
    assert "*** SUBJECT HERE ***" not in cover and "*** BLURB HERE ***" not in cover
    assert "Subject: [PATCH 00/13] staging: add the zcache compressed swap cache" in cover
    assert f"base-commit: {res.kernel_base}" in cover
    assert "change-id: 20261127-zcache-staging-7d3e91" in cover
    assert "To: linux-mm@kvack.org" in cover
    promote_cover = (promote / "0000-cover-letter.patch").read_text()
    assert promote_cover.count("prerequisite-patch-id:") == 13
    for p in sorted(staging.glob("*.patch"))[1:]:
        assert "Signed-off-by: Zcache Forge <zcache-forge@example.org>" in p.read_text()


def test_promote_moves_files_as_renames(project):
    pipeline.build_patches(project / "series.yaml", project / "patches")
    move = next((project / "patches" / "zcache-promote" / "v1").glob("0001-*.patch")).read_text()
    for name in ("tmem.c", "zbud.c", "zcache-main.c", "debug.c", "stats.c", "tmem_test.c", "zbud_test.c",
                 "ramster.c", "ramster.h", "ramster_test.c"):
        assert f"rename from drivers/staging/zcache/{name}\nrename to mm/zcache/{name}" in move
    assert re.search(r"similarity index 100%\nrename from drivers/staging/zcache/tmem.c", move)
    assert "deleted file mode 100644\nindex" in move  # the TODO goes


def test_kunit_tests_come_after_the_code_they_test(project):
    pipeline.build_patches(project / "series.yaml", project / "patches")
    folder = project / "patches" / "zcache-staging" / "v1"
    patches = [p.read_text() for p in sorted(folder.glob("*.patch"))[1:]]
    kunit, ramster, ramster_kunit = patches[10:]
    assert kunit.startswith("From ") and "Subject: [PATCH 11/13] staging: zcache: add KUnit tests" in kunit
    assert kunit.count("new file mode 100644") == 2
    for name in ("tmem_test.c", "zbud_test.c"):
        assert f"--- /dev/null\n+++ b/drivers/staging/zcache/{name}" in kunit
        assert f"+F:\tdrivers/staging/zcache/{name}" in kunit
    assert "+config ZCACHE_KUNIT_TEST" in kunit
    assert "+zcache-$(CONFIG_ZCACHE_KUNIT_TEST) += tmem_test.o zbud_test.o" in kunit
    assert "+- Keep running the KUnit tests and the memory-pressure tests" in kunit  # the TODO follows
    assert not any("KUNIT_TEST" in p or "_test.c" in p for p in patches[:10])
    assert "Subject: [PATCH 12/13] staging: zcache: keep swap pages in a peer" in ramster
    assert "Subject: [PATCH 13/13] staging: zcache: add KUnit tests for ramster" in ramster_kunit
    assert "--- /dev/null\n+++ b/drivers/staging/zcache/ramster_test.c" in ramster_kunit
    # the ramster counters come with ramster, not before
    assert not any("remote_puts" in p for p in patches[:11]) and "ZCACHE_STAT_REMOTE_PUTS" in ramster


def test_second_run_is_byte_identical(project):
    pipeline.build_patches(project / "series.yaml", project / "patches")
    first = snapshot(project / "patches")
    pipeline.build_patches(project / "series.yaml", project / "patches")
    assert snapshot(project / "patches") == first


def test_user_tree_is_not_touched(project, mini_kernel):
    before = (git(mini_kernel, "for-each-ref"), git(mini_kernel, "status", "--porcelain"),
              git(mini_kernel, "rev-parse", "HEAD"))
    pipeline.build_patches(project / "series.yaml", project / "patches")
    after = (git(mini_kernel, "for-each-ref"), git(mini_kernel, "status", "--porcelain"),
             git(mini_kernel, "rev-parse", "HEAD"))
    assert after == before


def test_version_bump_keeps_the_old_version_and_notes_changes(project):
    pipeline.build_patches(project / "series.yaml", project / "patches")
    v1 = snapshot(project / "patches" / "zcache-staging" / "v1")
    data = yaml.safe_load((project / "series.yaml").read_text())
    s = data["series"][0]
    s["version"] = 2
    s["changelog"] = {2: "- zbud: pick the fullest frame that fits"}
    s["patches"][2]["changes"] = {2: "pick the fullest frame that fits"}
    (project / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    pipeline.build_patches(project / "series.yaml", project / "patches")
    assert snapshot(project / "patches" / "zcache-staging" / "v1") == v1
    v2 = project / "patches" / "zcache-staging" / "v2"
    cover = (v2 / "v2-0000-cover-letter.patch").read_text()
    assert "Subject: [PATCH v2 00/13]" in cover and "Changes in v2:\n- zbud: pick" in cover
    zbud = next(v2.glob("v2-0003-*.patch")).read_text()
    head, _, rest = zbud.partition("\n---\n")
    assert "pick the fullest" not in head  # below the '---', not in the commit message
    assert "v2: pick the fullest frame that fits" in rest.split("diff --git")[0]


def run_cli(project: Path, capsys) -> tuple[int, str]:
    rc = cli.build_patches(project / "series.yaml", project / "patches", None, False, False)
    return rc, capsys.readouterr().err


def edit(project: Path, fn) -> None:
    data = yaml.safe_load((project / "series.yaml").read_text())
    fn(data)
    (project / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def check_bad(project, capsys, expect: str) -> None:
    (project / "patches").mkdir(exist_ok=True)
    (project / "patches" / "keep.txt").write_text("mine")
    before = snapshot(project / "patches")
    rc, err = run_cli(project, capsys)
    assert rc == 1
    first = err.strip().splitlines()[-1] if "error:" not in err else err[err.index("error:"):]
    assert expect in first, err
    assert snapshot(project / "patches") == before


def test_yaml_syntax_error(project, capsys):
    (project / "series.yaml").write_text("author: [unclosed\n")
    check_bad(project, capsys, "series.yaml:2:1: YAML syntax error")


def test_unknown_key(project, capsys):
    edit(project, lambda d: d["series"][0].update(colour="blue"))
    check_bad(project, capsys, "series[0].colour: expected one of the keys base, change_id")


def test_missing_required_field(project, capsys):
    edit(project, lambda d: d["series"][1]["patches"][0].pop("subject"))
    check_bad(project, capsys, "series[1].patches[0].subject: expected a value, found nothing")


def test_undefined_template_variable(project, capsys):
    t = project / "templates" / "zcache" / "zbud.c.j2"
    t.write_text(t.read_text() + "/* {{ no_such_knob }} */\n")
    check_bad(project, capsys, "templates/zcache/zbud.c.j2:")
    check_bad(project, capsys, "'no_such_knob' is undefined")


def test_base_ref_that_does_not_exist(project, capsys):
    edit(project, lambda d: d["base"].update(ref="v9.9"))
    check_bad(project, capsys, "base.ref: 'v9.9' does not exist in")


def test_dirty_user_tree(project, mini_kernel, capsys):
    (mini_kernel / "mm" / "Makefile").write_text("dirty\n")
    check_bad(project, capsys, "has uncommitted changes")


def test_staged_change_in_user_tree(project, mini_kernel, capsys):
    (mini_kernel / "mm" / "Makefile").write_text("dirty\n")
    git(mini_kernel, "add", "mm/Makefile")
    check_bad(project, capsys, "has uncommitted changes")


def test_bare_user_tree(tmp_path, mini_kernel, cache):
    """A bare repository has no work tree to be dirty: its ref is used as it is."""
    bare = tmp_path / "linux.git"
    git(tmp_path, "clone", "-q", "--bare", str(mini_kernel), str(bare))
    repo = kernel.work_repo()
    assert kernel.user_tree_commit(repo, bare, "v6.1") == git(mini_kernel, "rev-parse", "v6.1^{commit}")


def test_bad_compressor_and_anchor(project, capsys):
    edit(project, lambda d: d["knobs"]["zcache"].update(compressor="gzip9"))
    check_bad(project, capsys, "knobs.zcache.compressor: expected one of lzo, lzo-rle, lz4, lz4hc, deflate, "
              "zstd, 842, found 'gzip9'")
    edit(project, lambda d: d["knobs"]["zcache"].update(compressor="lzo"))
    (project / "templates" / "zcache" / "x").write_text("")
    edit(project, lambda d: d["series"][0]["patches"][1]["ops"][6].update(after="source \"nowhere\""))
    check_bad(project, capsys, "anchor line 'source \"nowhere\"' found 0 times in drivers/staging/Kconfig")


def test_invoke_lists_the_tasks():
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "build-patches" in out


def test_a_patch_before_the_one_adding_an_option_is_not_held_to_it(mini_kernel):
    # The build after each patch checks every option of the fragments, except one whose symbol the
    # tree does not define yet (CONFIG_ZCACHE before the tmem patch, CONFIG_CLEANCACHE before
    # cleancache's): the mini kernel defines ZSWAP and ZBUD, not ZCACHE.
    from zcache_forge.kernel import build

    assert build.defined_in_tree(mini_kernel, "CONFIG_ZSWAP")
    assert build.defined_in_tree(mini_kernel, "ZBUD")
    assert not build.defined_in_tree(mini_kernel, "CONFIG_ZCACHE")
    assert not build.defined_in_tree(mini_kernel, "CONFIG_ZSWA")  # a prefix is not the symbol
