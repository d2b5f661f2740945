"""The guest's initramfs: busybox, the memhog and filehog workloads and qemu/init, as a gzip'd newc cpio.

The archive is reproducible: files are listed in a fixed order, every mtime
is pinned, owners are root and inode numbers are renumbered, so the same
inputs always give the same bytes. It is only rebuilt when a hash of the
inputs differs from the one in the stamp file next to it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
from pathlib import Path

from zcache_forge.errors import ForgeError
from zcache_forge.run import run

log = logging.getLogger(__name__)

QEMU_DIR = Path(__file__).resolve().parents[2] / "qemu"
MEMHOG_SRC = QEMU_DIR / "memhog.c"
SWAPPRIO_SRC = QEMU_DIR / "swapprio.c"
FILEHOG_SRC = QEMU_DIR / "filehog.c"
# the guest's own static programs: the workloads (anonymous memory, and a file set on
# the fs disk), and swapon with a priority (busybox-static's swapon has no -p)
C_TOOLS = (MEMHOG_SRC, SWAPPRIO_SRC, FILEHOG_SRC)
INIT_SRC = QEMU_DIR / "init"
BUSYBOX = Path("/bin/busybox")
CFLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")
# busybox applets qemu/init calls by name (shell builtins need no link)
APPLETS = ("sh", "mount", "umount", "mkdir", "cat", "sed", "uname", "nproc", "sleep",
           "mkswap", "swapon", "swapoff", "dd", "rm", "touch", "sync", "poweroff", "reboot",
           "ls", "dmesg", "free", "pidof", "ip", "nc")
DIRS = ("bin", "dev", "proc", "sys", "tmp", "balloon", "mnt")
EPOCH = 946684800  # 2000-01-01: the mtime of everything in the archive
OUTPUT_NAME = "initramfs.cpio.gz"


def _tool_version(argv: list[str]) -> str:
    return run(argv, what=f"{argv[0]} --version").stdout.decode(errors="replace").splitlines()[0]


def input_hash() -> str:
    """A hash of everything the archive is made from."""
    h = hashlib.sha256()
    h.update(f"{' '.join(CFLAGS)}\n{' '.join(APPLETS)}\n".encode())
    h.update(f"{_tool_version(['gcc', '--version'])}\n{_tool_version(['cpio', '--version'])}\n".encode())
    for path in (*C_TOOLS, INIT_SRC, BUSYBOX, Path(__file__)):  # this file: the layout
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _check_inputs() -> None:
    needed = [*((src, f"restore qemu/{src.name}") for src in C_TOOLS),
              (INIT_SRC, "restore qemu/init"), (BUSYBOX, "apt-get install busybox-static")]
    for path, fix in needed:
        if not path.is_file():
            raise ForgeError(f"{path} is missing: {fix}")
    for tool, package in (("gcc", "gcc"), ("cpio", "cpio")):
        if shutil.which(tool) is None:
            raise ForgeError(f"{tool} not found: apt-get install {package}")


def _stage(staging: Path) -> None:
    """Lay out the guest's root file system in staging (emptied first)."""
    if staging.exists():
        shutil.rmtree(staging)
    for d in DIRS:
        (staging / d).mkdir(parents=True)
    bin_dir = staging / "bin"
    for src in C_TOOLS:
        run(["gcc", *CFLAGS, "-o", bin_dir / src.stem, src], what=f"compiling {src.stem} for the guest")
    shutil.copyfile(BUSYBOX, bin_dir / "busybox")
    for applet in APPLETS:
        (bin_dir / applet).symlink_to("busybox")
    shutil.copyfile(INIT_SRC, staging / "init")
    for path in (*(bin_dir / src.stem for src in C_TOOLS), bin_dir / "busybox", staging / "init"):
        path.chmod(0o755)


def _file_list(staging: Path) -> list[str]:
    """Every path in staging, parents before children, in a fixed order; mtimes pinned."""
    paths = sorted(staging.rglob("*"), key=lambda p: p.relative_to(staging).parts)
    for p in [*paths, staging]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
        os.utime(p, (EPOCH, EPOCH), follow_symlinks=False)
    return ["."] + [str(p.relative_to(staging)) for p in paths]


def _pack(staging: Path) -> bytes:
    names = _file_list(staging)
    proc = run(["cpio", "--create", "--format=newc", "--reproducible", "--owner=0:0", "--quiet"],
               cwd=staging, input=("\n".join(names) + "\n").encode(), what="packing the initramfs")
    return gzip.compress(proc.stdout, compresslevel=9, mtime=0)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_initramfs(out_dir: Path) -> Path:
    """Build out_dir/initramfs.cpio.gz unless it is up to date; return its path."""
    _check_inputs()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / OUTPUT_NAME
    stamp = out_dir / (OUTPUT_NAME + ".stamp")
    digest = input_hash()
    if out.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        log.info("initramfs up to date: %s", out)
        return out
    staging = out_dir / "initramfs-root"
    _stage(staging)
    _write_atomic(out, _pack(staging))
    _write_atomic(stamp, (digest + "\n").encode())
    log.info("initramfs built: %s (%d KiB)", out, out.stat().st_size // 1024)
    return out
