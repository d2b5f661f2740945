"""Shared fixtures: the session's own cache, a tiny git 'kernel' with the anchor lines the series
edits, a private cache per test, and files of the real Linux 6.1 base (skipped without it).

The tests never use the user's cache (~/.cache/zcache-forge or $ZCACHE_FORGE_CACHE): before any
test runs, `session_cache` points ZCACHE_FORGE_CACHE at a directory of this run only, holds its
lock for the whole run, so that every kernel-marked test shares one kernel.git import, one build
directory per config and one ccache. The fast tests need neither the tarball nor a kernel tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from zcache_forge import cachelock, series
from zcache_forge.errors import ForgeError

ROOT = Path(__file__).resolve().parent.parent

# Environment of the test run (see README, "Tests").
TEST_CACHE_ENV = "ZCACHE_FORGE_TEST_CACHE"  # parent of the per-run caches (default: pytest's basetemp)
TEST_TARBALL_ENV = "ZCACHE_FORGE_TEST_TARBALL"  # where the tests look for the 6.1 tarball
KEEP_ENV = "ZCACHE_FORGE_TEST_KEEP"  # 1: keep the run's cache even when every test passed

# The user's cache, as the tool would choose it outside the tests; read at import, before the
# session replaces ZCACHE_FORGE_CACHE.
USER_CACHES = tuple(dict.fromkeys(
    Path(p).expanduser().resolve() for p in (Path.home() / ".cache" / "zcache-forge",
                                             os.environ.get("ZCACHE_FORGE_CACHE")) if p))
USER_CCACHE_DIR = os.environ.get("CCACHE_DIR") or None


TOOL_TARBALL = series.DEFAULT_TARBALL  # before pytest_configure may replace it


def tarball() -> Path:
    """The Debian tarball the tests would use: $ZCACHE_FORGE_TEST_TARBALL (a missing path shows
    the fast tests do without it), else the tool's default."""
    return Path(os.environ.get(TEST_TARBALL_ENV) or TOOL_TARBALL)


NEEDS_TARBALL = f"needs {TOOL_TARBALL}: apt-get install linux-source-6.1"


def needs_tarball_reason() -> str | None:
    t = tarball()
    if t.is_file():
        return None
    return NEEDS_TARBALL if t == TOOL_TARBALL else f"{NEEDS_TARBALL} (looked at {t})"


def default_test_ccache() -> Path:
    """ccache for the kernel builds: the user's $CCACHE_DIR when set, else one kept for the tests
    across runs (outside the tool's cache, so no run touches it)."""
    if USER_CCACHE_DIR:
        return Path(USER_CCACHE_DIR)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "zcache-forge-tests" / "ccache"


def _inside(path: Path, parents: tuple[Path, ...]) -> bool:
    path = path.resolve()
    return any(path == p or p in path.parents for p in parents)


def pytest_configure(config) -> None:
    parent = os.environ.get(TEST_CACHE_ENV)
    if parent and _inside(Path(parent).expanduser(), USER_CACHES):
        raise pytest.UsageError(f"{TEST_CACHE_ENV}={parent} is inside the user's zcache-forge cache "
                                f"({', '.join(map(str, USER_CACHES))}); the tests never use it")
    if os.environ.get(TEST_TARBALL_ENV):
        # a series file without base.tarball (mini projects copy series.yaml) gets this one
        series.DEFAULT_TARBALL = tarball()


_kept: list[Path] = []


def pytest_terminal_summary(terminalreporter) -> None:
    for d in _kept:
        terminalreporter.write_line(f"zcache-forge test cache kept: {d}")


def runs_parent() -> Path:
    """Where the runs' caches go: $ZCACHE_FORGE_TEST_CACHE, else beside the tests' ccache."""
    parent = os.environ.get(TEST_CACHE_ENV)
    if parent:
        return Path(parent).expanduser()
    return default_test_ccache().parent


def _empty_but_the_lock(d: Path) -> None:
    for child in d.iterdir():
        if child.name != "lock":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


