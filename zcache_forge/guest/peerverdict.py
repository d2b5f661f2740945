"""The verdict's part on a two-guest run (RAMster): the peer B's console and what the host did to it.

B's counters records (one per phase of A's, printed when A's /init sends the phase) join A's counters
under the prefix ``peer.`` (``peer.zcache.peer_puts``), so ``expect`` lines can name them. The rules:

- B booted, printed no splat, and, unless the scenario kills it, answered every phase of A's, got A's
  "done" and exited with status 0 by itself;
- a run that is not killed shows RAMster at work: A moved pages to B (``zcache.remote_puts`` > 0) and B
  took them (``peer.zcache.peer_puts`` > 0) under load;
- a scenario that kills B must have killed it (A still running), and A must have remotified pages by
  then; a lost page (SIGBUS) must come with a failed remote get;
- a scenario that hangs B (stopped, then continued) must have stopped it (A still running); B then lives
  on, so the rules of a live B hold, and besides A must have noticed the hang (its connection to B lost:
  ``zcache.remote_conn_lost`` > 0 at the end) and a lost page must come with a failed remote get.
  Lost pages are allowed only with a killed or hung B (judge.workload_reasons); a wrong page never is.

One sentence says what happened (``story``), in the table and the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zcache_forge.guest.console import TAIL_LINES, Console, StepRecord, parse_console
from zcache_forge.guest.peer import COUNTER_PREFIX, HOST
from zcache_forge.guest.qemu import PeerRun
from zcache_forge.guest.scenarios import Scenario

# A's RAMster counters (the sending side) and B's (the receiving side), as the kernel names them
SENDER_COUNTERS = ("remote_puts", "failed_remote_puts", "remote_gets", "failed_remote_gets", "remote_flushes",
                   "failed_remote_flushes", "remote_pages", "remote_pages_max", "remote_get_us",
                   "remote_connects", "remote_conn_lost")
PEER_COUNTERS = ("peer_puts", "failed_peer_puts", "peer_gets", "failed_peer_gets", "peer_flushes",
                 "peer_pages", "peer_pages_max", "bad_msg_len", "bad_msg_op", "bad_msg_pool", "bad_msg_seq")


@dataclass(frozen=True)
class PeerOutcome:
    """The peer B of a two-guest run, as far as the verdict cares (from qemu.PeerRun and B's console)."""

    console: Console
    port: int
    exit_kind: str | None = None  # B's QEMU (qemu.GuestRun.exit_kind); None: it never started
    guest_status: int | None = None
    seconds: float = 0.0
    console_log: Path | None = None
    ready_s: float | None = None
    kill_after_s: int | None = None
    loaded_at_s: float | None = None   # seconds of A's run when A was loaded
    killed_at_s: float | None = None   # seconds of A's run when the host killed B
    hang_after_s: int | None = None
    hang_for_s: int | None = None
    hung_at_s: float | None = None     # seconds of A's run when the host stopped B (SIGSTOP)
    resumed_at_s: float | None = None  # ... and continued it (SIGCONT)
    stopped: str = ""                  # the host stopped B for another reason (it did not exit)
    error: str = ""                    # B never became ready: A did not run

    @property
    def killed(self) -> bool:
        return self.killed_at_s is not None

    @property
    def hung(self) -> bool:
        return self.hung_at_s is not None

    @property
    def disrupted(self) -> bool:
        """The host really killed or stopped B: pages A had on it may be lost (SIGBUS)."""
        return self.killed or self.hung


def from_run(peer: PeerRun) -> PeerOutcome:
    """Read B's console of a finished two-guest run."""
    run = peer.run
    text = ""
    if run is not None:
        try:
            text = run.console_log.read_text(errors="replace")
        except FileNotFoundError:
            pass
    return PeerOutcome(
        console=parse_console(text), port=peer.port, exit_kind=run.exit_kind if run else None,
        guest_status=run.guest_status if run else None, seconds=run.seconds if run else 0.0,
        console_log=run.console_log if run else None, ready_s=peer.ready_s, kill_after_s=peer.kill_after_s,
        loaded_at_s=peer.loaded_at_s, killed_at_s=peer.killed_at_s, hang_after_s=peer.hang_after_s,
        hang_for_s=peer.hang_for_s, hung_at_s=peer.hung_at_s, resumed_at_s=peer.resumed_at_s,
        stopped=peer.stopped, error=peer.error)


def merge_counters(counters: dict[str, dict[str, float]], peer_con: Console) -> None:
    """B's counters records into A's phases, each key under the prefix peer. (only phases A recorded)."""
    for rec in peer_con.counters:
        if rec.phase in counters:
            counters[rec.phase].update({COUNTER_PREFIX + k: v for k, v in rec.values.items()})


def _steps(con: Console, name: str) -> list[StepRecord]:
    return [s for s in con.steps if s.step == name]


def lost_pages(con: Console) -> int:
    """Pages A's workloads lost to SIGBUS: memhog's count is cumulative over its phases, so the last
    record of each workload counts."""
    last: dict[str, int] = {}
    for w in con.workloads:
        last[w.id] = max(last.get(w.id, 0), w.pages_sigbus)
    return sum(last.values())


def _final(counters: dict[str, dict[str, float]], scenario: Scenario) -> dict[str, float]:
    """A's last counters record (cumulative counters: the run's totals)."""
    for phase in reversed(scenario.phases()):
        if phase in counters:
            return counters[phase]
    return {}


def peer_key(name: str) -> str:
    """B's counter name in the summary: peer_puts as is, bad_msg_len as peer_bad_msg_len."""
    return name if "peer" in name else f"peer_{name}"


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def peer_summary(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]],
                 out: PeerOutcome) -> dict[str, float | None]:
    """RAMster's figures of the run: A's sending side and B's receiving side over the whole run, the
    mean time of a remote get, lost pages, and when B was killed or stopped."""
    final = _final(counters, scenario)
    s: dict[str, float | None] = {name: final.get(f"zcache.{name}") for name in SENDER_COUNTERS}
    # B's totals: its last record; a killed B's last word came before its death, so unknown then
    last = out.console.counters[-1].values if out.console.counters and not out.killed else {}
    for name in PEER_COUNTERS:
        s[peer_key(name)] = last.get(f"zcache.{name}")
    gets, us = s.get("remote_gets"), s.get("remote_get_us")
    s["remote_get_mean_us"] = round(us / gets, 1) if gets and us is not None else None
    s["lost_pages"] = lost_pages(con)
    s["peer_killed_at_s"] = out.killed_at_s
    s["peer_hung_at_s"] = out.hung_at_s
    s["peer_loaded_at_s"] = out.loaded_at_s
    return s


