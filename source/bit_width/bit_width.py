# %% [markdown]
# # Assignment 4 (bit_width): how many bits does an accumulator need?
#
# An integer accelerator multiplies 8-bit weights by 8-bit activations, but it adds the
# products in a wider *accumulator*: a convolution output of LeNet's second layer is the sum
# of 150 products of up to 16 bits each. Hardware designers usually give the accumulator 32
# bits and forget about it. This assignment asks how many bits the trained network really
# needs, what happens when an accumulator is too narrow, and what the narrower adders save.
#
# **Goals.** By the end of this assignment you will have
#
# 1. written a b-bit two's complement accumulator that adds products one at a time, with
#    saturation or wrap-around, and detects overflow; and the smallest width for a range;
# 2. run the trained LeNet in integer arithmetic with your accumulator, and plotted the
#    distribution of its partial sums, layer by layer;
# 3. chosen accumulator widths in three ways: **A** one width for all layers that holds every
#    partial sum observed, **B** the smallest width for all layers that keeps the accuracy
#    within one point, **C** one width per layer;
# 4. computed the energy of each choice in two cost models and discussed what they save.
#
# **Questions and points.** 3 programming exercises and 7 hand-graded questions, 27 points
# in all.
#
# | section | what you hand in | graded | points |
# |---|---|---|---|
# | 2 | `accumulate` | automatically | 4 |
# | 3 | `min_bits` | automatically | 2 |
# | 5 | Q1: partial-sum histograms (code and plot) | by hand | 3 |
# | 5 | Q2: what the distributions show (prose) | by hand | 2 |
# | 6 | Q3: approaches A and B, accuracy against width (code and plot) | by hand | 3 |
# | 6 | Q4: saturation against wrap-around (prose) | by hand | 2 |
# | 7 | Q5: approach C (code) | by hand | 3 |
# | 8 | `layer_energy` | automatically | 2 |
# | 9 | Q6: the energy of each approach (code and plot) | by hand | 2 |
# | 9 | Q7: discussion (prose) | by hand | 4 |
#
# **How to work.** Each exercise cell holds the signature and the docstring of the function
# to write: the docstring states the shapes, the dtypes and the arithmetic contract. Replace
# `raise NotImplementedError(...)` with your code and run the cell; the cell after it runs
# visible checks (graders run more, on other inputs). Inside the exercises use only `torch`,
# `numpy`, `math` and plain Python.
#
# The library uses your code: the integer inference engine `dnnkernels.intengine` adds
# every product that might overflow with *your* `accumulate`, its partial-sum statistics
# (`dnnkernels.partial_sums`) call your `min_bits`, and the energy functions
# (`dnnkernels.energy`) your `layer_energy`. Run the notebook from top to
# bottom; the measurements take about a minute in all.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

torch.set_num_threads(1)  # one thread: steadier timings on a shared machine

# %%
_ = torch.manual_seed(0)  # the visible checks draw reproducible inputs

