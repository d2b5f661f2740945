"""Host-side tests for the guest memory-pressure workload qemu/memhog.c."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "qemu" / "memhog.c"
MARKER = "ZCF-RESULT "
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def memhog(tmp_path_factory):
    """Compile memhog exactly as the image build does."""
    binary = tmp_path_factory.mktemp("memhog") / "memhog"
    subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror",
         "-o", str(binary), str(SOURCE)],
        check=True, capture_output=True, text=True)
    return binary


def results(stdout):
    """The JSON objects of all ZCF-RESULT lines, in order."""
    return [json.loads(line[len(MARKER):])
            for line in stdout.splitlines() if line.startswith(MARKER)]


def run(memhog, *args):
    proc = subprocess.run([str(memhog), *args], capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, results(proc.stdout), proc.stderr


@pytest.mark.parametrize("pattern", ["zero", "text", "random", "mixed"])
def test_each_pattern_verifies_clean(memhog, pattern):
    rc, res, err = run(memhog, "--size", "16", "--pattern", pattern,
                       "--id", "t-" + pattern)
    assert rc == 0, err
    assert len(res) == 1
    r = res[0]
    assert (r["kind"], r["id"], r["phase"], r["pattern"]) == (
        "workload", "t-" + pattern, "run", pattern)
    assert r["bytes"] == 16 << 20
    assert r["pages"] == r["bytes"] // PAGE
    assert r["passes"] == 2
    assert r["pages_checked"] == r["pages"] * r["passes"]
    assert r["pages_corrupted"] == 0
    assert r["pages_sigbus"] == 0
    assert r["thp"] is False
    assert type(r["anon_huge_kib"]) is int and r["anon_huge_kib"] >= 0
    for key in ("elapsed_s", "fill_mbps", "verify_mbps"):
        assert r[key] >= 0
    assert "fill 100%" in err


def test_odd_pass_count(memhog):
    rc, res, _ = run(memhog, "--size", "4", "--passes", "3", "--seed", "7")
    assert rc == 0
    assert res[0]["pages_checked"] == res[0]["pages"] * 3


def test_injected_corruption_is_found(memhog):
    # pages_corrupted counts distinct damaged pages per phase, so one
    # flipped byte gives exactly 1 even though both passes see it.
    rc, res, err = run(memhog, "--size", "16", "--inject-corruption", "3")
    assert rc == 2
    assert res[0]["pages_corrupted"] == 1
    assert res[0]["pages_checked"] == res[0]["pages"] * 2
    assert "memhog: hog: page 3 corrupted at byte" in err


@pytest.mark.parametrize("size", ["x", "0", "-5", "1.5", ""])
def test_bad_size_is_a_usage_error(memhog, size):
    rc, res, err = run(memhog, "--size", size)
    assert rc == 1
    assert res == []
    assert "--size" in err


def test_missing_size_and_bad_pattern(memhog):
    assert run(memhog)[0] == 1
    rc, _, err = run(memhog, "--size", "4", "--pattern", "bogus")
    assert rc == 1 and "--pattern" in err


def start_holding(memhog, hold, *args):
    """Start memhog with --hold-file and wait until it holds its memory."""
    ready = hold.with_name(hold.name + ".ready")
    proc = subprocess.Popen(
        [str(memhog), *args, "--hold-file", str(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        exited = proc.poll() is not None
        if exited or time.monotonic() >= deadline:
            proc.kill()
            pytest.fail("memhog exited before holding" if exited else "no .ready file")
        time.sleep(0.02)
    return proc


def test_hold_file_rechecks_after_release(memhog, tmp_path):
    hold = tmp_path / "release"
    proc = start_holding(memhog, hold, "--size", "8", "--id", "held")
    try:
        time.sleep(0.3)  # it must keep waiting while the file is absent
        assert proc.poll() is None
        hold.touch()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    run_res, recheck = results(out)
    assert run_res["phase"] == "run" and recheck["phase"] == "recheck"
    assert recheck["id"] == "held" and recheck["passes"] == 1
    assert recheck["pages_checked"] == recheck["pages"]
    assert recheck["pages_corrupted"] == 0


# --inject-sigbus swaps the page for a shared file page beyond EOF, so its
# first access after the fill raises a real SIGBUS, as a swapped page whose
# compressed copy cannot be read back will with the kernel change.
@pytest.mark.parametrize("thp", [[], ["--thp"]], ids=["base", "thp"])
def test_injected_sigbus_is_a_lost_page_not_corruption(memhog, thp):
    rc, res, err = run(memhog, "--size", "16", "--inject-sigbus", "5", *thp)
    assert rc == 3, err
    r = res[0]
    assert r["pages_sigbus"] == 1
    assert r["pages_corrupted"] == 0
    # the lost page still counts as checked in every pass
    assert r["pages_checked"] == r["pages"] * r["passes"]
    assert "memhog: hog: page 5 lost: SIGBUS on access" in err
    assert "corrupted" not in err


def test_sigbus_page_is_counted_once_over_passes(memhog):
    # Later passes skip the lost page: touching it again would only raise
    # SIGBUS again, and it must not be counted or reported once per pass.
    rc, res, err = run(memhog, "--size", "4", "--passes", "3",
                       "--inject-sigbus", "0")
    assert rc == 3, err
    r = res[0]
    assert r["pages_sigbus"] == 1
    assert r["pages_checked"] == r["pages"] * 3
    assert err.count("SIGBUS") == 1


def test_corruption_wins_over_sigbus(memhog):
    rc, res, err = run(memhog, "--size", "16", "--inject-sigbus", "5",
                       "--inject-corruption", "9")
    assert rc == 2, err
    assert (res[0]["pages_corrupted"], res[0]["pages_sigbus"]) == (1, 1)
    assert "page 9 corrupted at byte" in err and "page 5 lost" in err


def test_sigbus_page_stays_lost_in_recheck(memhog, tmp_path):
    hold = tmp_path / "release"
    proc = start_holding(memhog, hold, "--size", "4", "--inject-sigbus", "7")
    try:
        hold.touch()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    run_res, recheck = results(out)
    assert run_res["pages_sigbus"] == recheck["pages_sigbus"] == 1
    assert recheck["pages_checked"] == recheck["pages"]
    assert recheck["pages_corrupted"] == 0
    assert err.count("SIGBUS") == 1


def test_foreign_sigbus_still_kills(memhog, tmp_path):
    # Only a fault on a page of the mapping during a page access is
    # recovered; a SIGBUS sent from outside must kill as before.
    proc = start_holding(memhog, tmp_path / "never", "--size", "4")
    try:
        proc.send_signal(signal.SIGBUS)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGBUS


@pytest.mark.parametrize("opt", ["--inject-sigbus", "--inject-corruption"])
def test_injected_page_out_of_range(memhog, opt):
    rc, res, err = run(memhog, "--size", "4", opt, str((4 << 20) // PAGE))
    assert rc == 1 and res == []
    assert opt in err and "out of range" in err


def test_thp_verifies_and_reports_huge_pages(memhog):
    # THP may be off on the host, so anon_huge_kib can be 0 here.
    rc, res, err = run(memhog, "--size", "16", "--thp", "--pattern", "mixed")
    assert rc == 0, err
    r = res[0]
    assert r["thp"] is True
    assert type(r["anon_huge_kib"]) is int and r["anon_huge_kib"] >= 0
    assert r["pages_checked"] == r["pages"] * r["passes"]
    assert (r["pages_corrupted"], r["pages_sigbus"]) == (0, 0)
