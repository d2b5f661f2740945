"""KUnit's KTAP output on the guest console: parse_ktap() (the kernel's own parser, through ktap's adapter)
and what the verdict makes of it. Every test here needs a kernel tree with tools/testing/kunit; without
one they are skipped, saying where they looked."""

from __future__ import annotations

import json

import pytest

from zcache_forge.guest.judge import judge, kunit_reasons
from zcache_forge.guest.ktap import KtapResult, kunit_counts, parse_ktap
from zcache_forge.report import render_table, to_json

from .test_verdict import good_lines, scenario, text

pytestmark = pytest.mark.usefixtures("kunit_tree")


def stamped(lines: list[str], start: float = 1.5) -> list[str]:
    """The lines as the serial console shows them: printk timestamps in front."""
    return [f"[{start + i / 1000:12.6f}] {line}" for i, line in enumerate(lines)]


def suite(name: str, cases: list[str], failing: dict[str, str] | None = None,
          skipped: tuple[str, ...] = ()) -> list[str]:
    """One suite as KUnit 6.1 prints it (number 1), with expectation failures for `failing`."""
    failing = failing or {}
    out = ["    KTAP version 1", f"    # Subtest: {name}", f"    1..{len(cases)}"]
    for i, case in enumerate(cases, 1):
        if case in failing:
            out += [f"    # {case}: EXPECTATION FAILED at drivers/staging/zcache/{failing[case]}",
                    "    Expected old->frees == 1U, but",
                    "        old->frees == 0",
                    "        1U == 1",
                    f"    not ok {i} {case}"]
        elif case in skipped:
            out.append(f"    ok {i} {case} # SKIP not on this machine")
        else:
            out.append(f"    ok {i} {case}")
    bad = sum(c in failing for c in cases)
    skip = sum(c in skipped for c in cases)
    stats = f"pass:{len(cases) - bad - skip} fail:{bad} skip:{skip} total:{len(cases)}"
    return out + [f"# {name}: {stats}", f"# Totals: {stats}", f"{'not ok' if bad else 'ok'} 1 {name}"]


def numbered(lines: list[str], n: int) -> list[str]:
    """A suite's closing line renumbered to n."""
    last = lines[-1].replace(" 1 ", f" {n} ", 1)
    return lines[:-1] + [last]


TMEM = [f"tmem_test_{i}" for i in range(12)]
ZBUD = [f"zbud_test_{i}" for i in range(10)]


def run(*suites: list[str]) -> list[str]:
    out = ["KTAP version 1", f"1..{len(suites)}"]
    for i, s in enumerate(suites, 1):
        out += numbered(s, i)
    return out


def test_all_passing_with_timestamps_and_interleaved_messages():
    lines = ["Linux version 6.1.0", "zcache: using lzo, refusing pages that compress to more than 3563 bytes",
             *run(suite("zcache_tmem", TMEM), suite("zcache_zbud", ZBUD))]
    lines.insert(8, "random: crng init done")  # the kernel says something in the middle
    lines.append("Run /init as init process")
    results = parse_ktap(stamped(lines))
    assert [r.status for r in results] == ["ok"] * 24
    assert [r.case for r in results if r.suite == "zcache_tmem"] == [*TMEM, None]
    assert results[0] == KtapResult("zcache_tmem", "tmem_test_0", "ok", 8)
    assert results[12] == KtapResult("zcache_tmem", None, "ok", results[12].line)
    assert kunit_counts(results) == {"suites": 2, "cases": 22, "passed": 22, "failed": 0, "skipped": 0,
                                     "incomplete": 0}
    assert kunit_reasons(results) == []


def test_failing_case_is_named_with_its_expectation():
    lines = run(suite("zcache_tmem", TMEM, failing={"tmem_test_3": "tmem_test.c:290"}),
                suite("zcache_zbud", ZBUD))
    results = parse_ktap(text(stamped(lines)).split("\n"))  # CR LF line ends
    bad = [r for r in results if r.status == "not ok"]
    assert [(r.suite, r.case) for r in bad] == [("zcache_tmem", "tmem_test_3"), ("zcache_tmem", None)]
    assert bad[0].note == ("tmem_test_3: EXPECTATION FAILED at drivers/staging/zcache/tmem_test.c:290")
    assert kunit_counts(results)["failed"] == 1 and kunit_counts(results)["passed"] == 21
    # the suite failed only through its case: one reason, for the case
    assert kunit_reasons(results) == [
        f"KUnit zcache_tmem.tmem_test_3: not ok (console line {bad[0].line}): "
        "tmem_test_3: EXPECTATION FAILED at drivers/staging/zcache/tmem_test.c:290"]


def test_skip_is_neither_pass_nor_failure():
    results = parse_ktap(run(suite("zcache_zbud", ZBUD, skipped=("zbud_test_2",))))
    assert results[2] == KtapResult("zcache_zbud", "zbud_test_2", "skip", results[2].line)
    counts = kunit_counts(results)
    assert (counts["passed"], counts["skipped"], counts["failed"]) == (9, 1, 0)
    assert kunit_reasons(results) == []


def test_suite_that_fails_to_initialize():
    lines = ["KTAP version 1", "1..2", "    # failed to initialize (-12)", "not ok 1 zcache_tmem",
             *numbered(suite("zcache_zbud", ZBUD), 2)]
    results = parse_ktap(lines)
    assert results[0] == KtapResult("zcache_tmem", None, "not ok", 4, note="failed to initialize (-12)")
    assert kunit_reasons(results) == [
        "KUnit zcache_tmem: not ok (console line 4): failed to initialize (-12)"]