def _planned(scenario: Scenario) -> tuple[str, int] | None:
    """What the scenario has the host do to B once A is loaded: ("killed", kill_after_s) or ("stopped",
    hang_after_s); None: nothing."""
    p = scenario.peer
    if p is not None and p.kill_after_s is not None:
        return "killed", p.kill_after_s
    if p is not None and p.hang_after_s is not None:
        return "stopped", p.hang_after_s
    return None


def _when(out: PeerOutcome, at: float) -> str:
    """'20 s (15 s after A was loaded)': a moment of A's run."""
    return f"{at:.0f} s" + (f" ({at - out.loaded_at_s:.0f} s after A was loaded)"
                            if out.loaded_at_s is not None else "")


def _losses(s: dict[str, float | None], corrupted: int) -> str:
    """What A lost with its peer."""
    return (f"{_n(s.get('failed_remote_gets'))} remote gets failed -> {_n(s.get('lost_pages'))} pages lost "
            f"(SIGBUS), {corrupted} wrong pages, remote_conn_lost {_n(s.get('remote_conn_lost'))}")


def story(scenario: Scenario, con: Console, s: dict[str, float | None], out: PeerOutcome) -> str:
    """What happened between the two guests, in one line."""
    corrupted = sum(w.pages_corrupted for w in con.workloads)
    if out.error:
        return f"peer B never served: {out.error}"
    head = f"peer B on {HOST}:{out.port}" + (f" (ready after {out.ready_s:.0f} s)" if out.ready_s else "")
    if out.killed_at_s is not None:
        return (f"peer killed at {_when(out, out.killed_at_s)}; A: {_n(s.get('remote_puts'))} pages "
                f"remotified before, {_losses(s, corrupted)}")
    if out.hung_at_s is not None:
        held = (out.resumed_at_s - out.hung_at_s) if out.resumed_at_s is not None else out.hang_for_s
        return (f"peer hung at {_when(out, out.hung_at_s)} for {_n(held)} s; A: {_n(s.get('remote_puts'))} "
                f"pages remotified, {_losses(s, corrupted)}; B took {_n(s.get('peer_puts'))}, held at most "
                f"{_n(s.get('peer_pages_max'))}")
    planned = _planned(scenario)
    if planned is not None:
        return f"{head}: was to be {planned[0]} {planned[1]} s after A was loaded, but was not"
    mean = s.get("remote_get_mean_us")
    return (f"{head}: A remotified {_n(s.get('remote_puts'))} pages, got {_n(s.get('remote_gets'))} back "
            f"(mean {'-' if mean is None else f'{mean:,.0f}'} us); B took {_n(s.get('peer_puts'))}, held at "
            f"most {_n(s.get('peer_pages_max'))}; {_n(s.get('lost_pages'))} pages lost, {corrupted} wrong")


