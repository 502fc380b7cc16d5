"""dnnkernels.timing: the one timing function (no wall-clock value is ever asserted)."""

from __future__ import annotations

import pytest

from dnnkernels import timing


def test_time_medians_measures_every_callable():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1

        return fn

    times = timing.time_medians({"a": make("a"), "b": make("b")}, min_run_time=0.002, rounds=2)
    assert set(times) == {"a", "b"} and all(t > 0 for t in times.values())
    assert calls["a"] > 0 and calls["b"] > 0


@pytest.mark.parametrize("clock", ["wall", "thread", "process"])
def test_time_medians_runs_on_each_clock(clock):
    """Busy work costs time on every clock (a sleep would cost no CPU time: never used)."""
    (seconds,) = timing.time_medians(
        {"sum": lambda: sum(range(20_000))}, 1, 0.01, 1, clock
    ).values()
    assert seconds > 0, f"{clock}: {seconds} s for summing 20000 ints"


def test_time_medians_refuses_the_thread_clock_with_several_threads():
    with pytest.raises(ValueError, match="expected threads=1"):
        timing.time_medians({"f": lambda: None}, threads=2, clock="thread")
    with pytest.raises(ValueError, match="clock: got 'cpu'"):
        timing.time_medians({"f": lambda: None}, clock="cpu")