# %% [markdown]
# ## 1. Background
#
# **Integer inference.** The trained LeNet (`conv1` $1 \to 6$ channels $5\times5$, `conv2`
# $6 \to 16$ channels $5\times5$, `fc1` $400 \to 120$, `fc2` $120 \to 84$, `fc3` $84 \to 10$)
# is quantized after training: weights to int8 (one scale per layer), the input image to
# int8, the activations after each ReLU to uint8, biases to integers in the accumulator's
# scale. Every multiplication is then 8 bit × 8 bit, with a product $|p| \le 128 \cdot 255$.
# An output $y_o$ of a layer with fan-in $K$ (a convolution: $K = C \cdot k_h \cdot k_w$; a
# fully connected layer: $K$ = `in_features`) is one accumulation: starting from 0, the
# accumulator adds the products $p_0, p_1, \dots, p_{K-1}$ in a fixed order, then the bias.
# The values it holds on the way are the **partial sums**
#
# $$a_j = \sum_{i=0}^{j} p_i \quad (j = 0, \dots, K-1), \qquad a_K = a_{K-1} + \text{bias}.$$
#
# **A b-bit accumulator** holds the two's complement range
#
# $$[\ell, h] = [-2^{b-1},\; 2^{b-1} - 1].$$
#
# An addition *overflows* when its exact result leaves the range. Two common behaviours:
#
# - **saturation** clamps after every addition, $a \leftarrow \min(\max(a + p, \ell), h)$,
#   so later additions start from the edge of the range;
# - **wrap-around** drops the carry, $a \leftarrow \big((a + p - \ell) \bmod 2^b\big) + \ell$;
#   the result is the exact sum reduced modulo $2^b$ into the range.
#
# An output overflows when at least one of its additions did. Before the first overflow the
# accumulator equals the exact partial sum, so an output overflows exactly when one of its
# exact partial sums lies outside $[\ell, h]$.
#
# **The smallest width for a range.** A range $[lo, hi]$ fits $b$ bits when
# $-2^{b-1} \le lo$ and $hi \le 2^{b-1} - 1$; the smallest such $b$ is
#
# $$b_{\min}(lo, hi) = 1 + \max\big(\lceil \log_2(hi + 1) \rceil,\; \lceil \log_2(-lo) \rceil\big)$$
#
# (each term taken as 0 when its argument is below 1), which integer arithmetic computes
# exactly with `int.bit_length`. The worst case over *all* inputs is
# $b_{\min}(-S, S)$ with $S = K \cdot \max|x| \cdot \max|w| + |\text{bias}|$; the trained
# network on real images needs fewer bits, and how many is what we measure.
#
# **Energy.** For one inference, with $N_\text{mul}$ multiplications and $N_\text{add}$
# additions per layer (a layer with bias: $N_\text{add} = N_\text{mul} + $ outputs),
#
# $$E = \sum_\text{layers} s_\text{mul} N_\text{mul} + s_\text{add} N_\text{add},
#   \qquad s_\text{mul} = 64 \left(\frac{B_\text{mul}}{8}\right)^2,
#   \qquad s_\text{add} = B_\text{add},$$
#
# in model units: a multiplier's cost grows with the square of its operand width
# ($B_\text{mul} = 8$ here), an adder's linearly with its width, the accumulator width
# $B_\text{add}$. A physical check: at 45 nm (M. Horowitz, *Computing's energy problem*,
# ISSCC 2014) an 8-bit integer addition costs 0.03 pJ, a 32-bit one 0.1 pJ, an 8-bit
# multiplication 0.2 pJ and a 32-bit one 3.1 pJ. `dnnkernels.energy` interpolates between
# them, linearly in the width for additions and quadratically for multiplications
# (`add_energy_pj`, `mul_energy_pj`).

# %% [markdown]
# ## 2. Exercise: a b-bit accumulator (`bit_width_accumulate`, 4 points)
#
# `accumulate(products, bits, mode)` takes a batch of accumulations at once: `products` is
# an int64 tensor of shape `(..., K)`, one accumulation per index of the leading dimensions,
# added in the order of the last axis. It returns the final accumulator values and, for each
# accumulation, whether it overflowed. A loop over the products in Python is a correct start
# but far too slow for the engine (it calls `accumulate` on millions of accumulations):
# vectorize. Hints: the prefix sums (`torch.cumsum`) tell where the first overflow happens;
# wrap-around only depends on the exact sum; for saturation, see the docstring.
#
# The graders check this too (1 of the 4 points): they measure, from outside your process,
# how the CPU time of your `accumulate` grows from a few thousand to tens of thousands of
# accumulations of 16 products. A loop over the K positions (each step on all
# accumulations at once) costs well under a microsecond per accumulation; a Python loop
# over the accumulations costs several, in whatever thread or process it runs.

# %% tags=["answer:bit_width_accumulate"]
# generated from src/dnnkernels/accumulator.py: accumulate