def _peer_tail(out: PeerOutcome) -> str:
    return "\n".join(f"    {ln}" for ln in out.console.tail[-TAIL_LINES:]) or "    (the console is empty)"


def peer_reasons(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]],
                 out: PeerOutcome) -> list[str]:
    """Every rule of a two-guest run on B and on RAMster's counters (A's own rules are judge's)."""
    pc = out.console
    log = f" (log: {out.console_log})" if out.console_log else ""
    reasons: list[str] = []
    if not pc.boots:
        if out.exit_kind is not None:
            reasons.append(f"peer B never booted (no boot record){log}; its last console lines:\n"
                           f"{_peer_tail(out)}")
        return reasons + _splats(pc)
    reasons += [f"peer B: guest /init: {rec.message}" for rec in pc.guest_errors]
    reasons += [f"peer B: unreadable or malformed record at console line {e.line}: {e.why}"
                for e in pc.errors]
    reasons += _splats(pc)
    if out.error:
        return reasons  # A never ran: exit_reasons names it
    if out.killed:
        return reasons + _killed_reasons(scenario, con, counters)
    reasons += _undone_reasons(scenario, out)
    if out.hung:
        reasons += _hung_reasons(scenario, con, counters)
    reasons += _exit_reasons(out, log)
    reasons += _phase_reasons(scenario, con, counters)
    reasons += _ramster_reasons(counters)
    return reasons


def _splats(pc: Console) -> list[str]:
    out = []
    for s in pc.splats:
        first = s.text.splitlines()[min(2, s.line - 1)] if s.text else ""
        out.append(f"peer B: kernel {s.kind} at console line {s.line}: {first.strip()}")
    return out


def _exit_reasons(out: PeerOutcome, log: str) -> list[str]:
    if out.stopped:
        return [f"{out.stopped}; its console said last: {(out.console.tail or ['(nothing)'])[-1]!r}{log}"]
    reasons = []
    if out.exit_kind != "exit":
        reasons.append(f"peer B's QEMU ended with {out.exit_kind}{log}")
    elif out.guest_status not in (0, None):
        reasons.append(f"peer B exited with status {out.guest_status}{log}")
    if not _steps(out.console, "peer-done"):
        reasons.append(f"peer B never got A's 'done'{log}")
    return reasons


def _phase_reasons(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]]) -> list[str]:
    """B printed a counters record for each of A's (A's /init asked it)."""
    reasons = [f"A's /init could not reach peer B's control port for its {s.raw.get('message')!r} message"
               for s in _steps(con, "peer-unreachable")]
    for phase in scenario.phases():
        values = counters.get(phase)
        if values is not None and not any(k.startswith(COUNTER_PREFIX) for k in values):
            reasons.append(f"peer B printed no counters record for A's {phase!r} phase")
    return reasons


