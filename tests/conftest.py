"""Shared fixtures: a tiny git 'kernel' with the anchor lines the series edits, and a private cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

MINI_FILES = {
    "Makefile": "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\n",
    "MAINTAINERS": "STAGING - VIA VT665X DRIVERS\nS:\tOdd Fixes\nF:\tdrivers/staging/vt665?/\n\n"
                   "STAGING SUBSYSTEM\nS:\tSupported\nF:\tdrivers/staging/\n\n"
                   "Z3FOLD COMPRESSED PAGE ALLOCATOR\nF:\tmm/z3fold.c\n\n"
                   "ZD1211RW WIRELESS DRIVER\nS:\tMaintained\nF:\tdrivers/net/wireless/zydas/zd1211rw/\n",
    "drivers/staging/Kconfig": 'menuconfig STAGING\n\tbool "Staging"\n\nif STAGING\n\n'
                               'source "drivers/staging/vme_user/Kconfig"\n\nendif # STAGING\n',
    "drivers/staging/Makefile": "obj-$(CONFIG_QLGE)\t\t+= qlge/\n",
    "mm/Kconfig": 'config ZSWAP\n\tbool "zswap"\n\nconfig ZBUD\n\ttristate "zbud"\n',
    "mm/Makefile": "obj-$(CONFIG_ZSWAP)\t+= zswap.o\n",
    "Documentation/admin-guide/mm/index.rst": ".. toctree::\n\n   userfaultfd\n   zswap\n",
    # the lines the frontswap load-error patch replaces and annotates
    "mm/page_io.c": "int swap_readpage(struct page *page)\n{\n\tint ret = 0;\n\n"
                    "\tif (frontswap_load(page) == 0) {\n\t\tSetPageUptodate(page);\n"
                    "\t\tunlock_page(page);\n\t\tgoto out;\n\t}\nout:\n\treturn ret;\n}\n",
    "include/linux/frontswap.h": "struct frontswap_ops {\n"
                                 "\tint (*load)(unsigned, pgoff_t, struct page *); /* load a page */\n};\n",
}


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_AUTHOR_DATE": "2020-01-01 00:00 +0000",
           "GIT_COMMITTER_DATE": "2020-01-01 00:00 +0000", "PATH": "/usr/bin:/bin",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("ZCACHE_FORGE_CACHE", str(d))
    return d


@pytest.fixture
def mini_kernel(tmp_path) -> Path:
    tree = tmp_path / "linux"
    for name, text in MINI_FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    git(tree, "init", "-q", "-b", "master")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "mini kernel")
    git(tree, "tag", "v6.1")
    return tree


def make_project(root: Path, tree: Path) -> Path:
    """A copy of series.yaml + templates/ under root/proj whose base is `tree` (tag v6.1)."""
    proj = root / "proj"
    proj.mkdir()
    shutil.copytree(ROOT / "templates", proj / "templates")
    data = yaml.safe_load((ROOT / "series.yaml").read_text())
    data["base"] = {"tree": str(tree), "ref": "v6.1"}
    data.pop("cover_results", None)
    (proj / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return proj


@pytest.fixture
def project(tmp_path, mini_kernel, cache) -> Path:
    """A copy of series.yaml + templates/ whose base is the mini kernel."""
    return make_project(tmp_path, mini_kernel)


DATA = Path(__file__).resolve().parent / "data"


def recorded(name: str) -> str:
    """A console log recorded from a real run (tests/data/NAME.console.log), CR LF line ends kept."""
    return (DATA / f"{name}.console.log").read_bytes().decode()


def kunit_source() -> Path:
    """The kernel tree whose tools/testing/kunit parser reads KTAP: $ZCF_KUNIT_SRC, or the tree the tool
    checks out and builds from (<cache>/src). Looked up without creating anything."""
    if env := os.environ.get("ZCF_KUNIT_SRC"):
        return Path(env)
    return Path(os.environ.get("ZCACHE_FORGE_CACHE", Path.home() / ".cache" / "zcache-forge")) / "src"


@pytest.fixture
def kunit_tree(monkeypatch) -> Path:
    """The kernel tree with KUnit's KTAP parser, made ktap's default; the test is skipped without one."""
    from zcache_forge import ktap

    src = kunit_source()
    if not (src / ktap.PARSER).is_file():
        pytest.skip(f"no KUnit parser at {src / ktap.PARSER}: KTAP is read with the kernel's own parser; "
                    "check a kernel tree out there (invoke qemu-test does) or set ZCF_KUNIT_SRC")
    monkeypatch.setattr(ktap, "default_source", lambda: src)
    return src