# %% tags=["check:bit_width_accumulate"]
def accumulate_by_hand(row, bits, mode):
    """The definition, one Python addition at a time (an independent reference)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    acc, overflow = 0, False
    for p in row:
        acc += p
        if not lo <= acc <= hi:
            overflow = True
            acc = min(max(acc, lo), hi) if mode == "saturate" else (acc - lo) % 2**bits + lo
    return acc, overflow


# a hand-computed case, 8 bits ([-128, 127]): 100 + 100 overflows, then -150
tiny = torch.tensor([[100, 100, -150]], dtype=torch.int64)
sums, overflow = accumulate(tiny, 8, "saturate")
assert sums.tolist() == [-23] and overflow.tolist() == [True], (
    f"saturate, 8 bits, 100 + 100 - 150: got {sums.tolist()}, {overflow.tolist()}, expected "
    "[-23], [True] (100 + 100 clamps to 127, then 127 - 150 = -23)"
)
sums, overflow = accumulate(tiny, 8, "wrap")
assert sums.tolist() == [50] and overflow.tolist() == [True], (
    f"wrap, 8 bits, 100 + 100 - 150: got {sums.tolist()}, {overflow.tolist()}, expected [50], "
    "[True] (200 wraps to -56, then -56 - 150 = -206 wraps to 50: the exact sum)"
)
products = torch.randint(-40, 41, (6, 9), dtype=torch.int64)
products[0] = torch.tensor([30, 30, -10, -40, 40, 40, -5, 0, 1])  # saturates, then recovers
for bits in (6, 8, 16):
    for mode in ("saturate", "wrap"):
        sums, overflow = accumulate(products, bits, mode)
        assert sums.dtype == torch.int64 and overflow.dtype == torch.bool, (
            f"got dtypes {sums.dtype} and {overflow.dtype}, expected torch.int64 and torch.bool"
        )
        expected = [accumulate_by_hand(row.tolist(), bits, mode) for row in products]
        assert sums.tolist() == [e[0] for e in expected], (
            f"{mode}, {bits} bits: sums {sums.tolist()}, expected {[e[0] for e in expected]}"
        )
        assert overflow.tolist() == [e[1] for e in expected], (
            f"{mode}, {bits} bits: overflow {overflow.tolist()}, expected "
            f"{[e[1] for e in expected]}"
        )
sums, overflow = accumulate(products.reshape(2, 3, 9), 6)  # leading dimensions (...)
assert sums.shape == (2, 3) and overflow.shape == (2, 3), (
    f"products of shape (2, 3, 9) gave shapes {tuple(sums.shape)} and {tuple(overflow.shape)}, "
    "expected (2, 3) and (2, 3)"
)
sums, overflow = accumulate(torch.zeros(4, 0, dtype=torch.int64), 8)
assert sums.tolist() == [0] * 4 and not overflow.any(), "K = 0: the sums are 0, no overflow"
big = torch.full((3, 50), 2**40, dtype=torch.int64)  # wide sums: exact in 64 bits
sums, overflow = accumulate(big, 64, "wrap")
assert sums.tolist() == [50 * 2**40] * 3 and not overflow.any(), "64 bits: exact, no overflow"
many = torch.randint(-(2**15), 2**15, (2000, 150), dtype=torch.int64)  # a conv2-sized batch
for mode in ("saturate", "wrap"):
    sums, overflow = accumulate(many, 18, mode)
    expected = [accumulate_by_hand(row, 18, mode) for row in many[:200].tolist()]
    assert sums[:200].tolist() == [e[0] for e in expected] and overflow[:200].tolist() == [
        e[1] for e in expected
    ], f"{mode}, 18 bits, 150 products per row: differs from the definition"
print("accumulate: visible checks passed")

# %% [markdown]
# ## 3. Exercise: the smallest bit-width for a range (`bit_width_min_bits`, 2 points)
#
# `min_bits(lo, hi)` returns $b_{\min}(lo, hi)$ of section 1 for Python ints of any size.
# Use integer arithmetic (`int.bit_length`), not `math.log2`: floating-point logarithms
# round wrongly near powers of two for large values.

# %% tags=["answer:bit_width_min_bits"]
# generated from src/dnnkernels/accumulator.py: min_bits

# %% tags=["check:bit_width_min_bits"]
for lo, hi, b in [(-128, 127, 8), (-129, 0, 9), (0, 128, 9), (0, 0, 1), (-1, 0, 1), (0, 1, 2)]:
    got = min_bits(lo, hi)
    assert got == b, f"min_bits({lo}, {hi}) = {got}, expected {b}"
for lo, hi in [(-5, 3), (-1000, 70000), (-(2**40), 2**40), (-(2**53) - 1, 1), (3, 2**70 - 1)]:
    b = next(b for b in range(1, 200) if -(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1)
    got = min_bits(lo, hi)
    assert got == b, f"min_bits({lo}, {hi}) = {got}, expected {b} (the smallest b that holds both)"
assert type(min_bits(-3, 3)) is int, "min_bits returns a Python int"
print("min_bits: visible checks passed")

# %% [markdown]
# ## 4. The integer LeNet (given code: run it and read the output)
#
# The cell below quantizes the trained LeNet with 2000 training images (they set the input
# and activation scales, see `dnnkernels.quantize.quantize`), lists the operations of each
# layer for one image, and checks the integer engine against a direct float64 reference.
# Then it runs one image in two ways with 16-bit accumulators, where many outputs overflow:
# the readable engine (`method="loop"`, Python loops, one addition at a time) and the fast
# engine, which calls your `accumulate` for every output that might overflow. They must
# agree bit for bit.

# %%
from dnnkernels import accumulator, bitwidth, energy, intengine, partial_sums
from dnnkernels.data import load_mnist
from dnnkernels.models import evaluate as float_accuracy
from dnnkernels.models import load_trained
from dnnkernels.quantize import quantize

mnist = load_mnist()
lenet = load_trained("lenet")
calibration = mnist.train_images[::30][:2000]  # 2000 training images, every 30th
qnet = quantize(lenet, calibration)
ops = qnet.ops()
names = qnet.layer_names
lines = [
    "| layer | fan-in K | outputs | N_mul | N_add | worst-case bits |",
    "|---|---|---|---|---|---|",
]
for layer, op in zip(qnet.layers, ops, strict=True):
    bound = layer.sum_bound + int(layer.bias.abs().max())  # |partial sum| can reach this
    worst = accumulator.bits_for_range(-bound, bound)
    lines.append(
        f"| {op.name} | {op.fan_in} | {op.n_outputs:,} | {op.n_mul:,} | {op.n_add:,} | {worst} |"
    )
n_mul, n_add = sum(op.n_mul for op in ops), sum(op.n_add for op in ops)
lines.append(f"| all | | | {n_mul:,} | {n_add:,} | |")
display(Markdown("\n".join(lines)))

few = mnist.test_images[:200]
exact = intengine.integer_forward(qnet, few, 32).logits
assert torch.equal(exact, intengine.reference_logits(qnet, few)), (
    "32-bit engine != direct reference"
)
one = mnist.test_images[:1]
for mode in accumulator.MODES:
    fast = intengine.integer_forward(qnet, one, 16, mode)
    loop = intengine.integer_forward(qnet, one, 16, mode, method="loop")
    overflowed = {name: int(count) for name, count in fast.overflows.items()}
    assert torch.equal(fast.logits, loop.logits) and overflowed == {
        name: int(count) for name, count in loop.overflows.items()
    }, f"16 bits, {mode}: the fast engine (your accumulate) and the loop engine disagree"
    print(f"16 bits, {mode:>8}: engines agree; overflowed outputs per layer: {overflowed}")
print(f"float LeNet: {100 * float_accuracy(lenet, mnist):.2f} % on the 10,000 test images")

# %% [markdown]
# ## 5. Partial sums, layer by layer (Q1, 3 points; Q2, 2 points)
#
# Compute the statistics of every layer's accumulations over the 2000 calibration images
# with `partial_sums.partial_sum_stats(qnet, calibration, progress=False)` (exact 64-bit
# arithmetic): a dict layer name → `PartialSumStats` with the range of all partial sums
# (`prefix_min`, `prefix_max`), their `min_bits`, and a histogram of the final accumulator
# values (`hist_edges`, `hist_counts`: bin `j` counts the values in
# `[hist_edges[j], hist_edges[j+1])`). That histogram is exact, one bin per integer value:
# 10**5 bins and more per layer, far too many to draw one bar each (`ax.bar` on them runs
# for many minutes). To plot, take `edges, counts = s.histogram(bins=100)` (at most 100
# bins, counts still exact) and draw them with `ax.stairs(counts, edges, fill=True)`.
#
# **Q1.** Plot one histogram per layer (log count axis), mark the range of all partial sums
# and the range of its `min_bits`, and save the figure as `bit_width_partial_sums.png`.
# The cell must define `stats` (the dict above) and `bits_a`, the width of approach **A**:
# the largest `min_bits` over the layers, so that no partial sum seen on the calibration
# images overflows. The table printed at the end also shows, per layer, the share of the final
# values that one or two bits fewer than `min_bits` could not hold.

# %% tags=["manual:bit_width_histograms:3"]
### BEGIN SOLUTION
stats = partial_sums.partial_sum_stats(qnet, calibration, progress=False)
bits_a = max(s.min_bits for s in stats.values())
fig, axes = plt.subplots(1, len(stats), figsize=(3.3 * len(stats), 3.3), sharey=True)
for ax, s in zip(axes, stats.values(), strict=True):
    edges, counts = s.histogram(bins=120)
    ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.8)
    ax.set_yscale("log")
    for v in (s.prefix_min, s.prefix_max):
        ax.axvline(v, color="tab:red", lw=1, ls="--")
    lo, hi = accumulator.accumulator_range(s.min_bits)
    ax.axvspan(lo, hi, color="tab:green", alpha=0.08)
    for v in accumulator.accumulator_range(s.min_bits - 1):
        ax.axvline(v, color="black", lw=0.8, ls=":")
    ax.set_title(f"{s.name}: {s.min_bits} bits", fontsize=9)
    ax.set_xlabel("final accumulator value", fontsize=8)
    ax.tick_params(labelsize=7)
axes[0].set_ylabel("outputs (2000 images)")
fig.suptitle(
    "Final accumulator values per layer. Red: range of all partial sums; "
    "green: range of min_bits; dotted: range of one bit fewer",
    fontsize=9,
)
fig.tight_layout()
fig.savefig("bit_width_partial_sums.png", dpi=120)
plt.show()
### END SOLUTION


def share_outside(s, bits):
    """Share of a layer's final values outside the range of ``bits`` bits."""
    lo, hi = accumulator.accumulator_range(bits)
    low_edges, high_edges = s.hist_edges[:-1], s.hist_edges[1:]
    outside = s.hist_counts[(high_edges <= lo) | (low_edges > hi)].sum()
    return outside / s.hist_counts.sum()


