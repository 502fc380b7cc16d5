# Generated automatically from src/dnnkernels/bitwidth.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""The accumulator bit-width study of the bit_width assignment, and its report.

A trained network (the course's LeNet) is quantized after training to 8-bit integers
(:mod:`dnnkernels.quantize`); the integer engine (:mod:`dnnkernels.intengine`) runs it
with a ``b``-bit two's complement accumulator per layer (:mod:`dnnkernels.accumulator`);
this module searches widths (approaches A, B, C), compares their accuracy and energy
(:mod:`dnnkernels.energy`) and writes the plots, the table and the benchmark.

Run the whole study with ``python -m dnnkernels.bitwidth --out build/bitwidth``: it writes
``partial_sums.png``, ``accuracy_vs_bits.png``, ``energy.png``, ``approaches.md`` /
``approaches.csv`` (the A/B/C table) and ``summary.json`` into the output directory and
updates the bitwidth section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dnnkernels.accumulator import MAX_BITS, MIN_BITS, MODES
from dnnkernels.bitwidth_bench import benchmark
from dnnkernels.checks import check_choice
from dnnkernels.energy import NetworkEnergy, network_energy
from dnnkernels.intengine import Evaluation, _layer_fast
from dnnkernels.partial_sums import PartialSumStats, partial_sum_stats
from dnnkernels.quantize import QuantizedNet, quantize
from dnnkernels.report import (
    markdown_table,
    pyplot,
    save_figure,
    write_csv,
    write_section,
)

BENCH_SECTION = "bitwidth"
"""Name of the section in BENCHMARKS.md (``<!-- bench:bitwidth:begin/end -->`` markers)."""


def uniform_search(
    accuracy_of: Callable[[int], float],
    start: int,
    threshold: float,
    lowest: int = MIN_BITS,
    highest: int = MAX_BITS,
) -> tuple[int, dict[int, float]]:
    """Approach B: the smallest uniform width meeting ``threshold``, by a linear scan.

    Evaluates ``start, start - 1, ...`` and stops at the first width whose accuracy is
    below ``threshold`` (or at ``lowest``); the answer is the last width that met it.
    Accuracy need not be monotone in the width, so a linear scan (not bisection) is used:
    the result ``b`` is the smallest width such that every width in ``[b, start]`` meets
    the threshold. If ``start`` itself fails, widths above it are tried upward instead and
    the first that meets the threshold is returned (``highest`` if none does).

    Returns:
        ``(b, accuracies)``: the width and every accuracy evaluated (width -> percent).
    """
    seen: dict[int, float] = {start: accuracy_of(start)}
    if seen[start] < threshold:
        b = start
        while b < highest:
            b += 1
            seen[b] = accuracy_of(b)
            if seen[b] >= threshold:
                break
        return b, seen
    b = start
    while b > lowest:
        seen[b - 1] = accuracy_of(b - 1)
        if seen[b - 1] < threshold:
            break
        b -= 1
    return b, seen


def greedy_per_layer(
    accuracy_of: Callable[[dict[str, int]], float],
    start: Mapping[str, int],
    order: Sequence[str],
    threshold: float,
    lowest: int = MIN_BITS,
) -> tuple[dict[str, int], list[tuple[dict[str, int], float]]]:
    """Approach C: greedy per-layer reduction.

    From ``start`` (which should meet the threshold), for each layer in ``order`` (largest
    energy weight first), lower its
    width one bit at a time while ``accuracy_of(bits) >= threshold``; when a step fails the
    layer keeps its last good width and the next layer is tried. Passes over all layers
    repeat until a pass changes nothing, so at the end no single layer can lose one more
    bit without breaking the threshold.

    Returns:
        ``(bits, trace)``: the final widths and every evaluation ``(bits, accuracy)``.
    """
    bits = dict(start)
    trace: list[tuple[dict[str, int], float]] = []
    changed = True
    while changed:
        changed = False
        for name in order:
            while bits[name] > lowest:
                trial = dict(bits, **{name: bits[name] - 1})
                acc = accuracy_of(trial)
                trace.append((trial, acc))
                if acc < threshold:
                    break
                bits, changed = trial, True
    return bits, trace


# ============================================================================== study


@dataclass
class Approach:
    """One row of the A/B/C table."""

    label: str
    description: str
    mode: str
    bits: dict[str, int]
    accuracy: float
    energy: NetworkEnergy


class _PrefixCachedRunner:
    """:func:`evaluate` for a study that tries many width assignments on one data set.

    The activations after layer l depend only on the widths of layers 1..l (and the mode),
    so they are kept (uint8) and reused when a later assignment shares that prefix: a
    search that changes the fully connected layers reruns only those. Results are those of
    :func:`evaluate` (same engine, same batches).
    """

    def __init__(
        self,
        qnet: QuantizedNet,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int = 128,
        max_bytes: int = 2**28,
    ) -> None:
        self.qnet, self.labels = qnet, labels
        self.starts = list(range(0, len(images), batch_size))
        self.inputs = [qnet.quantize_input(images[s : s + batch_size]) for s in self.starts]
        self.batch_size = batch_size
        self.cache: dict[tuple, list] = {}  # (mode, widths of layers 0..l) -> per batch
        self.max_bytes, self.bytes = max_bytes, 0

    def evaluate(self, bits: dict[str, int], mode: str) -> Evaluation:
        qnet, names = self.qnet, self.qnet.layer_names
        per_layer = qnet.bits_per_layer(bits)
        check_choice("mode", mode, MODES)
        widths = tuple(per_layer[n] for n in names)
        start_time = time.perf_counter()
        done = next(
            (k for k in range(len(names) - 1, 0, -1) if (mode, widths[:k]) in self.cache), 0
        )
        states = self.cache[(mode, widths[:done])] if done else None
        correct = 0
        counts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        for b, q_input in enumerate(self.inputs):
            if states is None:
                x, overflows = q_input.to(torch.float32), {}
            else:
                activation, overflows = states[b]
                x, overflows = activation.to(torch.float32), dict(overflows)
            for k in range(done, len(names)):
                layer = qnet.layers[k]
                if layer.flatten_input:
                    x = x.flatten(1)
                x, overflows[layer.name] = _layer_fast(layer, x, widths[k], mode)
                if k < len(names) - 1:
                    self._store((mode, widths[: k + 1]), b, x, overflows)
            labels = self.labels[self.starts[b] : self.starts[b] + self.batch_size]
            correct += int((x.argmax(dim=1) == labels).sum())
            for n in names:
                counts[n].append(overflows[n])
        per_image = {n: torch.cat(c) for n, c in counts.items()}
        return Evaluation(
            accuracy=100.0 * correct / max(len(self.labels), 1),
            images=len(self.labels),
            bits=per_layer,
            mode=mode,
            overflow_outputs={n: int(c.sum()) for n, c in per_image.items()},
            overflow_images={n: int((c > 0).sum()) for n, c in per_image.items()},
            outputs={op.name: op.n_outputs * len(self.labels) for op in qnet.ops()},
            seconds=time.perf_counter() - start_time,
        )

    def _store(self, key: tuple, batch: int, x: torch.Tensor, overflows: dict) -> None:
        entry = self.cache.get(key)
        if entry is None:
            size = x.numel() * len(self.inputs)  # uint8, about this much for all batches
            if self.bytes + size > self.max_bytes:
                return
            self.bytes += size
            entry = self.cache[key] = [None] * len(self.inputs)
        if entry[batch] is None:
            entry[batch] = (x.to(torch.uint8), dict(overflows))


def run_study(
    qnet: QuantizedNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    out: str | os.PathLike,
    stats_limit: int | None = None,
    tolerance: float = 1.0,
    sweep_below: int = 6,
    progress: bool = True,
) -> dict:
    """Approaches A, B, C on a labelled set; writes plots and the table into ``out``.

    All accuracies are measured on ``images`` (the CLI passes the MNIST test set, as the
    assignment does: the same set chooses the widths and reports them), saturating
    accumulators unless said otherwise, against the accuracy with 32-bit accumulators.

    - A: one width for all layers, ``max_l min_bits(observed partial-sum range of l)``
      (ranges from :func:`partial_sum_stats` on the first ``stats_limit`` images, default all:
      then nothing overflows and A loses nothing).
    - B: the smallest uniform width whose accuracy is within ``tolerance`` percentage points
      of the 32-bit accuracy (:func:`uniform_search`, scanning down from A).
    - C: per-layer widths: start from each layer's own ``min_bits`` of its observed range
      (or from B if that start already fails) and reduce greedily (:func:`greedy_per_layer`),
      layers ordered by ``N_add`` (the energy saved per removed bit: ``s_add = B_add``),
      while the accuracy stays within ``tolerance``.
    - Also reported: B-wrap (B's search with wrap-around accumulators) and the 32-bit row.

    The accuracy plot sweeps uniform widths from ``A - sweep_below`` to ``A + 1`` (and 32)
    in both modes. Evaluations are cached, and activations of shared layer prefixes reused
    (:class:`_PrefixCachedRunner`).

    Writes ``partial_sums.png``, ``accuracy_vs_bits.png``, ``energy.png``,
    ``approaches.md``, ``approaches.csv`` and ``summary.json`` into ``out``.

    Returns:
        the JSON-ready summary (also in ``summary.json``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = qnet.layer_names
    ops = qnet.ops()
    stats = partial_sum_stats(qnet, images, limit=stats_limit, progress=progress)
    cache: dict[tuple[str, tuple[int, ...]], Evaluation] = {}
    runner = _PrefixCachedRunner(qnet, images, labels)

    def run(bits: Mapping[str, int], mode: str = "saturate") -> Evaluation:
        key = (mode, tuple(bits[n] for n in names))
        if key not in cache:
            cache[key] = runner.evaluate(dict(bits), mode)
        return cache[key]

    def uniform(b: int) -> dict[str, int]:
        return dict.fromkeys(names, b)

    base = run(uniform(32))
    if any(base.overflow_outputs.values()):
        raise RuntimeError(f"32-bit accumulators overflowed: {base.overflow_outputs}")
    threshold = base.accuracy - tolerance
    bits_a = max(s.min_bits for s in stats.values())
    say = print if progress else (lambda *_: None)
    say(f"32-bit accuracy {base.accuracy:.2f} %, threshold {threshold:.2f} %; A = {bits_a} bits")
    b_bits, _ = uniform_search(lambda b: run(uniform(b)).accuracy, bits_a, threshold)
    say(f"B = {b_bits} bits (saturate)")
    order = sorted(names, key=lambda n: -next(op.n_add for op in ops if op.name == n))
    c_start = {n: stats[n].min_bits for n in names}
    if run(c_start).accuracy < threshold:  # ranges observed on a subset: start from B
        c_start = uniform(b_bits)
    c_bits, c_trace = greedy_per_layer(lambda bits: run(bits).accuracy, c_start, order, threshold)
    say(f"C = {c_bits} after {len(c_trace)} evaluations (order {order})")
    b_wrap, _ = uniform_search(lambda b: run(uniform(b), "wrap").accuracy, bits_a, threshold)
    say(f"B-wrap = {b_wrap} bits")

    sweep_bits = sorted(set(range(max(MIN_BITS, bits_a - sweep_below), bits_a + 2)) | {32})
    points = [(mode, b) for mode in MODES for b in sweep_bits]
    if progress:
        from tqdm import tqdm

        points = tqdm(points, desc="accuracy sweep", unit="run")
    sweep: dict[str, dict[int, Evaluation]] = {mode: {} for mode in MODES}
    for mode, b in points:
        sweep[mode][b] = run(uniform(b), mode)

    def approach(label, description, bits, mode="saturate"):
        ev = run(bits, mode)
        return Approach(
            label, description, mode, dict(bits), ev.accuracy, network_energy(ops, bits)
        )

    approaches = [
        approach("32-bit", "baseline: 32-bit accumulators", uniform(32)),
        approach("A", "uniform, covers the observed partial-sum range", uniform(bits_a)),
        approach("B", f"smallest uniform width within {tolerance:g} pp", uniform(b_bits)),
        approach("C", "per-layer, greedy by energy weight", c_bits),
        approach("B-wrap", "as B, wrap-around accumulators", uniform(b_wrap), "wrap"),
    ]
    files = {
        "histograms": plot_partial_sums(stats, out / "partial_sums.png"),
        "accuracy": plot_accuracy_sweep(
            sweep, base.accuracy, tolerance, bits_a, b_bits, out / "accuracy_vs_bits.png"
        ),
        "energy": plot_energy(approaches, out / "energy.png"),
    }
    files.update(write_table(approaches, names, base.accuracy, out))
    summary = {
        "images": len(images),
        "accuracy_32": base.accuracy,
        "threshold": threshold,
        "ops": [op.__dict__ for op in ops],
        "stats": {
            n: {k: v for k, v in s.__dict__.items() if not k.startswith("hist")}
            for n, s in stats.items()
        },
        "sweep": {
            mode: {
                str(b): {
                    "accuracy": ev.accuracy,
                    "overflow_outputs": ev.overflow_outputs,
                    "overflow_images": ev.overflow_images,
                }
                for b, ev in runs.items()
            }
            for mode, runs in sweep.items()
        },
        "approaches": [
            {
                "label": a.label,
                "description": a.description,
                "mode": a.mode,
                "bits": a.bits,
                "accuracy": a.accuracy,
                "energy_units": a.energy.units,
                "energy_pj": a.energy.pj,
            }
            for a in approaches
        ],
        "greedy_trace": [{"bits": b, "accuracy": acc} for b, acc in c_trace],
        "c_order": order,
        "files": {k: str(v) for k, v in files.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


# ============================================================================== output


def plot_partial_sums(stats: Mapping[str, PartialSumStats], path: str | os.PathLike) -> Path:
    """Histogram of the final accumulator values of every layer (one panel each), with the
    observed range of all partial sums and the range of its ``min_bits`` marked."""
    plt = pyplot()
    n = len(stats)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for ax, s in zip(axes[0], stats.values(), strict=True):
        edges, counts = s.histogram(bins=80)
        ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.7)
        ax.set_yscale("log")
        for v in (s.prefix_min, s.prefix_max):
            ax.axvline(v, color="tab:red", lw=1, ls="--")
        ax.set_title(
            f"{s.name}: partial sums in [{s.prefix_min}, {s.prefix_max}]\n"
            f"-> {s.min_bits} bits (final values: {s.final_bits})",
            fontsize=8,
        )
        ax.set_xlabel("final accumulator value")
        ax.locator_params(axis="x", nbins=5)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("accumulations")
    fig.suptitle("Final accumulator values per layer (red: range of all partial sums)", fontsize=9)
    return save_figure(fig, path)


def plot_accuracy_sweep(
    sweep: Mapping[str, Mapping[int, Evaluation]],
    accuracy_32: float,
    tolerance: float,
    bits_a: int,
    bits_b: int,
    path: str | os.PathLike,
) -> Path:
    """Test accuracy against the uniform accumulator width, one line per mode."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, runs in sweep.items():
        widths = sorted(b for b in runs if b != 32)
        ax.plot(widths, [runs[b].accuracy for b in widths], marker="o", label=mode)
    ax.axhline(accuracy_32, color="gray", lw=1, label=f"32 bits ({accuracy_32:.2f} %)")
    ax.axhline(accuracy_32 - tolerance, color="gray", lw=1, ls=":", label=f"-{tolerance:g} pp")
    ax.axvline(bits_a, color="tab:green", ls="--", lw=1, label=f"A = {bits_a}")
    ax.axvline(bits_b, color="tab:red", ls="--", lw=1, label=f"B = {bits_b}")
    ax.set_xlabel("accumulator bits (all layers)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("Accuracy against uniform accumulator width")
    return save_figure(fig, path)


def plot_energy(approaches: Sequence[Approach], path: str | os.PathLike) -> Path:
    """Energy per image of each approach, model units and pJ side by side."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    labels = [a.label for a in approaches]
    for ax, values, unit in (
        (axes[0], [a.energy.units for a in approaches], "model units"),
        (axes[1], [a.energy.pj / 1e3 for a in approaches], "nJ (45 nm, Horowitz)"),
    ):
        bars = ax.bar(labels, values, color="tab:blue")
        ax.bar_label(bars, fmt="%.4g", fontsize=7)
        ax.set_ylabel(f"energy per image ({unit})")
        ax.tick_params(labelsize=8)
    fig.suptitle("Energy per inference by approach", fontsize=10)
    return save_figure(fig, path)


def write_table(
    approaches: Sequence[Approach],
    names: Sequence[str],
    accuracy_32: float,
    out: str | os.PathLike,
) -> dict[str, Path]:
    """The A/B/C table as ``approaches.md`` (markdown) and ``approaches.csv``."""
    out = Path(out)
    base = next((a for a in approaches if a.label == "32-bit"), approaches[0])
    rows = [
        {
            "approach": a.label,
            "mode": a.mode,
            **{n: a.bits[n] for n in names},
            "accuracy %": f"{a.accuracy:.2f}",
            "delta pp": f"{a.accuracy - accuracy_32:+.2f}",
            "energy (units)": f"{a.energy.units:.0f}",
            "vs 32-bit": f"{a.energy.units / base.energy.units:.3f}",
            "energy (pJ)": f"{a.energy.pj:.0f}",
        }
        for a in approaches
    ]
    notes = "\n".join(f"- {a.label}: {a.description}" for a in approaches)
    (out / "approaches.md").write_text(markdown_table(rows) + "\n" + notes + "\n")
    write_csv(rows, out / "approaches.csv")
    return {"table_md": out / "approaches.md", "table_csv": out / "approaches.csv"}


def main(argv: Sequence[str] | None = None) -> dict:
    """``python -m dnnkernels.bitwidth --out build/bitwidth``: the whole study."""
    parser = argparse.ArgumentParser(
        prog="python -m dnnkernels.bitwidth",
        description="Accumulator bit-width study of the quantized LeNet (approaches A, B, C).",
    )
    parser.add_argument("--out", default="build/bitwidth", help="output directory")
    parser.add_argument("--benchmarks", default="BENCHMARKS.md", help="file to update")
    parser.add_argument("--no-bench", action="store_true", help="skip timing / BENCHMARKS.md")
    parser.add_argument(
        "--calibration", type=int, default=2000, help="training images for the activation scales"
    )
    parser.add_argument(
        "--stats-limit",
        type=int,
        default=None,
        help="test images for the partial-sum ranges (default all)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="use only the first N test images (default all 10000)",
    )
    parser.add_argument("--tolerance", type=float, default=1.0, help="accuracy loss in pp")
    parser.add_argument(
        "--loop-images", type=int, default=2, help="images for the loop-vs-fast timing"
    )
    args = parser.parse_args(argv)

    from dnnkernels import data, models

    torch.manual_seed(0)
    mnist = data.load_mnist()
    model = models.load_trained("lenet")
    step = max(1, len(mnist.train_images) // args.calibration)
    calibration = mnist.train_images[::step][: args.calibration]
    qnet = quantize(model, calibration)
    images, labels = mnist.test_images[: args.images], mnist.test_labels[: args.images]
    float_acc = 100 * models.evaluate(model, [(data.normalize(images), labels)])
    summary = run_study(
        qnet, images, labels, args.out, stats_limit=args.stats_limit, tolerance=args.tolerance
    )
    summary["float_accuracy"] = float_acc
    print(Path(args.out, "approaches.md").read_text())
    print(
        f"float model accuracy: {float_acc:.2f} %, int8 with 32-bit accumulators: "
        f"{summary['accuracy_32']:.2f} %"
    )
    if not args.no_bench:
        chosen = {a["label"]: a["bits"] for a in summary["approaches"]}
        widths = sorted({32, *(next(iter(chosen[k].values())) for k in ("A", "B"))}, reverse=True)
        section, numbers = benchmark(qnet, images, labels, widths, args.loop_images)
        write_section(args.benchmarks, BENCH_SECTION, section)
        summary["benchmark"] = numbers
        print(section)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
