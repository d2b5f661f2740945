"""Scenario file loading and validation (no QEMU)."""
from pathlib import Path

import pytest

from zcache_forge.errors import ForgeError
from zcache_forge.guest.scenarios import DEFAULT_FILE, get, load_scenarios

GOOD = """
scenarios:
  - name: small
    backend: zcache
    memory_mib: 128
    swap_mib: 256
    workloads:
      - {size_mib: 160, pattern: text, passes: 1, seed: 5}
    timeout_s: 60
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ForgeError) as info:
        load_scenarios(path)
    return str(info.value)


def test_shipped_file_has_the_required_scenarios():
    sf = load_scenarios(DEFAULT_FILE)
    assert {"basic", "mixed", "random", "concurrent", "zswap-basic", "none-basic"} <= set(sf.names)


def test_basic_is_as_specified():
    s = get("basic")
    assert (s.backend, s.memory_mib, s.cpus, s.swap_mib, s.swapoff_recheck) == ("zcache", 256, 1, 512, True)
    assert [(w.size_mib, w.pattern, w.passes) for w in s.workloads] == [(320, "mixed", 2)]
    assert s.backend_args() == []
    assert s.timeout_s < 180


def test_concurrent_has_two_cpus_and_two_workloads():
    s = get("concurrent")
    assert s.cpus == 2
    assert [(w.size_mib, w.pattern) for w in s.workloads] == [(160, "text"), (160, "mixed")]


def test_random_scenario_uses_the_random_pattern():
    assert "random" in [w.pattern for w in get("random").workloads]


def test_variants_select_their_backend():
    zswap, none = get("zswap-basic"), get("none-basic")
    assert zswap.backend_args() == ["zcache.enabled=0", "zswap.enabled=1", "zswap.zpool=zbud"]
    assert none.backend_args() == ["zcache.enabled=0", "zswap.enabled=0"]
    assert zswap.workloads == none.workloads == get("basic").workloads


def test_kernel_args_carry_the_job(tmp_path):
    path = write(tmp_path, GOOD.replace("timeout_s: 60", "timeout_s: 60\n    cmdline_extra: quiet"))
    s = load_scenarios(path).get("small")
    # the default 20% pool, scaled from the guest's RAM to the 128 MiB the workloads compete for
    assert s.kernel_args() == ["zcache.max_pool_percent=9", "quiet", "zcf.name=small",
                               "zcf.workloads=160:text:1:5", "zcf.recheck=1", "zcf.balloon=160",
                               "zcf.heartbeat=10"]
    assert s.guest_ram_mib == 128 + 160


def test_a_pool_limit_the_scenario_sets_is_kept(tmp_path):
    extra = "timeout_s: 60\n    cmdline_extra: zcache.max_pool_percent=3"
    path = write(tmp_path, GOOD.replace("timeout_s: 60", extra))
    s = load_scenarios(path).get("small")
    assert s.pool_args() == [] and "zcache.max_pool_percent=3" in s.kernel_args()
    no_balloon = load_scenarios(write(tmp_path, GOOD + "    swapoff_recheck: false\n")).get("small")
    assert no_balloon.pool_args() == []


def test_no_balloon_without_recheck(tmp_path):
    path = write(tmp_path, GOOD + "    swapoff_recheck: false\n")
    s = load_scenarios(path).get("small")
    assert (s.balloon_mib, s.guest_ram_mib) == (0, 128)
    assert "zcf.recheck=0" in s.job_args()


def test_defaults_apply_and_can_be_overridden(tmp_path):
    text = "defaults:\n  cpus: 2\n  swap_mib: 64\n" + GOOD.replace("    swap_mib: 256\n", "")
    s = load_scenarios(write(tmp_path, text)).get("small")
    assert (s.cpus, s.swap_mib) == (2, 64)


def test_zsmalloc_zpool(tmp_path):
    text = GOOD.replace("backend: zcache", "backend: zswap\n    zpool: zsmalloc")
    s = load_scenarios(write(tmp_path, text)).get("small")
    assert "zswap.zpool=zsmalloc" in s.kernel_args()


def test_unknown_key_names_file_and_field(tmp_path):
    msg = error_of(tmp_path, GOOD + "    colour: blue\n")
    assert str(tmp_path / "scenarios.yaml") in msg
    assert "scenarios[0].colour: expected one of the keys" in msg and "found unknown key 'colour'" in msg


def test_missing_field(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("    memory_mib: 128\n", ""))
    assert "scenarios[0].memory_mib: expected a value, found nothing (missing required field)" in msg


def test_bad_backend(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("backend: zcache", "backend: zram"))
    assert "scenarios[0].backend: expected one of zcache, zswap, none, found 'zram'" in msg


def test_bad_workload_fields_are_all_reported(tmp_path):
    text = GOOD.replace("pattern: text", "pattern: lorem").replace("passes: 1", "passes: -1")
    msg = error_of(tmp_path, text)
    assert "scenarios[0].workloads[0].pattern" in msg
    assert "scenarios[0].workloads[0].passes" in msg


def test_zpool_only_with_zswap(tmp_path):
    msg = error_of(tmp_path, GOOD + "    zpool: zbud\n")
    assert "scenarios[0].zpool: expected no zpool with backend zcache (only with backend: zswap)" in msg


def test_zcf_parameters_are_reserved(tmp_path):
    msg = error_of(tmp_path, GOOD + "    cmdline_extra: zcf.recheck=0\n")
    assert "scenarios[0].cmdline_extra" in msg


def test_bad_expectation(tmp_path):
    msg = error_of(tmp_path, GOOD + "    expect: ['during zcache.x > 1', 'pressure zcache.x ~ 1']\n")
    assert "scenarios[0].expect[0]: expected a phase of before, pressure, after-swapoff, after, " \
        "fs-written, fs-pass1, fs-mutated, fs-pass2 first, found 'during zcache.x > 1'" in msg
    assert "scenarios[0].expect[1]: expected 'PHASE KEY OP NUMBER'" in msg


def test_expectation_parsing(tmp_path):
    path = write(tmp_path, GOOD + "    expect: ['pressure zcache.compress_poor >= 10']\n")
    s = load_scenarios(path).get("small")
    (e,) = s.expect
    assert (e.phase, e.key, e.op, e.value) == ("pressure", "zcache.compress_poor", ">=", 10)
    assert e.holds(10) and not e.holds(9)


def test_duplicate_names(tmp_path):
    body = GOOD.split("scenarios:\n", 1)[1]
    msg = error_of(tmp_path, GOOD + body)
    assert "scenarios[1].name: expected a new scenario name, found 'small' again" in msg


def test_unknown_name_lists_known_ones(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(ForgeError, match=r"no scenario named 'big' \(known: small\)"):
        get("big", path)


def test_yaml_syntax_error_has_a_line_number(tmp_path):
    msg = error_of(tmp_path, "scenarios:\n  - name: [\n")
    assert "scenarios.yaml:" in msg and "YAML syntax error" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ForgeError, match="cannot read scenario file"):
        load_scenarios(tmp_path / "nope.yaml")


FS = GOOD.replace("""    workloads:
      - {size_mib: 160, pattern: text, passes: 1, seed: 5}
