# Generated automatically from src/dnnkernels/bitwidth_bench.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""The benchmark of the integer engine (the bitwidth section of ``BENCHMARKS.md``).

:func:`benchmark` times :func:`dnnkernels.intengine.evaluate` on the whole test set per
accumulator width and mode (wall clock with 2 threads, the target's setting, and CPU time
of 1 thread), and the naive loop engine against the fast one on a few images; the
section states every time, the target and whether it was met. Run by
``python -m dnnkernels.bitwidth`` (see :mod:`dnnkernels.bitwidth`).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections.abc import Callable, Iterable

import torch

from dnnkernels.accumulator import MODES
from dnnkernels.intengine import Evaluation, evaluate, integer_forward
from dnnkernels.quantize import QuantizedNet
from dnnkernels.report import cpu_model, load_average
from dnnkernels.timing import time_medians


def _timed(fn: Callable[[], object], threads: int, rounds: int, clock: str):
    """``(median seconds per call, the last result)`` of ``fn`` by :func:`time_medians`:
    ``rounds`` rounds of one measured call each (after the call that sizes the block)."""
    box: dict[str, object] = {}

    def call() -> None:
        box["result"] = fn()

    seconds = time_medians({"fn": call}, threads, min_run_time=1e-6, rounds=rounds, clock=clock)
    return seconds["fn"], box["result"]


def benchmark(
    qnet: QuantizedNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    widths: Iterable[int],
    loop_images: int = 2,
    repeats: int = 3,
    target: float = 5.0,
) -> tuple[str, dict]:
    """Time :func:`evaluate` on the whole set per width and mode, and loop against fast.

    Each time is the median of ``repeats`` measured runs (:func:`dnnkernels.timing.time_medians`,
    one call a round after the one that sizes the block): the wall-clock time with 2 torch
    threads (the target's setting: ``target`` seconds on 2 cores, judged on it) and the CPU
    time of a 1-thread run (the work of one core, which other jobs on a shared machine do
    not inflate). Loop against fast: the same ``loop_images`` images at each width,
    saturate, CPU time of 1 thread.

    Returns:
        ``(section, numbers)``: the BENCHMARKS.md section (markdown) and the raw numbers.
    """
    widths = list(widths)
    results, loops = [], []
    for b in widths:
        for mode in MODES:

            def run(b=b, mode=mode) -> Evaluation:
                return evaluate(qnet, images, labels, b, mode)

            wall, _ = _timed(run, threads=2, rounds=repeats, clock="wall")
            cpu, ev = _timed(run, threads=1, rounds=repeats, clock="process")
            results.append(
                {
                    "bits": b,
                    "mode": mode,
                    "2_threads": wall,
                    "1_threads": cpu,
                    "accuracy": ev.accuracy,
                    "overflows": sum(ev.overflow_outputs.values()),
                }
            )
    few = images[:loop_images]
    for b in widths:
        loop_cpu, loop_out = _timed(
            lambda b=b: integer_forward(qnet, few, b, "saturate", "loop"), 1, 1, "process"
        )
        fast_cpu, fast_out = _timed(
            lambda b=b: integer_forward(qnet, few, b, "saturate", "fast"),
            1,
            max(repeats, 5),
            "process",
        )
        same = torch.equal(loop_out.logits, fast_out.logits) and all(
            torch.equal(loop_out.overflows[n], fast_out.overflows[n]) for n in qnet.layer_names
        )
        loops.append({"bits": b, "loop": loop_cpu, "fast": fast_cpu, "identical": same})
    load = load_average()
    lines = [
        "## Accumulator bit-width: integer LeNet engine (`dnnkernels.bitwidth`)",
        "",
        f"Command: `python -m dnnkernels.bitwidth --out build/bitwidth`. CPU: {cpu_model()}, "
        f"{os.cpu_count()} logical cores; torch {torch.__version__}; "
        f"Python {platform.python_version()}; measured "
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC. "
        f"Load average at the end: {load}: the machine is shared, so "
        "wall-clock times can be inflated by other jobs; the 1-thread CPU time is not.",
        "",
        f"Whole set: {len(images)} test images, uint8 pixels to accuracy "
        f"(`intengine.evaluate`, batches of 128), median of {repeats} runs. "
        f"Target: <= {target:g} s on 2 cores (judged on the wall-clock time with 2 threads).",
        "",
        "| accumulator bits (all layers) | mode | wall-clock, 2 threads (s) | CPU, 1 thread (s) "
        "| target | met | overflowed accumulations | accuracy % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ok = "met" if r["2_threads"] <= target else "missed"
        lines.append(
            f"| {r['bits']} | {r['mode']} | {r['2_threads']:.2f} | {r['1_threads']:.2f} | "
            f"<= {target:g} s | {ok} | {r['overflows']} | {r['accuracy']:.2f} |"
        )
    lines += [
        "",
        f'Naive loops (`method="loop"`, the readable definition) against the vectorized '
        f'engine (`method="fast"`) on the same {loop_images} image(s), saturate, CPU time '
        "of 1 thread:",
        "",
        "| accumulator bits | loop (s) | fast (ms) | speed ratio loop / fast | identical results |",
        "|---|---|---|---|---|",
    ]
    for r in loops:
        lines.append(
            f"| {r['bits']} | {r['loop']:.3f} | {r['fast'] * 1e3:.2f} | "
            f"{r['loop'] / r['fast']:.0f}x | {r['identical']} |"
        )
    lines += [
        "",
        "The fast engine's cost grows with the number of accumulations that can overflow "
        "(they are replayed one addition at a time by `accumulate`): at and above the width "
        "covering the observed partial sums (approach A) there are none; below it, many.",
    ]
    numbers = {"full_set": results, "loop_vs_fast": loops, "load_average": load}
    return "\n".join(lines), numbers