@contextmanager
def _run_cache(parent: Path) -> Iterator[Path]:
    """<parent>/run, emptied and locked for this run; another run's (busy) -> a new run-* beside it.

    The same path every run matters: the kernel's compiles name their source by absolute path, so
    ccache only finds a run's objects again when the next run builds in the same place (a new
    directory per run made every kernel build cold)."""
    parent.mkdir(parents=True, exist_ok=True)
    d = parent / "run"
    d.mkdir(exist_ok=True)
    with ExitStack() as stack:
        try:
            stack.enter_context(cachelock.held(d, "pytest session", timeout_s=0))
        except ForgeError as exc:
            if "another zcache-forge run holds the cache" not in str(exc):
                raise
            d = Path(tempfile.mkdtemp(prefix="run-", dir=parent))  # cold ccache: another run is in run/
            stack.enter_context(cachelock.held(d, "pytest session", timeout_s=0))
        else:
            _empty_but_the_lock(d)  # the last run's import and builds: every run starts afresh
        yield d


@pytest.fixture(scope="session", autouse=True)
def session_cache(request) -> Iterator[Path]:
    """This run's cache, set as ZCACHE_FORGE_CACHE before any test: one kernel.git, one build
    directory per config, one src worktree per run, held under the tool's cache lock."""
    with _run_cache(runs_parent()) as d:
        assert not _inside(d, USER_CACHES), (d, USER_CACHES)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ZCACHE_FORGE_CACHE", str(d))
            env.setenv("CCACHE_DIR", str(default_test_ccache()))
            yield d
        if request.session.testsfailed or os.environ.get(KEEP_ENV) == "1":
            _kept.append(d)  # named in the terminal summary; the next run empties it
        elif d.name == "run":
            _empty_but_the_lock(d)  # a kernel import and builds: gigabytes
        else:
            shutil.rmtree(d, ignore_errors=True)


BASE_FILES = ("MAINTAINERS", "scripts/get_maintainer.pl")


@pytest.fixture(scope="session")
def linux_base_files(request) -> dict[str, bytes]:
    """MAINTAINERS and scripts/get_maintainer.pl of the Linux 6.1 tarball (the bytes that
    build-patches imports), read once and kept in pytest's cache directory under the tarball's
    size and mtime: reading them out of the 140 MB .xz takes about 20 s. Skips without the tarball."""
    if reason := needs_tarball_reason():
        pytest.skip(reason)
    t = tarball()
    st = t.stat()
    key = f"{t.resolve()} {st.st_size} {st.st_mtime_ns}\n"
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    store = cache.mkdir("zcache-forge-linux-base") if cache is not None else None
    if store is not None and (store / "key").is_file() and (store / "key").read_text() == key:
        return {name: (store / name.replace("/", "_")).read_bytes() for name in BASE_FILES}
    got: dict[str, bytes] = {}
    with tarfile.open(t, "r|xz") as tar:
        for member in tar:
            rel = member.name.partition("/")[2]  # below the top directory (linux-source-6.1/)
            if rel in BASE_FILES and member.isfile():
                got[rel] = tar.extractfile(member).read()
                if len(got) == len(BASE_FILES):
                    break
    missing = set(BASE_FILES) - set(got)
    assert not missing, f"{t} has no {missing}"
    if store is not None:
        for name, data in got.items():
            (store / name.replace("/", "_")).write_bytes(data)
        (store / "key").write_text(key)
    return got