lines = [
    "| layer | partial sums in | min_bits | final values in | outside min_bits - 1 | "
    "outside min_bits - 2 |",
    "|---|---|---|---|---|---|",
]
for s in stats.values():
    lines.append(
        f"| {s.name} | [{s.prefix_min:,}, {s.prefix_max:,}] | {s.min_bits} | "
        f"[{s.final_min:,}, {s.final_max:,}] | {share_outside(s, s.min_bits - 1):.3%} | "
        f"{share_outside(s, s.min_bits - 2):.2%} |"
    )
display(Markdown("\n".join(lines)))
print(f"approach A: {bits_a} bits in every layer")

# %% [markdown]
# **Q2.** What do the distributions show? Compare the observed widths with the worst-case
# widths of section 4, the bulk of each distribution with its range, and the layers with
# each other. What does that suggest for choosing widths?

# %% [markdown] tags=["manual:bit_width_ranges:2"]
# *Model answer (numbers from the reference run).*
#
# The final sums of every layer are centred near zero and fall by four to five orders of
# magnitude from the centre to the edges of the range (log-scale histograms): `conv1` has a
# sharp spike in the middle (the many identical windows of blank background) and broad
# shoulders; `conv2` has straight flanks on the log scale (exponential tails); `fc1` and
# `fc2` are bell-shaped, `fc2` skewed to the positive side; the logits of `fc3` have two
# bumps, the many negative scores and the one large positive score of the predicted digit.
# The partial sums reach barely beyond the final values (red lines at the ends of the
# histograms).
#
# The observed ranges need 18–19 bits, while the worst case over all possible inputs needs
# 20–25 bits (`fc1`: 400 products of up to 255 · 127): ReLU activations are sparse and
# small, and positive and negative products cancel, so a guaranteed width wastes 2–6 bits.
# But the range is not set by a few freak values: one bit fewer than `min_bits` would leave
# 0.03 % (`fc2`) to 6.6 % (`fc3`) of the final values outside it, two bits fewer 4–29 %. The
# tails are thin but hold many values because each layer computes millions of outputs.
# The layers' needs differ by a single bit (18 for `conv1` and `fc3`, 19 for the others),
# so one width for all (A) is set by the most demanding layer and per-layer widths gain
# little from the ranges alone; going below `min_bits` means accepting overflows in a few
# percent of the outputs, whose cost must be measured (B, C) and depends on what an
# overflow does (saturation or wrap-around).

