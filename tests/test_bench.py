"""Light tests of dnnkernels.bench: row structure on tiny sizes and the BENCHMARKS.md sections.

Timings are never asserted (the machine is shared); only the shape of the results, the
targets' bookkeeping and that writing one section preserves every other one.
"""

from __future__ import annotations

import pytest

from dnnkernels import bench, report

KEYS = (
    "section", "case", "method", "seconds", "baseline", "baseline_seconds", "ratio",
    "target", "met", "note",
)  # fmt: skip
FAST = {"min_run_time": 0.001}


def _check_rows(rows, section, n):
    assert len(rows) == n
    for r in rows:
        assert tuple(r) == KEYS and r["section"] == section
        assert r["seconds"] > 0 and r["baseline_seconds"] > 0
        assert r["ratio"] == pytest.approx(r["seconds"] / r["baseline_seconds"])
        assert (r["met"] is None) == (r["target"] == "")


def test_bench_conv2d_rows():
    rows = bench.bench_conv2d((1, 2, 6, 7, 3), **FAST)
    _check_rows(rows, "conv2d", 3)
    by = {r["method"]: r for r in rows}
    assert by["im2col"]["target"] == "within 3x of torch"
    assert by["winograd"]["target"] == "within 5x of torch"
    assert by["winograd4"]["met"] is None
    assert by["im2col"]["met"] == (by["im2col"]["ratio"] <= 3)
    assert all(r["baseline"] == "torch" and r["case"] == "x 1x2x6x7, k 3x2x3x3" for r in rows)


def test_bench_fft_rows_and_crossover():
    rows = bench.bench_fft(12, (3, 5, 7), large_kernel=5, **FAST)
    _check_rows(rows, "fft", 3)
    assert [r["met"] is None for r in rows] == [True, False, False]
    assert all(r["method"] == "fft" and r["baseline"] == "im2col" for r in rows)
    # the crossover is read off the ratios (made up here, no timing is asserted)
    fake = [dict(r) for r in rows]
    for r, ratio in zip(fake, (1.5, 0.8, 0.7), strict=True):
        r["ratio"] = ratio
    assert bench.fft_crossover(fake) == 5
    fake[2]["ratio"] = 1.2
    assert bench.fft_crossover(fake) is None


def test_bench_matmul_rows():
    rows = bench.bench_matmul(80, (8, 64), **FAST)
    _check_rows(rows, "matmul", 2)
    assert rows[0]["met"] is None and rows[1]["target"] == "at least 2x faster"
    assert rows[1]["met"] == (rows[1]["baseline_seconds"] / rows[1]["seconds"] >= 2)
    assert rows[0]["note"].startswith("rel. error")


def test_render_section_and_machine_line():
    rows = bench.bench_matmul(40, (4,), **FAST)
    machine = report.machine_description(1)
    text = bench.render_section("matmul", rows, machine)
    assert machine in text and "| A, B 40x40, rank 4 | svd factored |" in text
    with pytest.raises(ValueError, match="name: got 'lowrank'"):
        bench.render_section("lowrank", rows, machine)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: bench.bench_conv2d(threads=0), ValueError, "threads: got 0"),
        (lambda: bench.bench_conv2d(min_run_time=0), ValueError, "min_run_time: got 0"),
        (lambda: bench.bench_fft(8, (9,)), ValueError, r"kernel_sizes: got 9"),
        (lambda: bench.bench_matmul(8, (0,)), ValueError, r"ranks: got 0"),
        (lambda: bench.bench_matmul(8, (2,), rounds=0), ValueError, r"rounds: got 0"),
    ],
)
def test_bench_bad_arguments(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
