# Generated automatically from src/dnnkernels/timing.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""One timing function for every benchmark and study of the kit.

:func:`time_medians` measures callables side by side with ``torch.utils.benchmark``
(``Timer.blocked_autorange``), in interleaved rounds so that a change of machine load hits
all of them alike, and returns the median seconds per call of each. The clock is stated
by the caller:

- ``"wall"``: ``timeit.default_timer`` (what a user waits; inflated by other jobs on a
  shared machine);
- ``"thread"``: ``time.thread_time``, the CPU time of the calling thread, where torch does
  all its work with one thread: time spent waiting while other jobs run does not count, so
  ratios of two timings stay meaningful under load (only with ``threads=1``);
- ``"process"``: ``time.process_time``, the CPU time of every thread of the process.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable, Mapping

from dnnkernels.checks import check_choice, check_int, describe

CLOCKS: dict[str, Callable[[], float]] = {
    "wall": timeit.default_timer,
    "thread": time.thread_time,
    "process": time.process_time,
}

#: how a report names each clock
CLOCK_NAMES = {
    "wall": "wall clock (`timeit.default_timer`)",
    "thread": "CPU time of the timing thread (`time.thread_time`), so other jobs do not count",
    "process": "CPU time of the process, all threads (`time.process_time`)",
}


def steady_clock(threads: int) -> str:
    """The clock least disturbed by other jobs: ``"thread"`` with one torch thread (where
    torch does all its work), ``"wall"`` with several (the calling thread's CPU time would
    miss the work of the others)."""
    return "thread" if check_int("threads", threads, low=1) == 1 else "wall"


def time_medians(
    fns: Mapping[str, Callable[[], object]],
    threads: int = 1,
    min_run_time: float = 0.3,
    rounds: int = 3,
    clock: str = "wall",
) -> dict[str, float]:
    """Median seconds per call of each callable, measured in interleaved rounds.

    Each round runs ``torch.utils.benchmark.Timer(stmt="fn()", num_threads=threads,
    timer=CLOCKS[clock]).blocked_autorange(min_run_time=min_run_time / rounds)`` on every
    callable in turn; the result for a callable is the median of the per-call times of all
    its blocks over all rounds. A slow callable runs at least twice a round (once to size
    the blocks, once measured).

    Args:
        fns: name -> callable without arguments.
        threads: torch threads during the measurement, int >= 1.
        min_run_time: seconds of measurement per callable over all rounds, > 0.
        rounds: interleaved rounds, int >= 1.
        clock: ``"wall"``, ``"thread"`` (needs ``threads == 1``) or ``"process"``.

    Returns:
        name -> median seconds per call (float).
    """
    from torch.utils import benchmark

    check_int("threads", threads, low=1)
    check_int("rounds", rounds, low=1)
    if isinstance(min_run_time, bool) or not isinstance(min_run_time, int | float):
        raise TypeError(f"min_run_time: got {describe(min_run_time)}, expected a number")
    if not min_run_time > 0:
        raise ValueError(f"min_run_time: got {min_run_time}, expected a positive number")
    check_choice("clock", clock, tuple(CLOCKS))
    if clock == "thread" and threads != 1:
        raise ValueError(
            f"clock: got 'thread' with threads={threads}, expected threads=1 (the CPU time "
            "of the calling thread misses the work of the others; use 'wall' or 'process')"
        )
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = benchmark.Timer(
                stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=CLOCKS[clock]
            )
            times[name].extend(timer.blocked_autorange(min_run_time=min_run_time / rounds).times)
    return {name: float(statistics.median(t)) for name, t in times.items()}
