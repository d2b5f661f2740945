"""Host-side tests for the guest memory-pressure workload qemu/memhog.c."""
import json
import os
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


def test_hold_file_rechecks_after_release(memhog, tmp_path):
    hold = tmp_path / "release"
    ready = tmp_path / "release.ready"
    proc = subprocess.Popen(
        [str(memhog), "--size", "8", "--id", "held", "--hold-file", str(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, "memhog exited before holding"
            assert time.monotonic() < deadline, "no .ready file"
            time.sleep(0.02)
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