def test_parameterised_case():
    lines = ["KTAP version 1", "1..1", "    KTAP version 1", "    # Subtest: zcache_tmem", "    1..2",
             "    ok 1 tmem_test_a",
             "        KTAP version 1", "        # Subtest: tmem_test_sizes",
             "        ok 1 small", "        # tmem_test_sizes: ASSERTION FAILED at tmem_test.c:9",
             "        not ok 2 large",
             "    # tmem_test_sizes: pass:1 fail:1 skip:0 total:2",
             "    not ok 2 tmem_test_sizes",
             "# zcache_tmem: pass:1 fail:1 skip:0 total:2", "not ok 1 zcache_tmem"]
    results = parse_ktap(lines)
    assert [(r.case, r.param, r.status) for r in results] == [
        ("tmem_test_a", None, "ok"), ("tmem_test_sizes", "small", "ok"),
        ("tmem_test_sizes", "large", "not ok"), ("tmem_test_sizes", None, "not ok"), (None, None, "not ok")]
    assert kunit_counts(results)["cases"] == 2  # parameters are not cases of their own
    assert kunit_reasons(results) == ["KUnit zcache_tmem.tmem_test_sizes[large]: not ok (console line 11): "
                                      "tmem_test_sizes: ASSERTION FAILED at tmem_test.c:9"]


def test_console_that_ends_inside_a_suite():
    lines = run(suite("zcache_tmem", TMEM), suite("zcache_zbud", ZBUD))
    cut = lines.index("    ok 4 zbud_test_3")
    results = parse_ktap(lines[:cut] + ["BUG: kernel NULL pointer dereference, address: 0000000000000008"])
    incomplete = [r for r in results if r.status == "incomplete"]
    # the kernel's parser counts the suite cut short as the run's second suite: the run itself is not
    # short of its plan, the suite is
    assert [(r.suite, r.case) for r in incomplete] == [("zcache_zbud", None)]
    assert incomplete[0].note == "the console ended first; 3 of 10 planned results"
    assert kunit_counts(results)["incomplete"] == 1
    (reason,) = kunit_reasons(results)
    assert reason.startswith("KUnit zcache_zbud: incomplete at console line")
    assert reason.endswith("the console ended first; 3 of 10 planned results")


def test_a_run_short_of_its_planned_suites():
    lines = run(suite("zcache_tmem", TMEM))
    lines[1] = "1..2"  # the second suite never started
    results = parse_ktap(lines)
    assert [(r.suite, r.status, r.note) for r in results if r.status != "ok"] == [
        ("", "incomplete", "1 of 2 planned suites")]
    assert kunit_reasons(results)[-1].startswith("KUnit (top level): incomplete at console line")


def test_lost_result_lines_are_incomplete():
    lines = run(suite("zcache_zbud", ZBUD))
    lines.remove("    ok 5 zbud_test_4")
    results = parse_ktap(lines)
    assert [(r.suite, r.status, r.note) for r in results if r.status != "ok"] == [
        ("zcache_zbud", "incomplete", "9 of 10 planned results")]


def test_no_ktap_and_text_after_a_finished_run_are_ignored():
    assert parse_ktap(["ok 1 not a test", "not ok 2 neither", "# Subtest: no"]) == []
    results = parse_ktap([*run(suite("zcache_zbud", ZBUD)), "not ok 1 something else", "zcf-init: done"])
    assert kunit_reasons(results) == [] and len(results) == 11


def test_a_failing_kunit_case_fails_the_scenario():
    ok = judge(scenario(), text(run(suite("zcache_tmem", TMEM)) + good_lines()), seconds=36.5, accel="tcg")
    assert ok.passed, ok.reasons
    assert len(ok.kunit) == 13
    lines = run(suite("zcache_tmem", TMEM, failing={"tmem_test_7": "tmem_test.c:123"})) + good_lines()
    bad = judge(scenario(), text(stamped(lines)), seconds=36.5, accel="tcg")
    assert not bad.passed
    assert [x for x in bad.reasons if x.startswith("KUnit")] == [
        "KUnit zcache_tmem.tmem_test_7: not ok (console line 17): "
        "tmem_test_7: EXPECTATION FAILED at drivers/staging/zcache/tmem_test.c:123"]
    assert bad.reasons == [x for x in bad.reasons if x.startswith("KUnit")]  # nothing else is wrong
    data = json.loads(to_json([ok, bad]))
    assert data[1]["kunit"][7] == {"suite": "zcache_tmem", "case": "tmem_test_7", "status": "not ok",
                                   "line": 17, "param": None,
                                   "note": "tmem_test_7: EXPECTATION FAILED at "
                                           "drivers/staging/zcache/tmem_test.c:123"}
    header, _, row_ok, row_bad = render_table([ok, bad]).splitlines()[:4]
    assert header.split()[-1] == "kunit"
    assert row_ok.split()[-1] == "12/12" and row_bad.split()[-1] == "11/12"


def test_kernel_without_kunit():
    r = judge(scenario(), text(good_lines()), seconds=36.5, accel="tcg")
    assert r.passed and r.kunit == []
    assert render_table([r]).splitlines()[2].split()[-1] == "-"
