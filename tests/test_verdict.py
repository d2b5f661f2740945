"""Console-log parsing (console), the judging rules (judge) and the qemu-test table (report), on synthetic
logs (no QEMU)."""
import json

import pytest

from zcache_forge.guest.console import parse_console
from zcache_forge.guest.judge import judge
from zcache_forge.guest.qemu import decode_exit
from zcache_forge.guest.scenarios import Expectation, Scenario, Workload
from zcache_forge.report import render_table, to_json


def scenario(backend="zcache", workloads=1, expect=()):
    return Scenario(name="t", backend=backend, memory_mib=256, cpus=1, swap_mib=512, cmdline_extra="",
                    workloads=tuple(Workload(320 // workloads, "mixed", 2, i + 1) for i in range(workloads)),
                    timeout_s=170, expect=tuple(expect))


def rec(obj):
    return "ZCF-RESULT " + json.dumps(obj)


def counters(phase, **values):
    base = {"zcache.pers_puts": 0, "zcache.failed_pers_puts": 0, "frontswap.succ_stores": 0,
            "frontswap.loads": 0, "pswpout": 0, "meminfo.SwapTotal_kib": 524284,
            "meminfo.SwapFree_kib": 524284}
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return rec({"kind": "counters", "phase": phase, "uptime_s": 1.0, "values": base})


def workload(wid="w0", phase="run", corrupted=0):
    return rec({"kind": "workload", "id": wid, "phase": phase, "pattern": "mixed", "bytes": 335544320,
                "pages": 81920, "passes": 2 if phase == "run" else 1,
                "pages_checked": 163840 if phase == "run" else 81920,
                "pages_corrupted": corrupted, "elapsed_s": 25.7, "fill_mbps": 70.9,
                "verify_mbps": 30.2, "pswpin_delta": 0, "pswpout_delta": 0})


BOOT_LINES = [f"[    0.{i:06d}] kernel boot message {i}" for i in range(30)] + [
    "[    0.900000] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks",
    "[    1.000000] Run /init as init process",
]


def good_lines(corrupted=0, pressure=None):
    pressure = pressure or counters("pressure", zcache__pers_puts=178932, zcache__failed_pers_puts=38028,
                                    frontswap__succ_stores=140904, pswpout=9000,
                                    meminfo__SwapFree_kib=259188)
    return BOOT_LINES + [
        rec({"kind": "boot", "name": "t", "kernel": "6.1.0", "nproc": 1, "memtotal_kib": 571968}),
        "zcf-init: swap on /dev/vda: 524284 KiB",
        counters("before"),
        "memhog: w0: fill 100%",
        workload("w0", "run"),
        pressure,
        rec({"kind": "step", "step": "swapoff", "status": 0, "start_s": 30.7, "end_s": 33.75}),
        workload("w0", "recheck", corrupted),
        rec({"kind": "exit", "id": "w0", "status": 2 if corrupted else 0}),
        counters("after-swapoff", frontswap__loads=165381, zcache__pers_puts=178932),
        f"ZCF-DONE status={1 if corrupted else 0}",
    ]


def text(lines):
    return "\r\n".join(lines) + "\r\n"  # the serial console ends lines with CR LF


def test_good_log_passes():
    r = judge(scenario(), text(good_lines()), seconds=36.5, accel="tcg")
    assert r.passed, r.reasons
    assert r.reasons == [] and r.splats == []
    assert [w["phase"] for w in r.workloads] == ["run", "recheck"]
    assert set(r.counters) == {"before", "pressure", "after-swapoff"}
    assert r.boot["kernel"] == "6.1.0"
    assert r.summary["zcache_stored"] == 140904
    assert r.summary["swap_used_mib"] == pytest.approx((524284 - 259188) / 1024, abs=0.1)
    assert r.summary["frontswap_loads"] == 165381
    assert r.summary["swapoff_s"] == pytest.approx(3.05)


def test_corrupted_page_fails():
    lines = good_lines(corrupted=3)
    lines.insert(-1, 'ZCF-RESULT {"kind":"error","message":"workload w0 exited with status 2"}')
    r = judge(scenario(), text(lines))
    assert not r.passed
    assert "workload w0 (320 MiB mixed): 3 corrupted pages in the 'recheck' phase" in r.reasons
    assert "guest /init: workload w0 exited with status 2" in r.reasons
    assert "/init finished with ZCF-DONE status=1" in r.reasons
    assert r.summary["corrupted"] == 3


def test_kernel_bug_in_the_middle_is_quoted_with_context():
    lines = good_lines()
    at = lines.index("memhog: w0: fill 100%")
    lines[at:at] = [
        "[   12.000001] BUG: unable to handle page fault for address: ffff888012345000",
        "[   12.000002] #PF: supervisor read access in kernel mode",
        "[   12.000003] Call Trace:",
        "[   12.000004]  <TASK>",
        "[   12.000005]  zcache_frontswap_load+0x4e/0x90",
    ]
    r = judge(scenario(), text(lines))
    assert not r.passed
    assert len(r.splats) == 1  # the Call Trace belongs to the same splat
    splat = r.splats[0]
    assert splat.kind == "bug"
    assert splat.line == at + 1
    assert "zcache_frontswap_load" in splat.text and "Call Trace:" in splat.text
    assert "swap on /dev/vda" in splat.text  # context before the BUG line
    assert any("kernel bug at console line" in x and "unable to handle page fault" in x for x in r.reasons)


def test_warn_splat_counts_but_other_warnings_do_not():
    lines = good_lines()
    lines.insert(-1, "[   30.0] WARNING: CPU: 0 PID: 57 at mm/zcache/tmem.c:120 tmem_put+0x1/0x2")
    r = judge(scenario(), text(lines))
    assert [s.kind for s in r.splats] == ["warning"]  # not the RETBleed line at boot


def test_truncated_log_after_timeout():
    lines = good_lines()
    cut = next(i for i, ln in enumerate(lines) if '"step": "swapoff"' in ln)
    r = judge(scenario(), text(lines[:cut]), exit_kind="timeout", guest_status=None, seconds=510.2)
    assert not r.passed
    last = r.last_console
    assert last and last in lines[cut - 1]
    assert r.reasons[0] == ("timeout: wall-clock limit 510 s: QEMU was killed after 510 s; "
                            f"the console said last: {last!r}")
    assert r.ended_by == "timeout: wall-clock limit 510 s"
    assert "no ZCF-DONE line: the guest stopped before /init finished" in r.reasons
    assert "workload w0 (320 MiB mixed): no 'recheck' result" in r.reasons
    assert r.counters.keys() == {"before", "pressure"}


def test_a_silent_console_is_a_hang_named_with_what_it_said_last():
    lines = good_lines()
    cut = next(i for i, ln in enumerate(lines) if '"step": "swapoff"' in ln)
    stalled = [*lines[:cut], "memhog: w0: pass 3 70%"]
    r = judge(scenario(), text(stalled), exit_kind="hang", guest_status=None, seconds=250,
              ended_by="hang: console silent for 120 s", last_console="memhog: w0: pass 3 70%")
    assert not r.passed
    assert r.reasons[0] == ("hang: console silent for 120 s: QEMU was killed after 250 s; "
                            "the console said last: 'memhog: w0: pass 3 70%'")
    assert r.ended_by == "hang: console silent for 120 s"
    data = json.loads(to_json([r]))[0]
    assert data["ended_by"] == "hang: console silent for 120 s"
    assert data["last_console"] == "memhog: w0: pass 3 70%"
    # a guest that ended by itself says so
    assert judge(scenario(), text(good_lines())).ended_by == "guest"


def test_no_boot_record_quotes_the_last_15_lines():
    lines = BOOT_LINES + ["[    1.100000] Kernel panic - not syncing: No working init found."]
    r = judge(scenario(), text(lines), exit_kind="reset", guest_status=None)
    assert not r.passed
    never = [x for x in r.reasons if "never booted" in x]
    assert len(never) == 1
    quoted = never[0].splitlines()[1:]
    assert len(quoted) == 15
    assert "No working init found" in quoted[-1]
    assert "kernel boot message 17" not in never[0]  # the 16th line from the end is not quoted
    assert "kernel boot message 18" in never[0]
    assert any(s.kind == "panic" for s in r.splats)
    assert any("rebooted or halted" in x for x in r.reasons)


def test_empty_console():
    r = judge(scenario(), "", exit_kind="qemu-error", guest_status=None, qemu_stderr="qemu: bad option\n")
    assert "QEMU failed: qemu: bad option" in r.reasons
    assert any("(the console is empty)" in x for x in r.reasons)


def test_zcache_that_stores_nothing_fails():
    pressure = counters("pressure", zcache__pers_puts=5000, zcache__failed_pers_puts=5000,
                        frontswap__succ_stores=0, pswpout=5000, meminfo__SwapFree_kib=400000)
    r = judge(scenario(), text(good_lines(pressure=pressure)))
    assert any("zcache stored none" in x for x in r.reasons)
    assert any("frontswap.succ_stores is 0" in x for x in r.reasons)


def test_zcache_counters_missing():
    pressure = rec({"kind": "counters", "phase": "pressure",
                    "values": {"pswpout": 10, "meminfo.SwapTotal_kib": 1, "meminfo.SwapFree_kib": 0}})
    r = judge(scenario(), text(good_lines(pressure=pressure)))
    assert any("no zcache counters" in x for x in r.reasons)


def test_other_backends_need_no_zcache_counters():
    pressure = rec({"kind": "counters", "phase": "pressure",
                    "values": {"pswpout": 10, "frontswap.succ_stores": 0,
                               "meminfo.SwapTotal_kib": 100, "meminfo.SwapFree_kib": 0}})
    exp = [Expectation("pressure", "frontswap.succ_stores", "==", 0)]
    r = judge(scenario(backend="none", expect=exp), text(good_lines(pressure=pressure)))
    assert r.passed, r.reasons


def test_no_swapping_means_nothing_was_tested():
    r = judge(scenario(), text(good_lines(pressure=counters("pressure"))))
    assert any("nothing was swapped out" in x for x in r.reasons)


def test_missing_workload_of_two():
    r = judge(scenario(workloads=2), text(good_lines()))
    assert "workload w1 (160 MiB mixed): no 'run' result" in r.reasons
    assert "workload w1 (160 MiB mixed): no 'recheck' result" in r.reasons


def test_expectations():
    exp = [Expectation("pressure", "zcache.pers_puts", ">", 10**6),
           Expectation("after-swapoff", "zcache.nope", "==", 0),
           Expectation("after", "pswpout", "==", 0)]
    r = judge(scenario(expect=exp), text(good_lines()))
    assert "expect 'pressure zcache.pers_puts > 1000000' failed: zcache.pers_puts is 178932" in r.reasons
    assert "expect 'after-swapoff zcache.nope == 0': the guest did not report zcache.nope" in r.reasons
    assert "expect 'after pswpout == 0': no 'after' counters record" in r.reasons


def test_garbled_record_and_interleaved_text():
    lines = good_lines()
    lines.insert(-1, 'ZCF-RESULT {"kind":"exit","id":"w0","sta[   33.1] random: crng init done')
    lines[lines.index(workload("w0", "run"))] = workload("w0", "run") + "memhog: w0: pass 1 10%"
    con = parse_console(text(lines))
    (bad,) = con.errors  # a typed ParseError naming the line, not an exception
    assert bad.unreadable and bad.line == len(lines) - 1 and bad.text.startswith('ZCF-RESULT {"kind":"exit"')
    assert len(con.workloads) == 2  # the trailing text after the JSON is ignored
    r = judge(scenario(), text(lines))
    assert any(x.startswith("unreadable ZCF-RESULT line") for x in r.reasons)


def test_json_and_table():
    good = judge(scenario(), text(good_lines()), seconds=36.5, accel="tcg")
    bad = judge(scenario(), text(good_lines(corrupted=1)), seconds=40, accel="tcg")
    data = json.loads(to_json([good, bad]))
    assert [d["passed"] for d in data] == [True, False]
    assert data[0]["summary"]["zcache_stored"] == 140904
    table = render_table([good, bad])
    header, rule, row1, row2 = table.splitlines()[:4]
    assert header.split()[:4] == ["scenario", "backend", "accel", "result"]
    assert row1.split()[3] == "PASS" and row2.split()[3] == "FAIL"
    assert "t: workload w0 (320 MiB mixed): 1 corrupted pages in the 'recheck' phase" in table


@pytest.mark.parametrize("code,timed_out,empty,expected", [
    (1, False, False, ("exit", 0)),
    (3, False, False, ("exit", 1)),
    (1, False, True, ("qemu-error", None)),  # QEMU's own failure exit, nothing booted
    (0, False, False, ("reset", None)),
    (-6, False, False, ("qemu-error", None)),
    (None, True, False, ("timeout", None)),
])
def test_decode_exit(code, timed_out, empty, expected):
    assert decode_exit(code, timed_out, empty) == expected


def test_decode_exit_hang():
    assert decode_exit(None, False, False, hung=True) == ("hang", None)


def test_pages_left_unverified_fail():
    lines = good_lines()
    short = json.loads(workload("w0", "run").split(" ", 1)[1])
    short["pages_checked"] -= 1
    lines[lines.index(workload("w0", "run"))] = rec(short)
    r = judge(scenario(), text(lines), seconds=36.5, accel="tcg")
    assert not r.passed
    assert any("not every page was verified" in reason for reason in r.reasons), r.reasons


def test_bug_on_is_a_splat():
    lines = good_lines()
    at = lines.index("memhog: w0: fill 100%")
    lines[at:at] = ["------------[ cut here ]------------",
                    "[   12.000000] kernel BUG at mm/zcache/zcache-main.c:235!",
                    "[   12.000001] invalid opcode: 0000 [#1] SMP"]
    r = judge(scenario(), text(lines), seconds=36.5, accel="tcg")
    assert not r.passed
    assert any("kernel BUG at mm/zcache/zcache-main.c:235!" in reason for reason in r.reasons), r.reasons


def test_a_guest_with_fewer_cpus_than_asked_fails():
    import dataclasses

    r = judge(dataclasses.replace(scenario(), cpus=2), text(good_lines()), seconds=36.5, accel="tcg")
    assert not r.passed
    assert any("the guest has 1 CPU(s) but the scenario asks for 2" in x for x in r.reasons), r.reasons


def test_an_oom_kill_is_named_as_such_not_as_a_bare_call_trace():
    lines = good_lines()
    at = lines.index("memhog: w0: fill 100%")
    lines[at:at] = [
        "[  329.312102] init invoked oom-killer: gfp_mask=0x400dc0(GFP_KERNEL_ACCOUNT|__GFP_ZERO), order=3,"
        " oom_score_adj=0",
        "[  329.312955] COMPACTION is disabled!!!",
        "[  329.313829] Call Trace:",
        "[  329.313980]  <TASK>",
        "[  329.314138]  dump_stack_lvl+0x4c/0x5f",
    ]
    r = judge(scenario(), text(lines))
    assert not r.passed
    assert [s.kind for s in r.splats] == ["oom"]
    assert any(x.startswith("kernel oom at console line") and "order=3" in x for x in r.reasons), r.reasons
