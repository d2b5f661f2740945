"""Host-side tests for the guest's page-cache workload qemu/filehog.c (no kernel, no QEMU)."""
import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from zcache_forge.guest import initramfs, judge, qemu
from zcache_forge.guest.scenarios import get

SOURCE = Path(__file__).resolve().parent.parent / "qemu" / "filehog.c"
MARKER = "ZCF-RESULT "
PAGE = os.sysconf("SC_PAGE_SIZE")
FILES, MIB = 6, 3  # 128 pages a file with 4 KiB pages


@pytest.fixture(scope="module")
def filehog(tmp_path_factory):
    """Compile filehog exactly as the image build does."""
    binary = tmp_path_factory.mktemp("filehog") / "filehog"
    subprocess.run(["gcc", *initramfs.CFLAGS, "-o", str(binary), str(SOURCE)], check=True,
                   capture_output=True)
    return binary


def hog(filehog, d: Path, *args: str, stat: Path | None = None) -> tuple[int, dict]:
    argv = [str(filehog), "--dir", str(d), "--files", str(FILES), "--size", str(MIB), "--seed", "9",
            *(["--disk-stat", str(stat)] if stat else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    return proc.returncode, json.loads(line[len(MARKER):])


@pytest.fixture
def written(filehog, tmp_path):
    d = tmp_path / "fs"
    d.mkdir()
    rc, rec = hog(filehog, d, "write")
    assert rc == 0 and rec["phase"] == "write" and rec["bytes"] == MIB << 20
    return d


def test_every_page_verifies_before_and_after_mutation(filehog, written, tmp_path):
    stat = tmp_path / "stat"  # /sys/block/vdX/stat's layout: sectors read is field 3, written field 7
    stat.write_text("10 0 800 5 20 0 1600 7 0 9 12\n")
    rc, p1 = hog(filehog, written, "--phase", "pass1", "verify", stat=stat)
    pages = MIB * 2**20 // PAGE // FILES
    small = dataclasses.replace(get("fs-reread"), fs_mib=MIB, fs_files=FILES)
    expected = judge.fs_pages_expected(small, PAGE)
    assert rc == 0 and p1["pages_checked"] == p1["pages"] == FILES * pages == expected["pass1"]
    assert (p1["pages_corrupted"], p1["file_errors"], p1["bad"], p1["order"]) == (0, 0, [], "forward")
    assert (p1["disk_stat"], p1["sectors_read"], p1["sectors_written"]) == (True, 0, 0)
    rc, mut = hog(filehog, written, "mutate")
    assert rc == 0 and (mut["truncated"], mut["deleted"], mut["created"]) == ("f005", "f004", "f006")
    assert mut["truncated_size"] == (pages // 2 + pages // 4) * PAGE
    assert not (written / "f004").exists() and (written / "f006").stat().st_size == pages // 2 * PAGE
    rc, p2 = hog(filehog, written, "--phase", "pass2", "--mutated", "--reverse", "verify")
    assert rc == 0 and p2["pages_corrupted"] == 0 and p2["file_errors"] == 0, p2["bad"]
    assert p2["pages_checked"] == expected["pass2"] and p2["order"] == "reverse"
    # the truncated file: new content, then 1000 bytes, then zeros up to its end
    t = (written / "f005").read_bytes()
    h = pages // 2 * PAGE
    assert t[h + 1000:] == bytes(len(t) - h - 1000) and t[h:h + 8] == b"ZCFFILE\0"
    assert t[8:16] == (5).to_bytes(4, "little") + (0).to_bytes(4, "little")  # file 5, page 0
    assert t[16:20] == (1).to_bytes(4, "little")  # generation 1
    # file 0: pages Q..2Q-1 punched out, the size kept; every page of the hole was checked as zeros
    q = pages // 4
    assert (mut["punched"], mut["punched_first_page"], mut["punched_pages"]) == ("f000", q, q)
    z = (written / "f000").read_bytes()
    assert len(z) == pages * PAGE and z[q * PAGE:2 * q * PAGE] == bytes(q * PAGE)
    assert z[2 * q * PAGE:2 * q * PAGE + 8] == b"ZCFFILE\0"
    assert z[(q - 1) * PAGE:(q - 1) * PAGE + 8] == b"ZCFFILE\0"
    assert p2["punched_pages_checked"] == q and p1["punched_pages_checked"] == 0


def test_a_stale_page_is_named_with_what_it_holds(filehog, written):
    rc, _ = hog(filehog, written, "mutate")
    old = bytearray((written / "f001").read_bytes())
    # page 7 of f001 comes back holding page 3 of f002, page 9 as zeros, page 11 with one byte off
    other = (written / "f002").read_bytes()
    old[7 * PAGE:8 * PAGE] = other[3 * PAGE:4 * PAGE]
    old[9 * PAGE:10 * PAGE] = bytes(PAGE)
    old[11 * PAGE + 100] ^= 1
    (written / "f001").write_bytes(old)
    rc, rec = hog(filehog, written, "--phase", "pass2", "--mutated", "verify")
    assert rc == 2
    assert (rec["pages_corrupted"], rec["pages_stale"], rec["file_errors"]) == (3, 1, 0)
    assert rec["bad"] == ["f001 page 7: stale: holds f002 page 3 generation 0",
                          "f001 page 9: reads as zeros",
                          "f001 page 11: corrupted from byte 100"]


def test_old_content_in_the_punched_hole_is_stale(filehog, written):
    """What a cleancache that missed the punch would hand back: the hole's old pages."""
    before = (written / "f000").read_bytes()
    rc, mut = hog(filehog, written, "mutate")
    assert rc == 0
    q, n = mut["punched_first_page"], mut["punched_pages"]
    with open(written / "f000", "r+b") as f:
        f.seek((q + 2) * PAGE)
        f.write(before[(q + 2) * PAGE:(q + 3) * PAGE])
    rc, rec = hog(filehog, written, "--phase", "pass2", "--mutated", "verify")
    assert rc == 2 and (rec["pages_corrupted"], rec["pages_stale"]) == (1, 1)
    assert rec["bad"] == [f"f000 page {q + 2}: stale: holds f000 page {q + 2} generation 0 "
                          "(another generation of this page)"]
    assert rec["punched_pages_checked"] == n


def test_old_content_a_wrong_size_and_a_deleted_file_are_caught(filehog, written):
    before = {f: (written / f).read_bytes() for f in ("f004", "f005")}
    hog(filehog, written, "mutate")
    (written / "f004").write_bytes(before["f004"])          # the deleted file is back
    (written / "f005").write_bytes(before["f005"])          # the truncated file has its old pages
    rc, rec = hog(filehog, written, "--phase", "pass2", "--mutated", "verify")
    assert rc == 2 and rec["file_errors"] == 3  # f004 present; f005's size, and bytes past its EOF
    assert rec["bad"][0] == "f004: exists, but should not (deleted, or not created yet)"
    assert rec["bad"][1].startswith("f005: 524288 bytes, expected ")
    assert rec["bad"][2] == ("f005 page 0: stale: holds f005 page 0 generation 0 "
                             "(another generation of this page)")
    assert rec["pages_stale"] >= 1


def test_usage_errors_exit_1(filehog, tmp_path):
    proc = subprocess.run([str(filehog), "--dir", str(tmp_path), "--files", "2", "--size", "1", "write"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "--files: expected an integer 3..999, got '2'" in proc.stderr
    proc = subprocess.run([str(filehog), "--dir", str(tmp_path), "--files", "3", "--size", "1", "read"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown action 'read'" in proc.stderr


def test_the_fs_disk_follows_the_swap_disks_unthrottled(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu, "_qemu_binary", lambda: "qemu-system-x86_64")
    b = qemu._Boot(name="t", kernel=tmp_path / "bzImage", initrd=tmp_path / "initrd", memory_mib=128, cpus=1,
                   append=[], swap_imgs=(tmp_path / "swap.img",), workdir=tmp_path, accel="tcg", timeout_s=10,
                   disk=qemu.disk_model("ssd"), data_imgs=(tmp_path / "fs.img",))
    argv = qemu.qemu_argv(b, tmp_path / "console.log")
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[0].startswith(f"file={tmp_path / 'swap.img'},") and "throttling" in drives[0]
    assert drives[1] == f"file={tmp_path / 'fs.img'},if=virtio,format=raw,cache=unsafe"  # /dev/vdb


def test_the_fs_image_is_an_empty_ext4_made_on_the_host(tmp_path):
    img = qemu.make_fs_image(tmp_path / "fs.img", get("fs-reread").fs_disk_mib)
    assert img.stat().st_size == 384 << 20
    assert img.stat().st_blocks * 512 < img.stat().st_size  # sparse
    with img.open("rb") as f:
        f.seek(1024 + 0x38)  # the superblock's magic
        assert f.read(2) == b"\x53\xef"
