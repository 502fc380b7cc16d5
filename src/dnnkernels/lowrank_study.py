"""The low-rank studies of the svd_rank and mnist assignments, and their report.

:func:`rank_sweep` (error, FLOPs and time of rank-k factored products) and
:func:`dnnkernels.compress.compression_sweep` (accuracy and speed of compressed MLPs),
their plots and tables, and the low-rank section of ``BENCHMARKS.md``.

Command line (writes plots, tables and the low-rank section of ``BENCHMARKS.md``)::

    python -m dnnkernels.lowrank_study --out build/lowrank

(``python -m dnnkernels.lowrank`` runs the same.)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dnnkernels.checks import check_int
from dnnkernels.compress import ALLOCATIONS, compression_sweep
from dnnkernels.lowrank import (
    check_matrix,
    check_ranks,
    default_ranks,
    error_curve,
    factored_matmul_flops,
    low_rank_errors,
)
from dnnkernels.matmul import truncated_svd
from dnnkernels.matrix_families import FAMILIES, _trained_mlp, matrix_family
from dnnkernels.report import (
    load_average,
    machine_description,
    markdown_table,
    pyplot,
    save_figure,
    write_csv,
    write_section,
)
from dnnkernels.timing import CLOCK_NAMES, steady_clock, time_medians


def rank_sweep(
    matrix: torch.Tensor,
    ranks: Sequence[int] | None = None,
    *,
    n: int = 512,
    seed: int = 0,
    measure: bool = True,
    min_run_time: float = 0.2,
    threads: int = 1,
    progress: bool = True,
) -> list[dict]:
    """Error, FLOPs and measured speed-up of the rank-r factored product ``A @ B`` per rank.

    ``A = matrix`` (m, k) (cast to float32); ``B`` (k, n) a fixed standard normal matrix
    (seeded with ``seed``). The SVD of A is computed once (``truncated_svd`` at full rank, in
    float64) and sliced; the factors ``U' = U_r diag(S_r)`` (m, r) and ``Vh_r`` (r, k) are
    precomputed, contiguous float32, before any timing. The timed products are the dense
    ``A @ B`` and the factored ``U' @ (Vh_r @ B)``: the order that can beat the dense product
    (the other order rebuilds A and always costs more than dense), so the measured
    product's FLOPs equal ``flops_factored`` whenever it is below ``flops_dense``.

    Args:
        matrix: float32/float64 tensor (m, k), finite, nonzero.
        ranks: ints in [1, min(m, k)]; default :func:`default_ranks`.
        n: columns of the right operand B.
        seed: seed of B.
        measure: time the products (``torch.utils.benchmark``, median of
            ``blocked_autorange``); if False the time columns are NaN.
        min_run_time: seconds of repeats per timing (dense and factored each).
        threads: torch threads of both timings (default 1, as in ``dnnkernels.bench``).
        progress: show a tqdm bar over the ranks.

    Returns:
        one dict per rank, in the order of ``ranks``, with keys ``rank``, ``rel_error``
        (:func:`low_rank_errors`), ``flops_factored``, ``flops_dense``
        (:func:`factored_matmul_flops`), ``flop_ratio`` (dense / factored),
        ``time_dense_s``, ``time_factored_s`` (median seconds) and ``speedup``
        (time_dense / time_factored).
    """
    check_matrix("matrix", matrix)
    ranks = default_ranks(matrix.shape) if ranks is None else ranks
    ranks = check_ranks("ranks", ranks, matrix.shape)
    check_int("n", n, low=1)
    check_int("seed", seed, low=0)
    m, k = matrix.shape
    errors = low_rank_errors(matrix, ranks).tolist()

    A = matrix.to(torch.float32).contiguous()
    B = torch.randn(k, n, generator=torch.Generator().manual_seed(seed))
    if measure:
        with torch.no_grad():
            U, S, Vh = truncated_svd(A.to(torch.float64), min(m, k))

    rows = []
    for rank, error in zip(tqdm(ranks, desc="ranks", disable=not progress), errors, strict=True):
        factored, dense = factored_matmul_flops(m, k, n, rank)
        time_dense = time_factored = math.nan
        if measure:
            left = (U[:, :rank] * S[:rank]).to(torch.float32).contiguous()
            right = Vh[:rank].to(torch.float32).contiguous()
            times = time_medians(
                {
                    "dense": lambda: torch.mm(A, B),
                    "factored": lambda left=left, right=right: torch.mm(left, torch.mm(right, B)),
                },
                threads,
                min_run_time,
                clock=steady_clock(threads),
            )
            time_dense, time_factored = times["dense"], times["factored"]
        rows.append(
            {
                "rank": rank,
                "rel_error": float(error),
                "flops_factored": int(factored),
                "flops_dense": int(dense),
                "flop_ratio": dense / factored,
                "time_dense_s": time_dense,
                "time_factored_s": time_factored,
                "speedup": time_dense / time_factored,
            }
        )
    return rows


ERROR_FLOOR = 1e-7
"""Lowest error shown by :func:`plot_rank_errors` (float32 data carry ~7 digits)."""


def plot_rank_errors(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: str | os.PathLike
) -> Path:
    """One panel per family: relative Frobenius error against rank (log y). Writes a PNG.

    The y axis stops at :data:`ERROR_FLOOR`: smaller errors (beyond the numerical rank of a
    float32 matrix) are rounding noise.
    """
    plt = pyplot()
    names = list(curves)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        ranks, errors = curves[name]
        errors = np.asarray(errors, dtype=np.float64)
        shown = errors > 0  # the error is exactly 0 at full rank: not on a log axis
        ax.semilogy(np.asarray(ranks)[shown], errors[shown])
        if shown.any():  # below ~1e-7 is rounding of float32 data: keep the axis readable
            ax.set_ylim(max(ERROR_FLOOR, 0.5 * float(errors[shown].min())), 1.5)
        ax.set_title(name)
        ax.set_xlabel("rank k")
        ax.set_ylabel("||M - M_k||_F / ||M||_F")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("Relative error of the best rank-k approximation")
    return save_figure(fig, path)


def plot_rank_speedup(sweeps: Mapping[str, Sequence[Mapping]], path: str | os.PathLike) -> Path:
    """Measured speed-up and FLOP ratio (dense / factored) against rank, one line per family."""
    plt = pyplot()
    fig, (ax_time, ax_flops) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name, rows in sweeps.items():
        ranks = [r["rank"] for r in rows]
        ax_time.loglog(ranks, [r["speedup"] for r in rows], "o-", label=name)
        ax_flops.loglog(ranks, [r["flop_ratio"] for r in rows], "o-", label=name)
    for ax, title in (
        (ax_time, "measured speed-up (dense time / factored time)"),
        (ax_flops, "FLOP ratio (dense / factored)"),
    ):
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("rank r")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.set_ylabel("dense / factored")
    ax_flops.legend(fontsize=8)
    fig.suptitle("Factored product U'(Vh B) against the dense A @ B")
    return save_figure(fig, path)


def plot_compression(rows: Sequence[Mapping], out_dir: str | os.PathLike) -> list[Path]:
    """The three plots of the mnist assignment, as PNG files in ``out_dir``.

    ``ratio_vs_accuracy.png``, ``ratio_vs_runtime.png`` (one panel per timed batch size,
    compressed and dense), ``runtime_vs_accuracy.png`` (time at the largest batch against
    accuracy, points labelled with their ratio); one line per allocation (and per
    fine-tuning, when there was some). ``rows`` as returned by :func:`compression_sweep`.
    """
    plt = pyplot()
    out_dir = Path(out_dir)
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(row.get("allocation", "uniform"), []).append(row)
    tuned = not all(math.isnan(r["accuracy_finetuned"]) for r in rows)
    dense_accuracy = 100 * rows[0]["accuracy_dense"]
    batches = sorted(
        int(m.group(1)) for key in rows[0] if (m := re.fullmatch(r"speedup_b(\d+)", key))
    )
    big = batches[-1]
    paths = []

    def accuracy_lines(ax, x_of):
        for allocation, group in groups.items():
            xs = [x_of(r) for r in group]
            line = ax.plot(xs, [100 * r["accuracy"] for r in group], "o-", label=allocation)[0]
            if tuned:
                ax.plot(
                    xs,
                    [100 * r["accuracy_finetuned"] for r in group],
                    "s--",
                    color=line.get_color(),
                    label=f"{allocation} + fine-tuning",
                )

    fig, ax = plt.subplots(figsize=(6, 4.2))
    accuracy_lines(ax, lambda r: r["ratio"])
    ax.axhline(dense_accuracy, color="gray", linestyle=":", label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (parameters kept)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Compression ratio vs accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out_dir / "ratio_vs_accuracy.png"))

    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4), squeeze=False)
    for ax, b in zip(axes.flat, batches, strict=True):
        for allocation, group in groups.items():
            ratio = [r["ratio"] for r in group]
            ax.plot(
                ratio, [1e3 * r[f"time_factored_b{b}_s"] for r in group], "o-", label=allocation
            )
        everything = sorted(rows, key=lambda r: r["ratio"])
        ax.plot(
            [r["ratio"] for r in everything],
            [1e3 * r[f"time_dense_b{b}_s"] for r in everything],
            "x:",
            color="gray",
            label="dense (measured alongside)",
        )
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio (parameters kept)")
        ax.set_ylabel("inference time (ms)")
        ax.set_title(f"batch {b}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Compression ratio vs measured runtime")
    paths.append(save_figure(fig, out_dir / "ratio_vs_runtime.png"))

    fig, ax = plt.subplots(figsize=(6, 4.2))
    accuracy_lines(ax, lambda r: 1e3 * r[f"time_factored_b{big}_s"])
    for r in rows:
        ax.annotate(
            f"{r['ratio']:.2g}",
            (1e3 * r[f"time_factored_b{big}_s"], 100 * r["accuracy"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    dense_time = float(np.median([1e3 * r[f"time_dense_b{big}_s"] for r in rows]))
    ax.plot([dense_time], [dense_accuracy], "k*", markersize=10, label="dense")
    ax.set_xlabel(f"inference time, batch {big} (ms)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Runtime vs accuracy (labels: compression ratio)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out_dir / "runtime_vs_accuracy.png"))
    return paths


# ============================================================================ BENCHMARKS.md

BENCH_SECTION = "lowrank"
"""Name of the section in BENCHMARKS.md (``<!-- bench:lowrank:begin/end -->`` markers)."""


SPEED_TARGET_RATIO = 0.25
"""At compression ratios up to this, the batch-1000 MLP must run faster than the dense one."""


def benchmark_section(
    rank_rows: Sequence[Mapping],
    compression_rows: Sequence[Mapping],
    command: str,
    threads: int = 1,
    finetune_steps: int = 0,
) -> str:
    """The markdown of the low-rank section of BENCHMARKS.md (targets stated, met or not)."""
    lines = [
        "## Low rank: factored products and the SVD-compressed MLP",
        "",
        f"Command: `{command}`. {machine_description(threads)}.",
        f"Load average when the run ended: {load_average()}.",
        "Times are medians of `torch.utils.benchmark` blocks "
        "(`dnnkernels.timing.time_medians`: dense and factored measured side by side in "
        "interleaved rounds, same thread count); "
        f"clock: {CLOCK_NAMES[steady_clock(threads)]}. The machine may be shared with "
        "other jobs, so single numbers vary from run to run.",
        "",
        "### svd_rank: factored product U'(Vh B) against the dense A @ B",
        "",
        "Speed-up = dense time / factored time; FLOPs = dense / factored "
        "(`factored_matmul_flops`).",
        "",
    ]
    lines.append(
        markdown_table(
            rank_rows,
            {
                "family": "family",
                "shape": "A (m, k)",
                "n": "B columns",
                "rank": "rank",
                "rel_error": "rel. error",
                "flop_ratio": "FLOPs dense/factored",
                "speedup": "measured speed-up",
            },
            {"rel_error": ".4g", "flop_ratio": ".3g", "speedup": ".2f"},
        )
    )
    lines.append(
        "\nAt small ranks the two thin products are too small to run at full speed, so the "
        "measured speed-up stays below the FLOP ratio; near the break-even rank the two agree."
    )
    batches = sorted(
        int(m.group(1))
        for key in compression_rows[0]
        if (m := re.fullmatch(r"speedup_b(\d+)", key))
    )
    columns = {
        "allocation": "allocation",
        "ratio_target": "target ratio",
        "ratio": "actual ratio",
        "ranks": "ranks",
        "accuracy": "accuracy",
        "accuracy_finetuned": "fine-tuned",
    }
    formats = {"ratio": ".4f", "accuracy": ".4f", "accuracy_finetuned": ".4f"}
    for b in batches:
        columns[f"time_dense_b{b}_s"] = f"dense b{b} (ms)"
        columns[f"time_factored_b{b}_s"] = f"SVD b{b} (ms)"
        columns[f"speedup_b{b}"] = f"speed-up b{b}"
        formats |= {f"time_dense_b{b}_s": ".3g", f"time_factored_b{b}_s": ".3g"}
        formats[f"speedup_b{b}"] = ".2f"
    shown = []
    for row in compression_rows:
        row = dict(row)
        for key in row:
            if key.startswith("time_"):
                row[key] = 1e3 * row[key]
        shown.append(row)
    lines += [
        "",
        "### mnist: MLP 784-512-128-10 with every linear layer replaced by SVDLinear",
        "",
        f"Dense test accuracy {compression_rows[0]['accuracy_dense']:.4f}. "
        "Ratio = parameters of the compressed model over the dense one's (biases included);",
        "allocation: how `compress` shares the budget among fc1, fc2, fc3 (uniform: the same",
        "ratio per layer; energy: greedy by error reduction per parameter). Fine-tuned: "
        f"accuracy after {finetune_steps} Adam steps (lr 1e-4, batch 128) of the compressed "
        "model.",
        "",
        markdown_table(shown, columns, formats),
    ]
    big = max(batches)
    checked = [r for r in compression_rows if r["ratio"] <= SPEED_TARGET_RATIO]
    met = [r for r in checked if r[f"speedup_b{big}"] > 1]
    verdict = "**met**" if checked and len(met) == len(checked) else "**missed**"
    detail = ", ".join(
        f"{r.get('allocation', 'uniform')} {r['ratio']:.3f}: {r[f'speedup_b{big}']:.2f}x"
        for r in checked
    )
    lines += [
        "",
        f"Target: at compression ratio <= {SPEED_TARGET_RATIO}, batch-{big} inference of the "
        f"compressed MLP is faster than the dense MLP. Result: {verdict} "
        f"({len(met)} of {len(checked)} points faster; allocation, actual ratio: speed-up "
        f"= {detail}).",
    ]
    return "\n".join(lines) + "\n"


# ============================================================================ command line

DEFAULT_RATIOS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02)
SWEEP_N = 512
"""Columns of the right operand B in the svd_rank sweeps of the command line."""
BENCH_RANKS = (4, 16, 64, 256)
"""Ranks of the svd_rank sweeps shown in BENCHMARKS.md (all ranks go to the CSV)."""


def run(
    out: str | os.PathLike,
    benchmarks: str | os.PathLike | None = "BENCHMARKS.md",
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    finetune_steps: int = 300,
    min_run_time: float = 0.3,
    threads: int = 1,
    families: Sequence[str] | Mapping[str, torch.Tensor] = FAMILIES,
    allocations: Sequence[str] = ALLOCATIONS,
    model: nn.Module | None = None,
    data=None,
    command: str = "python -m dnnkernels.lowrank",
    progress: bool = True,
) -> dict[str, list[Path]]:
    """Run the svd_rank family sweeps and the MNIST compression sweep; write all outputs.

    Writes under ``out``: ``svd_rank/errors.csv`` (error at every rank of every family),
    ``svd_rank/sweep.csv`` and ``sweep.md`` (:func:`rank_sweep` rows),
    ``svd_rank/errors_vs_rank.png``, ``svd_rank/speedup_vs_rank.png``,
    ``mnist/compression.csv`` and ``.md`` (:func:`compression_sweep` rows) and the three
    mnist plots; then the low-rank section of ``benchmarks`` (skipped if None).
    ``families``: names of :func:`matrix_family`, or a dict ``{name: matrix}`` of your own.
    Everything (SVDs, fine-tuning, timings) runs with ``threads`` torch threads (restored
    afterwards). Returns the written paths by kind (``"tables"``, ``"plots"``,
    ``"benchmarks"``).
    """
    check_int("threads", threads, low=1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(
            Path(out),
            benchmarks,
            ratios=ratios,
            finetune_steps=finetune_steps,
            min_run_time=min_run_time,
            threads=threads,
            families=families,
            allocations=allocations,
            model=model,
            data=data,
            command=command,
            progress=progress,
        )
    finally:
        torch.set_num_threads(previous)


def _run(
    out: Path,
    benchmarks,
    *,
    ratios,
    finetune_steps,
    min_run_time,
    threads,
    families,
    allocations,
    model,
    data,
    command,
    progress,
) -> dict[str, list[Path]]:
    if data is None:
        from dnnkernels.data import load_mnist

        data = load_mnist()
    model = _trained_mlp() if model is None else model.eval()
    written: dict[str, list[Path]] = {"tables": [], "plots": [], "benchmarks": []}

    curves, sweeps, error_rows, sweep_rows = {}, {}, [], []
    for name in tqdm(list(families), desc="matrix families", disable=not progress):
        if isinstance(families, Mapping):
            matrix = check_matrix(f"families[{name!r}]", families[name])
        else:
            matrix = matrix_family(name, model=model, data=data)
        ranks = list(range(1, min(matrix.shape) + 1))
        errors = error_curve(matrix, ranks).tolist()
        curves[name] = (ranks, errors)
        error_rows += [
            {"family": name, "rank": r, "rel_error": e} for r, e in zip(ranks, errors, strict=True)
        ]
        rows = rank_sweep(
            matrix, n=SWEEP_N, min_run_time=min_run_time, threads=threads, progress=progress
        )
        sweeps[name] = rows
        shape = "x".join(map(str, matrix.shape))
        sweep_rows += [{"family": name, "shape": shape, "n": SWEEP_N, **row} for row in rows]
    sub = out / "svd_rank"
    written["tables"] += [
        write_csv(error_rows, sub / "errors.csv"),
        write_csv(sweep_rows, sub / "sweep.csv"),
    ]
    (sub / "sweep.md").write_text(markdown_table(sweep_rows))
    written["tables"].append(sub / "sweep.md")
    written["plots"] += [
        plot_rank_errors(curves, sub / "errors_vs_rank.png"),
        plot_rank_speedup(sweeps, sub / "speedup_vs_rank.png"),
    ]

    rows = compression_sweep(
        model,
        list(ratios),
        data,
        finetune_steps,
        allocations=allocations,
        min_run_time=min_run_time,
        threads=threads,
        progress=progress,
    )
    sub = out / "mnist"
    written["tables"].append(write_csv(rows, sub / "compression.csv"))
    (sub / "compression.md").write_text(markdown_table(rows))
    written["tables"].append(sub / "compression.md")
    written["plots"] += plot_compression(rows, sub)

    if benchmarks is not None:
        shown = [r for r in sweep_rows if r["rank"] in BENCH_RANKS]
        section = benchmark_section(shown, rows, command, threads, finetune_steps)
        written["benchmarks"].append(write_section(benchmarks, BENCH_SECTION, section))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m dnnkernels.lowrank --out build/lowrank``."""
    parser = argparse.ArgumentParser(
        prog="python -m dnnkernels.lowrank",
        description="svd_rank family sweeps and the MNIST SVD compression sweep: "
        "plots (PNG), tables (CSV, markdown) and the low-rank section of BENCHMARKS.md.",
    )
    parser.add_argument("--out", default="build/lowrank", help="output directory")
    parser.add_argument(
        "--benchmarks",
        default="BENCHMARKS.md",
        help="BENCHMARKS.md to update between the low-rank markers ('' to skip)",
    )
    parser.add_argument(
        "--finetune-steps", type=int, default=300, help="Adam steps per compressed model"
    )
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the whole run and its timings"
    )
    parser.add_argument(
        "--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS), help="target ratios"
    )
    parser.add_argument(
        "--allocations",
        nargs="+",
        choices=ALLOCATIONS,
        default=list(ALLOCATIONS),
        help="rank allocations of compress(ratio=...)",
    )
    args = parser.parse_args(argv)
    command = "python -m dnnkernels.lowrank " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    written = run(
        args.out,
        args.benchmarks or None,
        ratios=args.ratios,
        allocations=args.allocations,
        finetune_steps=args.finetune_steps,
        min_run_time=args.min_run_time,
        threads=args.threads,
        command=command.strip(),
    )
    for kind, paths in written.items():
        for path in paths:
            print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