""", """    fs_mib: 256
    fs_files: 8
""")


def test_fs_reread_pair_differs_only_in_cleancache():
    on, off = get("fs-reread"), get("fs-reread-nocleancache")
    assert (on.fs_mib, on.workloads, on.cleancache, off.cleancache) == (256, (), True, False)
    assert on.fs_mib >= 2 * on.memory_mib  # the file set is twice the guest's RAM
    assert "zcf.fs=vdb:256:8:121" in on.kernel_args()
    assert "zcache.cleancache=0" in off.kernel_args() and "zcache.cleancache=0" not in on.kernel_args()
    assert [a for a in off.kernel_args() if a != "zcache.cleancache=0"] == [
        a.replace("fs-reread", "fs-reread-nocleancache") for a in on.kernel_args()]
    # the series has cleancache: pass 2 must hit zcache; with zcache.cleancache=0 it cannot
    assert on.expect_eph_hits and not off.expect_eph_hits


def test_fs_disk_follows_the_swap_disks(tmp_path):
    s = load_scenarios(write(tmp_path, FS + "    swap_devices: 2\n")).get("small")
    assert s.fs_disk == "vdc" and "zcf.fs=vdc:256:8:1" in s.job_args()
    assert s.balloon_mib == 0 and s.fs_disk_mib == 256 + 64 + 64


def test_a_scenario_needs_workloads_or_the_fs_job(tmp_path):
    msg = error_of(tmp_path, FS.replace("    fs_mib: 256\n", ""))
    assert "scenarios[0].fs_mib: expected workloads (at least one) or a file-system job (fs_mib > 0), " \
        "found neither" in msg


def test_workloads_and_the_fs_job_together_are_the_mixed_job(tmp_path):
    path = write(tmp_path, GOOD + "    fs_mib: 64\n    fs_files: 4\n    fs_seed: 9\n")
    s = load_scenarios(path).get("small")
    assert s.mixed and s.workloads and s.fs_mib == 64
    args = s.kernel_args()
    assert "zcf.workloads=160:text:1:5" in args and "zcf.fs=vdb:64:4:9" in args
    # the balloon lets swapoff bring the workloads back, as in the workloads' job
    assert "zcf.recheck=1" in args and s.balloon_mib == 160
    assert s.phases() == ("before", "fs-written", "fs-pass1", "fs-mutated", "fs-pass2", "pressure",
                          "after-swapoff")
    assert s.final_phase == "after-swapoff"
    alone = load_scenarios(write(tmp_path, FS)).get("small")
    assert not alone.mixed and alone.phases()[-1] == alone.final_phase == "after"
    assert not get("basic").mixed and get("basic").phases() == ("before", "pressure", "after-swapoff")


def test_the_mixed_job_needs_workloads_beyond_ram(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("size_mib: 160", "size_mib: 128") + "    fs_mib: 64\n")
    assert "scenarios[0].fs_mib: expected workloads beyond memory_mib with fs_mib (the mixed job: swap " \
        "and the page cache must compete), found 128 MiB of workloads in 128 MiB" in msg
    assert len(msg.splitlines()) == 1


def test_the_fs_job_refuses_what_only_the_workloads_job_runs(tmp_path):
    """hotplug, fault injection, swapoff under load, a memcg and failing loads are the workloads'
    job's: the fs job, alone or mixed, would run without them, so asking for them is an error."""
    msg = error_of(tmp_path, GOOD + "    cpus: 2\n    hotplug: true\n    memcg_max_mib: 96\n    fs_mib: 64\n")
    assert msg.splitlines() == [
        f"{tmp_path / 'scenarios.yaml'}: scenarios[0].fs_mib: expected none of hotplug, fault_percent, "
        "swapoff_under_load, memcg_max_mib, load_fail_percent with fs_mib (the file-system job, alone or "
        "mixed, runs without them), found hotplug: true, memcg_max_mib: 96"]
    assert "found load_fail_percent: 2" in error_of(tmp_path, FS + "    load_fail_percent: 2\n")