# %% [markdown]
# ## 6. Approaches A and B: one width for every layer (Q3, 3 points; Q4, 2 points)
#
# From now on the accuracy is measured on the first `EVAL_IMAGES` test images (a subset, so
# that the whole notebook runs in about a minute; each run of the engine with narrow
# accumulators takes a few seconds). The given function `run(bits, mode)` evaluates the
# integer LeNet with accumulator widths `bits` (one int for all layers, or a dict layer →
# int) and returns a `intengine.Evaluation` (`accuracy` in percent, `overflow_outputs` per layer,
# ...); it remembers its results, so asking twice costs nothing. `threshold` is the
# accuracy with 32-bit accumulators minus `TOLERANCE` points.

# %%
EVAL_IMAGES, TOLERANCE = 400, 1.0
eval_images, eval_labels = mnist.test_images[:EVAL_IMAGES], mnist.test_labels[:EVAL_IMAGES]
_runs = {}


def run(bits, mode="saturate"):
    """Accuracy and overflow counts of the integer LeNet on the evaluation images (cached)."""
    per_layer = qnet.bits_per_layer(bits)
    key = (mode, tuple(per_layer[name] for name in names))
    if key not in _runs:
        _runs[key] = intengine.evaluate(qnet, eval_images, eval_labels, per_layer, mode)
    return _runs[key]