MINI_FILES = {
    "Makefile": "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\n",
    "MAINTAINERS": "CLK API\nF:\tinclude/linux/clk.h\n\n"
                   "STAGING - VIA VT665X DRIVERS\nS:\tOdd Fixes\nF:\tdrivers/staging/vt665?/\n\n"
                   "STAGING SUBSYSTEM\nS:\tSupported\nF:\tdrivers/staging/\n\n"
                   "Z3FOLD COMPRESSED PAGE ALLOCATOR\nF:\tmm/z3fold.c\n\n"
                   "ZD1211RW WIRELESS DRIVER\nS:\tMaintained\nF:\tdrivers/net/wireless/zydas/zd1211rw/\n",
    "drivers/staging/Kconfig": 'menuconfig STAGING\n\tbool "Staging"\n\nif STAGING\n\n'
                               'source "drivers/staging/vme_user/Kconfig"\n\nendif # STAGING\n',
    "drivers/staging/Makefile": "obj-$(CONFIG_QLGE)\t\t+= qlge/\n",
    "mm/Kconfig": 'config ZSWAP\n\tbool "zswap"\n\nconfig ZBUD\n\ttristate "zbud"\n\n'
                  'config FRONTSWAP\n\tbool\n\nconfig CMA\n\tbool "CMA"\n',
    "mm/Makefile": "obj-$(CONFIG_ZSWAP)\t+= zswap.o\nobj-$(CONFIG_FRONTSWAP)\t+= frontswap.o\n",
    "Documentation/admin-guide/mm/index.rst": ".. toctree::\n\n   userfaultfd\n   zswap\n",
    # the lines the frontswap load-error patch replaces and annotates
    "mm/page_io.c": "int swap_readpage(struct page *page)\n{\n\tint ret = 0;\n\n"
                    "\tif (frontswap_load(page) == 0) {\n\t\tSetPageUptodate(page);\n"
                    "\t\tunlock_page(page);\n\t\tgoto out;\n\t}\nout:\n\treturn ret;\n}\n",
    "include/linux/frontswap.h": "struct frontswap_ops {\n"
                                 "\tint (*load)(unsigned, pgoff_t, struct page *); /* load a page */\n};\n",
    # the lines the cleancache patch hooks into
    "include/linux/fs.h": "struct super_block {\n\ttime64_t\t\t   s_time_max;\n};\n",
    "fs/super.c": "#include <linux/blkdev.h>\n\n"
                  "static struct super_block *alloc_super(void)\n{\n"
                  "\ts->s_time_max = TIME64_MAX;\n}\n\n"
                  "void deactivate_locked_super(struct super_block *s)\n{\n"
                  "\tif (atomic_dec_and_test(&s->s_active)) {\n\t\tfs->kill_sb(s);\n\t}\n}\n",
    "mm/filemap.c": "#include <linux/capability.h>\n\n"
                    "void __filemap_remove_folio(struct folio *folio, void *shadow)\n{\n"
                    "\ttrace_mm_filemap_delete_from_page_cache(folio);\n"
                    "\tfilemap_unaccount_folio(mapping, folio);\n}\n",
    "mm/truncate.c": "#include <linux/backing-dev.h>\n\nvoid truncate_inode_pages_range(void)\n{\n"
                     "\tif (mapping_empty(mapping))\n\t\treturn;\n\n\twhile (index < end) {\n"
                     "\t\ttruncate_folio_batch_exceptionals(mapping, &fbatch, indices);\n"
                     "\t\tfolio_batch_release(&fbatch);\n\t\tindex++;\n\t}\n}\n\n"
                     "int invalidate_inode_pages2_range(void)\n{\n\tint did_range_unmap = 0;\n\n"
                     "\tif (mapping_empty(mapping))\n\t\treturn 0;\n\n\tif (dax_mapping(mapping)) {\n"
                     "\t\tunmap_mapping_pages(mapping, start, end - start + 1, false);\n\t}\n"
                     "\treturn ret;\n}\n",
    "fs/mpage.c": "#include <linux/buffer_head.h>\n\nstatic struct bio *do_mpage_readpage(void)\n{\n"
                  "\tif (first_hole != blocks_per_page) {\n\t\tgoto out;\n"
                  "\t} else if (fully_mapped) {\n\t\tfolio_set_mappedtodisk(folio);\n\t}\n"
                  "out:\n\treturn NULL;\n}\n",
    "fs/ext4/readpage.c": "#include <linux/buffer_head.h>\n\nint ext4_mpage_readpages(void)\n{\n"
                          "\t\tif (first_hole != blocks_per_page) {\n\t\t\tgoto next_page;\n"
                          "\t\t} else if (fully_mapped) {\n\t\t\tSetPageMappedToDisk(page);\n\t\t}\n"
                          "next_page:\n\treturn 0;\n}\n",
    "fs/ext4/super.c": "#include <linux/blkdev.h>\n\nstatic int __ext4_fill_super(void)\n{\n"
                       "\tret = ext4_setup_super(sb, es, sb_rdonly(sb));\n"
                       "\tif (ret == -EROFS) {\n\t\tret = 0;\n"
                       "\t} else if (ret)\n\t\tgoto failed_mount4a;\n\treturn 0;\n}\n",
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
    """A private cache for one test. Not locked here: no other run can know it, and the cache-lock
    tests take its lock from another process."""
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
    from zcache_forge.guest import ktap

    src = kunit_source()
    if not (src / ktap.PARSER).is_file():
        pytest.skip(f"no KUnit parser at {src / ktap.PARSER}: KTAP is read with the kernel's own parser; "
                    "check a kernel tree out there (invoke qemu-test does) or set ZCF_KUNIT_SRC")
    monkeypatch.setattr(ktap, "default_source", lambda: src)
    return src