def test_an_expectation_must_name_a_phase_the_job_records(tmp_path):
    msg = error_of(tmp_path, GOOD + "    expect:\n      - fs-pass2 zcache.eph_puts > 0\n")
    assert "scenarios[0].expect: expected a phase the workloads' job with swapoff_recheck records " \
        "(before, pressure, after-swapoff), found 'fs-pass2' in 'fs-pass2 zcache.eph_puts > 0'" in msg
    msg = error_of(tmp_path, FS + "    expect:\n      - pressure zcache.pers_puts > 0\n")
    assert "expected a phase the file-system job records (before, fs-written, fs-pass1, fs-mutated, " \
        "fs-pass2, after), found 'pressure'" in msg
    msg = error_of(tmp_path, GOOD + "    swapoff_recheck: false\n    expect:\n"
                   "      - after-swapoff zcache.pers_zpages == 0\n")
    assert "without swapoff_recheck records (before, pressure, after), found 'after-swapoff'" in msg
    mixed = GOOD + "    fs_mib: 64\n    expect:\n      - fs-pass2 zcache.eph_puts > 0\n" \
        "      - pressure zcache.pers_puts > 0\n      - after-swapoff zcache.eph_zpages == 0\n"
    assert len(load_scenarios(write(tmp_path, mixed)).get("small").expect) == 3