def _ramster_reasons(counters: dict[str, dict[str, float]]) -> list[str]:
    """Under load A's pages went to B: remote puts on A, peer puts on B."""
    pressure = counters.get("pressure")
    if pressure is None:
        return []  # judge.swap_reasons says so
    reasons = []
    puts = pressure.get("zcache.remote_puts")
    if puts is None:
        reasons.append("A reports no zcache.remote_puts: this kernel has no RAMster "
                       "(see A's ramster-peer step)")
    elif puts <= 0:
        reasons.append("A moved no page to its peer under load (zcache.remote_puts 0 at pressure): swap past "
                       "RAM and pool (raise the workloads or lower zcache.max_pool_percent)")
    took = pressure.get(f"{COUNTER_PREFIX}zcache.peer_puts")
    if took is None and any(k.startswith(COUNTER_PREFIX) for k in pressure):
        reasons.append("peer B reports no zcache.peer_puts: its kernel has no RAMster")
    elif took is not None and took <= 0:
        reasons.append("peer B took none of A's pages under load (peer.zcache.peer_puts 0 at pressure)")
    return reasons


def _undone_reasons(scenario: Scenario, out: PeerOutcome) -> list[str]:
    """The scenario has the host kill or stop B, and it did not (A finished first, or never got loaded)."""
    planned = _planned(scenario)
    if planned is None or out.killed or out.hung:
        return []
    verb, after = planned
    when = ("A finished first" if out.loaded_at_s is not None
            else "A's console never showed it was loaded (no 'before' counters record)")
    return [f"peer B was to be {verb} {after} s after A was loaded, but {when}: the run says nothing about "
            f"a {'dead' if verb == 'killed' else 'hung'} peer"]


def _unexplained_losses(con: Console, final: dict[str, float], cause: str) -> list[str]:
    """Every page A lost (SIGBUS) is one a remote get failed for: none lost for another reason."""
    lost = lost_pages(con)
    failed = final.get("zcache.failed_remote_gets")
    if lost and failed is not None and failed <= 0:
        return [f"A lost {lost} pages (SIGBUS) with no failed remote get: they were lost for another reason "
                f"than {cause}"]
    return []


def _killed_reasons(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]]) -> list[str]:
    """B was killed mid-run: A had pages on it, and every page A lost is one a remote get failed for."""
    final = _final(counters, scenario)
    reasons = []
    puts = final.get("zcache.remote_puts")
    if puts is not None and puts <= 0:
        reasons.append("A had moved no page to its peer when the peer was killed (zcache.remote_puts 0): "
                       "the run says nothing about pages lost with it (raise kill_after_s)")
    return reasons + _unexplained_losses(con, final, "the dead peer")


def _hung_reasons(scenario: Scenario, con: Console, counters: dict[str, dict[str, float]]) -> list[str]:
    """B was stopped and continued: A noticed (a request B left unanswered for zcache.ramster_timeout_ms
    drops A's connection), and every page A lost is one a remote get failed for."""
    final = _final(counters, scenario)
    reasons = []
    conn_lost = final.get("zcache.remote_conn_lost")
    if conn_lost is None or conn_lost <= 0:
        found = "not reported" if conn_lost is None else f"{conn_lost:g}"
        reasons.append(f"A never noticed its peer hang: zcache.remote_conn_lost is {found} in A's last "
                       "counters record (expected > 0: a request the stopped peer left unanswered for "
                       "zcache.ramster_timeout_ms drops the connection)")
    return reasons + _unexplained_losses(con, final, "the hung peer")


def peer_record(scenario: Scenario, out: PeerOutcome, line: str) -> dict[str, Any]:
    """What the result (and the JSON) keeps of B."""
    boot = out.console.boots[0].raw if out.console.boots else None
    return {
        "port": out.port, "memory_mib": scenario.peer.memory_mib if scenario.peer else None,
        "pool_percent": scenario.peer.pool_percent if scenario.peer else None,
        "ready_s": out.ready_s, "kill_after_s": out.kill_after_s, "loaded_at_s": out.loaded_at_s,
        "killed_at_s": out.killed_at_s, "hang_after_s": out.hang_after_s, "hang_for_s": out.hang_for_s,
        "hung_at_s": out.hung_at_s, "resumed_at_s": out.resumed_at_s,
        "exit_kind": out.exit_kind, "guest_status": out.guest_status,
        "seconds": round(out.seconds, 2), "stopped": out.stopped, "error": out.error,
        "console_log": str(out.console_log) if out.console_log else None, "boot": boot,
        "done_status": out.console.done_status, "splats": [sp.text for sp in out.console.splats],
        "story": line,
    }