baseline = run(32)
threshold = baseline.accuracy - TOLERANCE
print(
    f"{EVAL_IMAGES} test images, 32-bit accumulators: {baseline.accuracy:.2f} % "
    f"(threshold {threshold:.2f} %); overflowed outputs: {sum(baseline.overflow_outputs.values())}"
)

# %% [markdown]
# **Q3.** Measure the accuracy for the uniform widths `WIDTHS` (from `bits_a - 3` to
# `bits_a + 1`), in both modes (`"saturate"` and `"wrap"`), and plot accuracy against width,
# one line per mode, with the 32-bit accuracy, the threshold, and A and B marked (save as
# `bit_width_accuracy.png`). Approach **B** is the smallest width `bits_b` such that every
# width from `bits_b` to `bits_a` keeps the saturating accuracy at or above `threshold`
# (`bitwidth.uniform_search` does this scan); define `bits_b`.

# %% tags=["manual:bit_width_uniform:3"]
WIDTHS = list(range(bits_a - 3, bits_a + 2))
### BEGIN SOLUTION
sweep = {mode: {b: run(b, mode) for b in WIDTHS} for mode in accumulator.MODES}
bits_b, _ = bitwidth.uniform_search(lambda b: run(b).accuracy, bits_a, threshold)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, bottom in zip(axes, (0, threshold - 2), strict=True):  # full range, then a zoom
    for mode, results in sweep.items():
        ax.plot(WIDTHS, [results[b].accuracy for b in WIDTHS], marker="o", label=mode)
    ax.axhline(baseline.accuracy, color="gray", lw=1, label=f"32 bits ({baseline.accuracy:.2f} %)")
    ax.axhline(threshold, color="gray", lw=1, ls=":", label=f"threshold (-{TOLERANCE:g} point)")
    ax.axvline(bits_a, color="tab:green", ls="--", lw=1, label=f"A = {bits_a} bits")
    ax.axvline(bits_b, color="tab:red", ls="--", lw=1, label=f"B = {bits_b} bits")
    ax.set_xlabel("accumulator bits (every layer)")
    ax.set_ylabel(f"accuracy on {EVAL_IMAGES} test images (%)")
    ax.set_ylim(bottom, 100.5)
    ax.set_xticks(WIDTHS)
axes[0].legend(fontsize=8, loc="lower right")
axes[0].set_title("Accuracy against a uniform accumulator width", fontsize=10)
axes[1].set_title("the same, near the top", fontsize=10)
fig.tight_layout()
fig.savefig("bit_width_accuracy.png", dpi=120)
plt.show()
### END SOLUTION
lines = [
    "| bits | mode | accuracy % | outputs that overflowed | images with an overflow |",
    "|---|---|---|---|---|",
]
for b in WIDTHS:
    for mode in accumulator.MODES:
        r = run(b, mode)
        outputs = sum(r.overflow_outputs.values())
        images = max(r.overflow_images.values())
        lines.append(f"| {b} | {mode} | {r.accuracy:.2f} | {outputs:,} | {images} |")
display(Markdown("\n".join(lines)))
print(f"approach A: {bits_a} bits, approach B: {bits_b} bits")

# %% [markdown]
# **Q4.** Compare saturation and wrap-around: at which width does each start to lose
# accuracy, how fast, and why? Relate your answer to the overflow counts in the table.

# %% [markdown] tags=["manual:bit_width_modes:2"]
# *Model answer (numbers from the reference run).*
#
# At A (19 bits) and above nothing overflows and both modes are exact. One bit below A,
# 5,551 outputs overflow (about 0.2 % of the 2.6 million accumulations): saturation keeps
# the full 99.50 %, wrap-around drops to 88.25 %. Two bits below (17 bits, about 5 % of the
# outputs overflow) saturation still holds 99.0 %, within the tolerance (that is B), while
# wrap-around is at 70 %; at 16 bits saturation falls to 87 % and wrap-around to 39 %.
# The overflow counts are similar in both modes (5,551 against 5,603 at 18 bits, 128,000
# against 104,000 at 17), so the difference is what an overflow does, not how often it
# happens. A saturated sum stays at the edge of the range with the right sign. After the
# ReLU a negative overflow almost never matters (the sum stays negative and the ReLU gives
# 0 either way), and a positive one still gives a large activation, just smaller than it
# should be. A wrapped sum jumps by $2^b$ to the other end of the range: a large positive
# sum becomes negative (its activation is lost) and a large negative one becomes a large
# positive activation that should not exist, and the errors propagate to the next layers.
# Saturation costs a comparison per addition in hardware, but it is what makes narrow
# accumulators usable.