def test_the_shipped_mixed_scenarios():
    ci, b = get("mixed-cache"), get("bench-mixed-cache")
    for s in (ci, b):
        assert s.mixed and s.backend == "zcache" and s.workload_mib > s.memory_mib
    assert ci.swapoff_recheck and not b.swapoff_recheck and not b.expect
    assert {e.phase for e in ci.expect} <= set(ci.phases())


def test_fs_files_need_pages_and_eph_hits_need_cleancache(tmp_path):
    msg = error_of(tmp_path, FS.replace("fs_mib: 256", "fs_mib: 1").replace("fs_files: 8", "fs_files: 100"))
    assert "scenarios[0].fs_files: expected at most 64 files for fs_mib 1 (4 pages a file), found 100" in msg
    assert "scenarios[0].fs_files" in error_of(tmp_path, FS.replace("fs_files: 8", "fs_files: 2"))
    msg = error_of(tmp_path, FS + "    cleancache: false\n    expect_eph_hits: true\n")
    assert "scenarios[0].expect_eph_hits: expected expect_eph_hits only with backend: zcache and " \
        "cleancache on" in msg
    msg = error_of(tmp_path, GOOD + "    expect_eph_hits: true\n")
    assert "expected expect_eph_hits only with a file-system job" in msg
    s = load_scenarios(write(tmp_path, FS + "    expect_eph_hits: true\n")).get("small")
    assert s.expect_eph_hits and s.cleancache


def test_the_debug_kernel_verifies_each_workload_once_with_more_ram_and_time():
    from zcache_forge.guest import qemutest

    basic, ramster = qemutest.choose(["basic", "ramster"])
    dbasic, dramster = qemutest.choose(["basic", "ramster"], debug=True)
    assert [w.passes for w in basic.workloads] == [2] and [w.passes for w in dbasic.workloads] == [1]
    assert [(w.size_mib, w.pattern, w.seed) for w in dbasic.workloads] == \
        [(w.size_mib, w.pattern, w.seed) for w in basic.workloads]
    assert dbasic.memory_mib > basic.memory_mib and dbasic.timeout_s > basic.timeout_s
    assert "panic_on_warn=1" in dbasic.cmdline_extra.split()
    assert [w.passes for w in dramster.workloads] == [1, 1]
    assert dramster.peer.memory_mib > ramster.peer.memory_mib


def test_the_debug_kernel_disrupts_the_peer_later_but_hangs_it_as_long():
    from zcache_forge.guest import qemutest

    (dies, hangs), (ddies, dhangs) = (qemutest.choose(["ramster-peer-dies", "ramster-peer-hangs"], debug=d)
                                      for d in (False, True))
    assert ddies.peer.kill_after_s == 3 * dies.peer.kill_after_s < ddies.timeout_s
    assert dhangs.peer.hang_after_s == 3 * hangs.peer.hang_after_s
    assert dhangs.peer.hang_for_s == hangs.peer.hang_for_s
