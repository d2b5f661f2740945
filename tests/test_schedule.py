"""guest/schedule.py: scenarios side by side within a budget of host CPUs, results in order."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from zcache_forge.guest import schedule


@dataclass
class Item:
    name: str
    cpus: int = 1
    seconds: float = 0.05


class Recorder:
    """run_one for the scheduler: sleeps as a guest would, and records how many CPUs were busy."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy = 0
        self.peak = 0
        self.started: list[str] = []

    def __call__(self, i: int, item: Item) -> str:
        with self.lock:
            self.busy += item.cpus
            self.peak = max(self.peak, self.busy)
            self.started.append(item.name)
        time.sleep(item.seconds)
        with self.lock:
            self.busy -= item.cpus
        return f"{i}:{item.name}"


def test_one_job_runs_in_order_one_at_a_time():
    rec = Recorder()
    items = [Item("a"), Item("b", cpus=2), Item("c")]
    assert schedule.run_all(items, rec, 1) == ["0:a", "1:b", "2:c"]
    assert rec.peak == 2 and rec.started == ["a", "b", "c"]


def test_two_jobs_overlap_and_keep_the_order_of_results():
    rec = Recorder()
    items = [Item("slow", seconds=0.3), Item("fast1"), Item("fast2"), Item("fast3")]
    t0 = time.monotonic()
    assert schedule.run_all(items, rec, 2) == ["0:slow", "1:fast1", "2:fast2", "3:fast3"]
    assert rec.peak == 2
    assert time.monotonic() - t0 < 0.3 + 0.15  # the fast ones ran beside the slow one


def test_a_guest_wider_than_the_budget_runs_alone():
    rec = Recorder()
    items = [Item("a"), Item("wide", cpus=4), Item("b")]
    assert schedule.run_all(items, rec, 2) == ["0:a", "1:wide", "2:b"]
    assert rec.peak == 4  # the wide one alone: 4, never 5


def test_a_failure_stops_the_rest_and_aborts_the_running():
    aborted = []

    def run_one(i: int, item: Item) -> str:
        if item.name == "bad":
            raise RuntimeError("qemu exploded")
        time.sleep(item.seconds)
        return item.name

    items = [Item("bad"), Item("x", seconds=0.2), Item("y"), Item("z")]
    with pytest.raises(RuntimeError, match="qemu exploded"):
        schedule.run_all(items, run_one, 2, on_abort=lambda: aborted.append(True))
    assert aborted == [True]


def test_jobs_below_one_is_refused():
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        schedule.run_all([Item("a")], Recorder(), 0)