# %% [markdown]
# ## 7. Approach C: one width per layer (Q5, 3 points)
#
# Start every layer at its own `min_bits` (`own` below), then find for each layer alone
# (the others at their own `min_bits`) the smallest width that keeps the saturating
# accuracy at or above `threshold`, lowering one bit at a time. Reductions in several layers
# add up, so combine them and check the combination: while it falls below `threshold`, give
# every lowered layer one bit back. Define `bits_c`, a dict layer → width. (The library's
# `bitwidth.greedy_per_layer` is a more thorough search: it lowers layers together, largest first,
# and costs several minutes; this one stays within a minute.)

# %% tags=["manual:bit_width_per_layer:3"]
own = {name: s.min_bits for name, s in stats.items()}
### BEGIN SOLUTION
lowest = {}
for name in names:
    b = own[name]
    while b > accumulator.MIN_BITS and run({**own, name: b - 1}).accuracy >= threshold:
        b -= 1
    lowest[name] = b
bits_c = dict(lowest)
while run(bits_c).accuracy < threshold and bits_c != own:
    bits_c = {name: min(b + 1, own[name]) for name, b in bits_c.items()}
print("each layer alone:", lowest)
### END SOLUTION
approaches = {
    "32-bit": dict.fromkeys(names, 32),
    "A": dict.fromkeys(names, bits_a),
    "B": dict.fromkeys(names, bits_b),
    "C": dict(bits_c),
}
lines = [
    "| approach | " + " | ".join(names) + " | accuracy % | outputs that overflowed |",
    "|---|" + "---|" * (len(names) + 2),
]
for label, bits in approaches.items():
    r = run(bits)
    lines.append(
        f"| {label} | "
        + " | ".join(str(bits[n]) for n in names)
        + f" | {r.accuracy:.2f} | {sum(r.overflow_outputs.values()):,} |"
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 8. Exercise: the energy of a layer (`bit_width_energy`, 2 points)
#
# `layer_energy(n_mul, n_add, bits_mul, bits_add)` returns
# $s_\text{mul} N_\text{mul} + s_\text{add} N_\text{add}$ with
# $s_\text{mul} = 64 (B_\text{mul} / 8)^2$ and $s_\text{add} = B_\text{add}$, as a float.

# %% tags=["answer:bit_width_energy"]
# generated from src/dnnkernels/energy.py: layer_energy

# %% tags=["check:bit_width_energy"]
got = layer_energy(1, 0, 8, 32)
assert got == 64.0, f"one 8-bit multiplication: {got}, expected 64 units"
got = layer_energy(0, 1, 8, 32)
assert got == 32.0, f"one 32-bit addition: {got}, expected 32 units"
got = layer_energy(1, 0, 16, 32)
assert got == 256.0, f"one 16-bit multiplication: {got}, expected 64 * (16 / 8)**2 = 256 units"
got = layer_energy(1000, 1000, 16, 20)
assert got == 1000 * 256 + 1000 * 20, f"layer_energy(1000, 1000, 16, 20) = {got}, expected 276000"
got = layer_energy(240_000, 241_600, 8, 19)
assert got == 64 * 240_000 + 19 * 241_600, f"a conv2-sized layer: {got}, expected 19950400"
assert isinstance(layer_energy(3, 4, 8, 24), float), "layer_energy returns a float"
print("layer_energy: visible checks passed")

# %% [markdown]
# ## 9. The energy of each approach (Q6, 2 points; Q7, 4 points)
#
# **Q6.** For each approach of section 7 compute the energy of one inference in both models,
# `energy.network_energy(ops, bits)` (it returns `units`, `pj` and the per-layer shares, with
# $B_\text{mul} = 8$), and show it: a table with the totals, their ratio to 32-bit, and the
# share of the additions; and a bar plot with multiplications and additions stacked, one
# panel per model (save as `bit_width_energy.png`).

# %% tags=["manual:bit_width_energy_plot:2"]
### BEGIN SOLUTION
energies = {label: energy.network_energy(ops, bits) for label, bits in approaches.items()}
mul_units = sum(energy.layer_energy(op.n_mul, 0, 8, 8) for op in ops)
mul_pj = sum(energy.mul_energy_pj(8) * op.n_mul for op in ops)
base = energies["32-bit"]
lines = [
    "| approach | units | vs 32-bit | additions' share | nJ (45 nm) | vs 32-bit |",
    "|---|---|---|---|---|---|",
]
for label, e in energies.items():
    lines.append(
        f"| {label} | {e.units:,.0f} | {e.units / base.units:.3f} | "
        f"{1 - mul_units / e.units:.1%} | {e.pj / 1e3:.1f} | {e.pj / base.pj:.3f} |"
    )
display(Markdown("\n".join(lines)))
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
labels = list(energies)
for ax, mul, total, unit, scale in (
    (axes[0], mul_units, [e.units for e in energies.values()], "model units (millions)", 1e6),
    (axes[1], mul_pj, [e.pj for e in energies.values()], "nJ, 45 nm (Horowitz)", 1e3),
):
    adds = [(t - mul) / scale for t in total]
    ax.bar(labels, [mul / scale] * len(labels), color="tab:gray", label="multiplications")
    bars = ax.bar(labels, adds, bottom=mul / scale, color="tab:blue", label="additions")
    ax.bar_label(bars, labels=[f"{t / scale:.1f}" for t in total], fontsize=8)
    ax.set_ylabel(f"energy per image, {unit}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
fig.suptitle("Energy of one inference by approach", fontsize=10)
fig.tight_layout()
fig.savefig("bit_width_energy.png", dpi=120)
plt.show()
### END SOLUTION

# %% [markdown]
# **Q7.** Discuss: which approach saves the most energy, by how much, and why not more?
# Which layers matter, and why did (or did not) the per-layer widths of C pay off against B?
# What would you change in the hardware or in the network to save more? And how safe are
# widths chosen from the calibration images (A) or from test accuracy (B, C)?

# %% [markdown] tags=["manual:bit_width_discussion:4"]
# *Model answer (numbers from the reference run).*
#
# **Savings.** From 32-bit accumulators to A (19 bits) the energy falls by 13.7 % in model
# units and 12.8 % at 45 nm; B (17 bits) by 15.8 % and 14.7 %; C by 16.0 % and 14.9 %,
# within 0.2 % of B. The accumulator width only changes the adders, and the 8-bit
# multiplications dominate: with 32-bit adders they are two thirds of the energy in both
# models (64 units each against 32 for an addition; 0.2 pJ against 0.1 pJ), and close to
# 80 % with 17-bit adders. Even free additions would save only a third; most of what
# narrower adders can save, A already saves.
#
# **Layers.** `conv2` does 57 % of all additions (241,600 of 423,038 per image) and `conv1`
# 29 %; the three fully connected layers together 14 %. A bit saved in `conv2` is worth five
# bits in `fc1` and 280 in `fc3`. C found that each convolution alone tolerates 17 bits, as
# in B, and `fc1` and `fc2` three and four bits less than their `min_bits` (16 and 15); but
# those layers do so few additions that C gains 0.2 % over B, and it spends the whole
# accuracy budget doing so (98.50 % against 99.00 % for B). Per-layer widths pay only where
# the big layers differ in what they need; here they do not, so the layer with the most
# operations decides, and it should be optimised first.
#
# **Saving more** takes narrower *multipliers* (the quadratic term: 4-bit operands would
# divide the multiplications' energy by four), fewer operations (pruning, or the low-rank
# layers of the mnist assignment) or less data movement, which in a real accelerator costs
# more than the arithmetic and also shrinks when the partial sums stored between tiles are
# narrower.
#
# **Safety.** A comes from ranges observed on 2000 training images: a measurement, not a
# guarantee (the 400 test images did not overflow at A, an unusual image could). Only the
# worst-case widths of section 4 (20–25 bits) guarantee no overflow. B and C were chosen on
# the same 400 test images that judge them, so they are tuned to those images: a fair study
# chooses them on held-out validation images and confirms on the test set, and 400 images
# measure accuracy only to about ±0.5 point (C sits exactly on the threshold). Saturation
# makes an occasional overflow cheap, which is what makes B's narrower width acceptable;
# with wrap-around it would not be.
