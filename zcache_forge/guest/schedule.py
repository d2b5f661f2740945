"""Run several guests at once, within a budget of host CPUs.

TCG runs each guest CPU on a host thread, so a 1-CPU guest keeps about one host core busy. With
`jobs` host CPUs for guests, scenarios start in the order given as long as the CPUs of the
running guests plus the next one's fit; a guest wider than the budget still runs, alone. The
results come back in the order given, whatever order the guests finish in.

One guest at a time (jobs=1) is the default: a guest's seconds and throughput are then its own.
With more, guests share the host, which is what CI wants (verdicts, not figures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol, TypeVar

R = TypeVar("R")


class HasCpus(Protocol):
    name: str
    cpus: int


S = TypeVar("S", bound=HasCpus)


def run_all(items: Sequence[S], run_one: Callable[[int, S], R], jobs: int = 1,
            on_abort: Callable[[], None] | None = None, width: Callable[[S], int] | None = None) -> list[R]:
    """run_one(index, item) for every item, up to `jobs` CPUs' worth at once; results in order.
    width(item): the host CPUs an item keeps busy (default: its cpus; a two-guest run counts both guests').

    When one raises (or the caller is interrupted), no further item starts, on_abort() is called
    to stop the ones running (QEMU processes), and the first exception propagates."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, found {jobs}")
    if jobs == 1 or len(items) <= 1:
        return [run_one(i, item) for i, item in enumerate(items)]
    results: list[R | None] = [None] * len(items)
    pending = list(enumerate(items))
    running: dict[Future[R], tuple[int, int]] = {}  # future -> (index, cpus)
    cpus_of = width or (lambda item: item.cpus)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="guest") as pool:
        try:
            while pending or running:
                busy = sum(cpus for _, cpus in running.values())
                while pending and (not running or busy + cpus_of(pending[0][1]) <= jobs):
                    i, item = pending.pop(0)
                    running[pool.submit(run_one, i, item)] = (i, cpus_of(item))
                    busy += cpus_of(item)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    i, _ = running.pop(fut)
                    results[i] = fut.result()  # raises the guest's exception here
        except BaseException:
            pending.clear()
            if on_abort is not None:
                on_abort()
            raise
    return results  # type: ignore[return-value]
