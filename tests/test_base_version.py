"""The point release patches/ was made on (base.made_on), and the tarball import's progress."""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from zcache_forge import cli, kernel, series
from zcache_forge.errors import ForgeError
from zcache_forge.run import Progress
from zcache_forge.series import baseversion, pipeline

from .conftest import MINI_FILES, ROOT, git
from .test_build_patches import edit, snapshot


def made_on(proj: Path) -> str | None:
    return (yaml.safe_load((proj / "series.yaml").read_text()).get("base") or {}).get("made_on")


def test_the_committed_series_file_records_its_point_release():
    assert series.load(ROOT / "series.yaml").base.made_on == "6.1.192"


def test_build_patches_records_the_version_of_the_base(project, capsys):
    assert made_on(project) is None
    assert cli.build_patches(project / "series.yaml", project / "patches", None, False, False) == 0
    assert made_on(project) == "6.1.0"  # the mini kernel's Makefile
    out = capsys.readouterr()
    assert "(Linux 6.1.0)" in out.out and "base is" not in out.err
    before = (project / "series.yaml").read_text()
    assert cli.build_patches(project / "series.yaml", project / "patches", None, False, False) == 0
    assert (project / "series.yaml").read_text() == before


def test_another_point_release_is_named_in_one_line_and_still_builds(project, mini_kernel, caplog):
    """patches/ made on 6.1.0; the base moves to 6.1.1 (a stable update): build-patches says so in one
    line naming both, rewrites the base-commit lines, and records the new version."""
    assert cli.build_patches(project / "series.yaml", project / "patches", None, False, False) == 0
    old = snapshot(project / "patches")
    (mini_kernel / "Makefile").write_text(MINI_FILES["Makefile"].replace("SUBLEVEL = 0", "SUBLEVEL = 1"))
    git(mini_kernel, "commit", "-q", "-am", "Linux 6.1.1")
    git(mini_kernel, "tag", "-f", "v6.1")
    caplog.clear()
    assert cli.build_patches(project / "series.yaml", project / "patches", None, False, False) == 0
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == ["base is 6.1.1, patches/ was made on 6.1.0: base-commit lines will differ "
                    "(series.yaml base.made_on now says 6.1.1)"]
    assert made_on(project) == "6.1.1"
    new = snapshot(project / "patches")
    assert sorted(new) == sorted(old)
    changed = {name for name in new if new[name] != old[name]}
    assert changed == {f"{name}/v1/0000-cover-letter.patch" for name in ("zcache-staging", "zcache-promote")}
    for name in new:
        assert baseversion.normalize(new[name].decode()) == baseversion.normalize(old[name].decode())


def test_an_export_elsewhere_does_not_touch_the_series_file(project, tmp_path, capsys):
    edit(project, lambda d: d["base"].update(made_on="6.1.192"))
    before = (project / "series.yaml").read_text()
    res = pipeline.build_patches(project / "series.yaml", tmp_path / "elsewhere")
    assert res.base_notice == "base is 6.1.0, patches/ was made on 6.1.192: base-commit lines will differ"
    assert (project / "series.yaml").read_text() == before


def test_record_keeps_the_comments_of_the_series_file(tmp_path):
    f = tmp_path / "series.yaml"
    shutil.copy(ROOT / "series.yaml", f)
    text = f.read_text()
    baseversion.record(f, "6.1.193")
    assert f.read_text() == text.replace('made_on: "6.1.192"', 'made_on: "6.1.193"')
    f.write_text(text.replace('  made_on: "6.1.192"\n', ""))
    baseversion.record(f, "6.1.194")
    assert f.read_text() == text.replace('made_on: "6.1.192"', 'made_on: "6.1.194"')
    f.write_text("author: {name: a, email: a@b}\n")
    baseversion.record(f, "6.1.1")
    assert yaml.safe_load(f.read_text())["base"] == {"made_on": "6.1.1"}


def test_made_on_must_be_a_version(project):
    edit(project, lambda d: d["base"].update(made_on=6.1))
    expected = r"base\.made_on: expected a kernel version like '6\.1\.192'"
    with pytest.raises(ForgeError, match=expected + ", found 6"):
        series.load(project / "series.yaml")
    edit(project, lambda d: d["base"].update(made_on="six"))
    with pytest.raises(ForgeError, match=expected):
        series.load(project / "series.yaml")


def test_normalize_keeps_what_the_patch_changes():
    a = "base-commit: " + "a" * 40 + "\nindex 1234..5678 100644\n@@ -10,6 +10,8 @@ int f(void)\n+x\n ctx\n"
    b = "base-commit: " + "b" * 40 + "\nindex 9abc..def0 100644\n@@ -12,6 +12,8 @@ int f(void)\n+x\n ctx\n"
    assert baseversion.normalize(a) == baseversion.normalize(b)
    assert baseversion.normalize(a) != baseversion.normalize(b.replace("+x", "+y"))


# --- the tarball import's progress -------------------------------------------------------------


def mini_tarball(tmp_path: Path, sublevel: int = 7) -> Path:
    """The mini kernel as an uncompressed tarball with one top-level directory, as Debian's."""
    tar = tmp_path / "linux-source-6.1.tar"
    with tarfile.open(tar, "w") as t:
        for d in ("linux-source-6.1", "linux-source-6.1/mm"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            t.addfile(info)
        for name, text in MINI_FILES.items():
            data = text.replace("SUBLEVEL = 0", f"SUBLEVEL = {sublevel}").encode()
            info = tarfile.TarInfo(f"linux-source-6.1/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return tar


def test_import_shows_progress_and_reads_the_version(tmp_path, cache, capsys):
    repo = kernel.work_repo()
    commit = kernel.import_tarball(repo, mini_tarball(tmp_path))
    err = capsys.readouterr().err
    n = len(MINI_FILES)
    assert f"zcache-forge: unpacking linux-source-6.1.tar: {n}, done in" in err, err
    assert f"zcache-forge: adding Linux 6.1.7 to kernel.git: {n}/{n} (100%), done in" in err, err
    assert "\r" not in err  # not a terminal: plain lines
    assert kernel.version_at(repo, commit) == "6.1.7"
    assert kernel.import_tarball(repo, mini_tarball(tmp_path)) == commit  # once
    assert capsys.readouterr().err == ""


def test_progress_rewrites_one_line_on_a_terminal_and_prints_lines_otherwise():
    tty = io.StringIO()
    p = Progress("adding", 4, stream=tty, every=0, tty=True)
    for _ in range(4):
        p.last = 0.0
        p.step()
    p.done()
    assert tty.getvalue().count("\r") == 5 and tty.getvalue().count("\n") == 1
    assert "\rzcache-forge: adding: 2/4 (50%)" in tty.getvalue()
    plain = io.StringIO()
    p = Progress("adding", 4, stream=plain, every=0, tty=False)
    for _ in range(4):
        p.last = -1.0
        p.step()
    p.done()
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and lines[:4] == [f"zcache-forge: adding: {i}/4 ({25 * i}%)"
                                                         for i in range(1, 5)]
    assert lines[4].startswith("zcache-forge: adding: 4/4 (100%), done in")
