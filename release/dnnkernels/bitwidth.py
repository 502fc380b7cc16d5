# Generated automatically from src/dnnkernels/bitwidth.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Accumulator bit-width: integer inference with a b-bit accumulator, and its energy.

The study of the bit_width assignment. A trained network (the course's LeNet) is quantized
after training to 8-bit integers; an integer inference engine then runs it with a
``b``-bit two's complement accumulator per layer, range ``[-2**(b-1), 2**(b-1) - 1]``,
and reports what overflows, how often, and what it costs in accuracy and energy.

Exercises (their reference bodies sit between solution markers, see
:mod:`dnnkernels.course.extract`; they take already-validated input, the public wrappers
check it):

- :func:`accumulate` -- sums of products in a b-bit accumulator, saturating or wrapping
  (wrapper :func:`accumulate_products`; naive definition :func:`accumulate_loop`);
- :func:`min_bits` -- the smallest bit-width whose range holds ``[lo, hi]``
  (wrapper :func:`bits_for_range`);
- :func:`layer_energy` -- ``s_mul * N_mul + s_add * N_add`` (wrapper :func:`energy`).

Canonical order of a layer's additions
--------------------------------------
Every output of a convolution or fully connected layer is one accumulation. The
accumulator starts at 0 and adds, one at a time,

1. the products ``x[k] * w[o, k]`` for ``k = 0 .. K-1`` in the order of the flattened
   weight: for a convolution ``k = (c, u, v)`` row-major over ``(C, kh, kw)`` -- the order
   of ``weight.reshape(O, -1)`` and of ``F.unfold`` -- so ``K = C * kh * kw``, zero-padded
   positions included (their product is 0 and never changes the accumulator); for a
   fully connected layer ``k`` is the input index, ``K = in_features``;
2. then the bias ``b[o]`` (an int32 in the accumulator's scale), as one more addition.

After every addition the value must lie in the range. ``"saturate"`` clamps it to the
nearest end of the range; ``"wrap"`` keeps it modulo ``2**b`` (what an adder that drops the
carry does). An output *overflows* when at least one of its additions left the range.

Quantization scheme (:func:`quantize`)
--------------------------------------
Post-training, per layer, symmetric, no zero points:

- input: ``q0 = clamp(round(normalize(pixels) / s0), -128, 127)`` with
  ``s0 = max |normalize(pixels)| / 127`` over the calibration images (the pixels are
  uint8 0..255; ``normalize`` is :func:`dnnkernels.data.normalize`). Zero padding of the
  normalised image is exactly ``q0 = 0``, which is why the scheme quantizes the
  normalised input rather than the raw pixels (whose zero point, 255 * mean = 33.3, is not
  an integer);
- weights: int8 in [-127, 127], ``qw = round(w / sw)`` with ``sw = max |w| / 127`` per
  layer (one scale per weight tensor);
- bias: ``qb = round(b / (s_in * sw))``, an integer in the accumulator's scale
  ``s_in * sw`` (int32 range checked);
- hidden activations: uint8, ``q_out = clamp(round(acc * M), 0, 255)`` with the float64
  multiplier ``M = s_in * sw / s_out`` (the clamp at 0 is the ReLU) and
  ``s_out = (max activation after ReLU over the calibration images) / 255``; max-pooling
  follows on the uint8 values (it commutes with the monotone requantization). The engine
  and the reference share this one requantization function;
- output layer: the logits are the integer accumulator values (real logits = acc * s_in * sw;
  the argmax needs no scale).

So every multiplication is 8 bit x 8 bit (int8 weight times int8 input or uint8
activation): ``B_mul = 8``; ``|product| <= 128 * 255``.

Engine (:func:`integer_forward`)
--------------------------------
``method="loop"`` is the readable definition: Python loops over images, outputs and
products, one addition at a time (small inputs only: about 0.1-1 s per image).
``method="fast"`` gives exactly the same integers (tested), vectorized, per layer:

1. One convolution (or matrix product) with the weights split by sign gives, for every
   output, the sum ``P`` of its positive and the sum ``N`` of its negative products (for
   the signed network input, ``x+ w+ + x- w-`` and ``x+ w- + x- w+``). These are integers
   whose partial sums stay below 2**24 in magnitude (``K * 255 * 127``, checked per layer),
   so float32 computes them exactly in any summation order; the convolution runs through a
   direct algorithm (never Winograd/FFT: NNPACK is disabled and the backend checked), else
   an explicit im2col + GEMM. The exact result is ``P + N + bias``.
2. Every partial sum of an output lies in ``[N, P]`` (bias included). If ``N >= lo`` and
   ``P <= hi`` no addition can overflow: the output is the exact sum. Only the others,
   the *candidates*, can overflow. When they are many, tighter bounds (the same argument on
   consecutive blocks of the canonical order: input channels, or kernel rows when there is
   one input channel, or slices of a fully connected layer's input; one grouped
   convolution) discard most false candidates.
3. The products of the remaining candidates are gathered (from the im2col patch matrix)
   and passed with their bias, in chunks, to :func:`accumulate` (the exercise), which
   replays the additions and reports the overflows.

Then requantization, max-pooling (pooling first: it commutes with the monotone
requantization) and the next layer. Images are processed in batches of 128 and candidates
in chunks of 2**18 products, so that the working set stays in the CPU caches.

Statistics and the study
------------------------
:func:`partial_sum_stats` runs the exact network over a data set and records per layer the
exact range of *all* partial sums in canonical order (same bound argument: only outputs
whose bounds exceed the extremes seen so far are replayed), the range and a histogram of
the *final* accumulator values (bias included, before requantization) and the smallest
width covering the range. :func:`run_study` compares approaches A (one width from the
observed ranges), B (smallest uniform width within 1 percentage point of the 32-bit
accuracy) and C (per-layer widths by a greedy search), each with accuracy and energy, and
writes the plots and the table.

Energy
------
``E = sum over layers (s_mul * N_mul + s_add * N_add)``, ``s_mul = 64 * (B_mul / 8)**2``,
``s_add = B_add`` (model units per image), with the counts of :func:`conv_ops` /
:func:`linear_ops`; and a physical model in picojoules at 45 nm (Horowitz, ISSCC 2014),
:func:`add_energy_pj`, :func:`mul_energy_pj`.

Run the whole study with ``python -m dnnkernels.bitwidth --out build/bitwidth``: it writes
``partial_sums.png``, ``accuracy_vs_bits.png``, ``energy.png``, ``approaches.md`` /
``approaches.csv`` (the A/B/C table) and ``summary.json`` into the output directory and
updates the bitwidth section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np  # noqa: F401  (available to the exercise functions)
import torch
import torch.nn.functional as F
from torch import nn

from dnnkernels.checks import check_choice, check_int, check_tensor, describe

__all__ = [
    "MODES",
    "METHODS",
    "MIN_BITS",
    "MAX_BITS",
    "accumulator_range",
    "accumulate",
    "accumulate_loop",
    "accumulate_products",
    "min_bits",
    "bits_for_range",
    "layer_energy",
    "energy",
    "add_energy_pj",
    "mul_energy_pj",
    "conv_ops",
    "linear_ops",
    "LayerOps",
    "QuantLayer",
    "QuantizedNet",
    "quantize",
    "requantize",
    "integer_forward",
    "reference_logits",
    "IntegerOutput",
    "Evaluation",
    "evaluate",
    "PartialSumStats",
    "partial_sum_stats",
    "network_energy",
    "NetworkEnergy",
    "uniform_search",
    "greedy_per_layer",
    "run_study",
    "update_benchmarks",
    "main",
]

MODES = ("saturate", "wrap")
METHODS = ("fast", "loop")
MIN_BITS = 2
MAX_BITS = 64
#: the public wrappers require sum(|products|) along the accumulation axis below this bound,
#: so that every exact partial sum, and every intermediate of the fast method, fits int64
PRODUCT_SUM_LIMIT = 2**62

#: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: energy per operation in pJ
HOROWITZ_45NM_PJ = {"add": {8: 0.03, 32: 0.1}, "mul": {8: 0.2, 32: 3.1}}

BENCH_BEGIN = "<!-- bench:bitwidth:begin -->"
BENCH_END = "<!-- bench:bitwidth:end -->"


def accumulator_range(bits: int) -> tuple[int, int]:
    """The two's complement range ``(lo, hi) = (-2**(bits-1), 2**(bits-1) - 1)``."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


# ============================================================================ exercises


def accumulate(
    products: torch.Tensor, bits: int, mode: str = "saturate"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum products in a ``bits``-bit two's complement accumulator, one addition at a time.

    For every index ``i`` of the leading dimensions the accumulator starts at ``acc = 0``
    and adds ``products[i, 0]``, ``products[i, 1]``, ..., ``products[i, K-1]`` in this
    order. It holds values in ``[lo, hi] = [-2**(bits-1), 2**(bits-1) - 1]``; when an
    addition ``acc + p`` leaves that range,

    - ``mode="saturate"``: the accumulator becomes ``min(max(acc + p, lo), hi)`` (clamped
      after every single addition, so later additions start from ``lo`` or ``hi``);
    - ``mode="wrap"``: it becomes ``acc + p`` modulo ``2**bits``, mapped into ``[lo, hi]``
      (the carry is dropped), so the result is ``wrap(exact sum)``.

    ``overflow[i]`` is True when at least one addition left the range. Before the first
    such addition the accumulator equals the exact prefix sum.

    Precondition (checked by :func:`accumulate_products`): ``sum(|products[i, :]|) < 2**62``
    for every ``i``, so exact partial sums fit in int64, and with ``bits >= 63`` nothing
    can overflow.

    Vectorize: no Python loop over the accumulations ``i`` (the integer engine calls this
    on millions of them). A loop over the K positions, each step acting on all
    accumulations at once, is fine; so is composing the additions pairwise in log2(K)
    steps -- one saturating addition is the map ``f(x) = min(max(x + a, l), h)``, and two
    such maps in a row are again such a map. The result must equal the one-addition-at-a-time
    definition above exactly (the reference kit tests it against a naive loop,
    :func:`accumulate_loop`, whose body the student build leaves out).

    Args:
        products: int64 tensor of shape (..., K), K >= 0.
        bits: accumulator width, 2 <= bits <= 64.
        mode: ``"saturate"`` or ``"wrap"``.

    Returns:
        ``(sums, overflow)``: int64 tensor (...) -- the final accumulator values -- and bool
        tensor (...).
    """
    # Student build: runs your own `accumulate` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("bit_width_accumulate")(products, bits, mode)


def min_bits(lo: int, hi: int) -> int:
    """The smallest two's complement bit-width whose range holds every integer of ``[lo, hi]``.

    Returns the smallest ``b >= 1`` with ``-2**(b-1) <= lo`` and ``hi <= 2**(b-1) - 1``.
    Examples: ``min_bits(0, 0) == 1`` (range [-1, 0]), ``min_bits(0, 1) == 2``,
    ``min_bits(-128, 127) == 8``, ``min_bits(-129, 0) == 9``, ``min_bits(0, 128) == 9``.

    Args:
        lo: Python int, the smallest value to hold.
        hi: Python int, the largest value to hold, ``lo <= hi`` (any size: Python ints).

    Returns:
        int ``b >= 1``.
    """
    # Student build: runs your own `min_bits` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("bit_width_min_bits")(lo, hi)


def layer_energy(n_mul: int, n_add: int, bits_mul: int, bits_add: int) -> float:
    """Energy of one layer in model units: ``s_mul * n_mul + s_add * n_add``.

    ``s_mul = 64 * (bits_mul / 8) ** 2`` (a multiplier's cost grows with the square of its
    operand width: 64 units for 8 x 8 bits) and ``s_add = bits_add`` (an adder's cost
    grows linearly with the accumulator width).

    Args:
        n_mul: number of multiplications, int >= 0.
        n_add: number of additions, int >= 0.
        bits_mul: operand width of the multiplications, int >= 1.
        bits_add: width of the adder (the accumulator), int >= 1.

    Returns:
        float, the energy in model units.
    """
    # Student build: runs your own `layer_energy` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("bit_width_energy")(n_mul, n_add, bits_mul, bits_add)


# ======================================================= naive definition and wrappers


def accumulate_loop(
    products: torch.Tensor, bits: int, mode: str = "saturate"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The naive definition of :func:`accumulate`: one Python addition at a time.

    Same arguments and results as :func:`accumulate`, computed with Python ints (exact,
    any size) in two nested loops. Small inputs only. Reference kit only: the student build
    leaves the body out, as it is a complete (if slow) answer to the ``accumulate`` exercise.
    """
    # Student build: the reference body of `accumulate_loop` is left out.
    raise NotImplementedError('accumulate_loop: reference only, left out of the student build (its body would answer an exercise)')


def _add(acc: int, p: int, lo: int, hi: int, mode: str) -> tuple[int, bool]:
    """One accumulator addition ``acc + p`` in ``[lo, hi]``: (new value, overflowed)."""
    s = acc + p
    if lo <= s <= hi:
        return s, False
    if mode == "saturate":
        return (hi if s > hi else lo), True
    return (s - lo) % (hi - lo + 1) + lo, True


def check_bits(name: str, bits: object) -> int:
    """Check an accumulator width: an int in ``[MIN_BITS, MAX_BITS]`` = [2, 64]."""
    if isinstance(bits, np.integer):
        bits = int(bits)
    return check_int(name, bits, low=MIN_BITS, high=MAX_BITS)


def accumulate_products(
    products: torch.Tensor, bits: int, mode: str = "saturate", method: str = "fast"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, then accumulate with :func:`accumulate` (``"fast"``) or :func:`accumulate_loop`.

    Args:
        products: int64 tensor (..., K) with at least one dimension and
            ``sum(|products|) < 2**62`` along the last axis.
        bits: accumulator width, int in [2, 64].
        mode: ``"saturate"`` or ``"wrap"``.
        method: ``"fast"`` (vectorized) or ``"loop"`` (naive).

    Returns:
        ``(sums int64 (...), overflow bool (...))`` as in :func:`accumulate`.
    """
    check_tensor("products", products, dtypes=(torch.int64,))
    if products.ndim == 0:
        raise ValueError(f"products: got {describe(products)} (0-D), expected at least 1-D")
    bits = check_bits("bits", bits)
    check_choice("mode", mode, MODES)
    check_choice("method", method, METHODS)
    _check_product_sums(products)
    kernel = accumulate if method == "fast" else accumulate_loop
    return kernel(products, bits, mode)


def _check_product_sums(products: torch.Tensor) -> None:
    """Raise unless ``sum(|products|) < 2**62`` along the last axis (exact int64 check)."""
    if products.numel() == 0:
        return
    big = (products <= -PRODUCT_SUM_LIMIT) | (products >= PRODUCT_SUM_LIMIT)
    if bool(big.any()):
        raise ValueError(
            f"products: got {describe(products)} with {int(big.sum())} entries of magnitude "
            ">= 2**62, expected sum(|products|) < 2**62 along the last axis "
            "(so that exact partial sums fit in int64)"
        )
    magnitude = products.abs()
    high = (magnitude >> 31).sum(dim=-1)  # each term < 2**31, so these sums cannot overflow
    low = (magnitude & (2**31 - 1)).sum(dim=-1)
    too_big = (high >= 2**31) | (high * 2**31 + low >= PRODUCT_SUM_LIMIT)
    if bool(too_big.any()):
        raise ValueError(
            f"products: got {describe(products)} with {int(too_big.sum())} rows whose "
            "sum(|products|) >= 2**62, expected less (so that exact partial sums fit in int64)"
        )


def bits_for_range(lo: int, hi: int) -> int:
    """Validate, then :func:`min_bits`: the smallest width holding ``[lo, hi]``.

    Args:
        lo, hi: ints (Python or numpy) with ``lo <= hi``.
    """
    lo, hi = _as_int("lo", lo), _as_int("hi", hi)
    if lo > hi:
        raise ValueError(f"hi: got {hi} < lo = {lo}, expected lo <= hi")
    return min_bits(lo, hi)


def _as_int(name: str, value: object) -> int:
    if isinstance(value, np.integer):
        value = int(value)
    return check_int(name, value)


def add_energy_pj(bits: int | float) -> float:
    """Energy of one integer addition at 45 nm in pJ, linear in the width.

    The line through Horowitz's two points, 8-bit add 0.03 pJ and 32-bit add 0.1 pJ:
    ``E_add(b) = 0.03 + (b - 8) * (0.1 - 0.03) / (32 - 8)``.
    """
    (b0, e0), (b1, e1) = sorted(HOROWITZ_45NM_PJ["add"].items())
    return e0 + (bits - b0) * (e1 - e0) / (b1 - b0)


def mul_energy_pj(bits: int | float) -> float:
    """Energy of one integer multiplication at 45 nm in pJ, quadratic in the width.

    ``E_mul(b) = c2 * b**2 + c0`` through Horowitz's two points, 8-bit multiply 0.2 pJ and
    32-bit multiply 3.1 pJ: ``c2 = (3.1 - 0.2) / (32**2 - 8**2)``, ``c0 = 0.2 - c2 * 8**2``
    (an array multiplier has about b**2 cells; the small constant absorbs the rest).
    """
    (b0, e0), (b1, e1) = sorted(HOROWITZ_45NM_PJ["mul"].items())
    c2 = (e1 - e0) / (b1**2 - b0**2)
    return c2 * bits**2 + (e0 - c2 * b0**2)


def energy(n_mul: int, n_add: int, bits_mul: int, bits_add: int, model: str = "units") -> float:
    """Validate, then the energy of one layer.

    ``model="units"``: :func:`layer_energy` (``64 * (bits_mul/8)**2 * n_mul + bits_add * n_add``);
    ``model="pj"``: ``mul_energy_pj(bits_mul) * n_mul + add_energy_pj(bits_add) * n_add``.

    Args:
        n_mul, n_add: operation counts, ints >= 0.
        bits_mul: multiplier operand width, int in [1, 64].
        bits_add: adder (accumulator) width, int in [1, 64].
        model: ``"units"`` or ``"pj"``.
    """
    n_mul, n_add = _as_count("n_mul", n_mul), _as_count("n_add", n_add)
    bits_mul = check_int("bits_mul", _plain(bits_mul), low=1, high=MAX_BITS)
    bits_add = check_int("bits_add", _plain(bits_add), low=1, high=MAX_BITS)
    check_choice("model", model, ("units", "pj"))
    if model == "units":
        return layer_energy(n_mul, n_add, bits_mul, bits_add)
    return mul_energy_pj(bits_mul) * n_mul + add_energy_pj(bits_add) * n_add


def _plain(value: object) -> object:
    return int(value) if isinstance(value, np.integer) else value


def _as_count(name: str, value: object) -> int:
    return check_int(name, _plain(value), low=0)


# ============================================================================ op counts


@dataclass(frozen=True)
class LayerOps:
    """Operation counts of one layer for one image.

    Attributes:
        name: layer name (``"conv1"``, ...).
        kind: ``"conv"`` or ``"linear"``.
        n_outputs: accumulations per image (``O * H' * W'`` or ``out_features``).
        fan_in: products per accumulation, ``K = C * kh * kw`` or ``in_features``.
        n_mul: multiplications, ``n_outputs * K``.
        n_add: additions into the accumulator, ``n_outputs * (K + 1)`` with a bias
            (every product, the first one included, plus the bias), ``n_outputs * K`` without.
    """

    name: str
    kind: str
    n_outputs: int
    fan_in: int
    n_mul: int
    n_add: int


def conv_ops(
    out_channels: int,
    in_channels: int,
    kernel_size: tuple[int, int],
    out_size: tuple[int, int],
    bias: bool = True,
) -> tuple[int, int]:
    """Multiplications and additions of a convolution for one image.

    ``N_mul = O * H' * W' * C * kh * kw`` (zero-padded positions included, as a dense
    array computes them) and ``N_add = N_mul + O * H' * W'`` with a bias (each product is
    one addition into the accumulator, the bias one more), ``N_add = N_mul`` without.

    Returns:
        ``(n_mul, n_add)``.
    """
    (kh, kw), (ho, wo) = kernel_size, out_size
    outputs = out_channels * ho * wo
    n_mul = outputs * in_channels * kh * kw
    return n_mul, n_mul + (outputs if bias else 0)


def linear_ops(in_features: int, out_features: int, bias: bool = True) -> tuple[int, int]:
    """Multiplications and additions of a fully connected layer for one input vector.

    ``N_mul = out * in``; ``N_add = out * in + out`` with a bias, ``out * in`` without.
    """
    n_mul = out_features * in_features
    return n_mul, n_mul + (out_features if bias else 0)


# ========================================================================= quantization


@dataclass
class QuantLayer:
    """One quantized convolution or fully connected layer (with its ReLU and max-pool).

    Attributes:
        name: the module name in the float model (``"conv1"``, ``"fc3"``, ...).
        kind: ``"conv"`` or ``"linear"``.
        weight: int64 tensor (O, C, kh, kw) or (O, I), values in [-127, 127].
        bias: int64 tensor (O,), in the accumulator scale ``in_scale * weight_scale``.
        stride, padding: of the convolution (zero padding; 1 and 0 for linear layers).
        in_shape: shape of one input, ``(C, H, W)`` or ``(I,)``.
        out_shape: shape of one output after ReLU and pooling.
        flatten_input: the input arrives as (N, C, H, W) and is flattened first.
        signed_input: the input may be negative (the network input, int8); hidden
            activations are uint8.
        pool: max-pool kernel size (= stride) after the ReLU, 0 for none.
        in_scale, weight_scale: real value of one integer step of the input / weight.
        out_scale: real value of one step of the uint8 output, None for the output layer
            (whose results are the accumulator values, the logits).
    """

    name: str
    kind: str
    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    padding: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    flatten_input: bool
    signed_input: bool
    pool: int
    in_scale: float
    weight_scale: float
    out_scale: float | None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def fan_in(self) -> int:
        """Products per output, ``K``."""
        return int(self.weight[0].numel())

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def acc_scale(self) -> float:
        """Real value of one accumulator step, ``in_scale * weight_scale``."""
        return self.in_scale * self.weight_scale

    @property
    def multiplier(self) -> float | None:
        """Requantization multiplier ``acc_scale / out_scale`` (None for the output layer)."""
        return None if self.out_scale is None else self.acc_scale / self.out_scale

    @property
    def conv_out_size(self) -> tuple[int, int]:
        """``(H', W')`` of the convolution (before pooling)."""
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        return (
            (h + 2 * self.padding - kh) // self.stride + 1,
            (w + 2 * self.padding - kw) // self.stride + 1,
        )

    def ops(self) -> LayerOps:
        """Operation counts per image (see :func:`conv_ops`, :func:`linear_ops`)."""
        if self.kind == "conv":
            o, c, kh, kw = self.weight.shape
            n_mul, n_add = conv_ops(o, c, (kh, kw), self.conv_out_size)
            outputs = o * math.prod(self.conv_out_size)
        else:
            o, i = self.weight.shape
            n_mul, n_add = linear_ops(i, o)
            outputs = o
        return LayerOps(self.name, self.kind, outputs, self.fan_in, n_mul, n_add)

    @property
    def sum_bound(self) -> int:
        """Upper bound of the sum of |products| of one output (bias excluded):
        ``K * max|x| * max|w|`` with ``max|x|`` = 128 (int8 input) or 255 (uint8)."""
        return self.fan_in * (128 if self.signed_input else 255) * int(self.weight.abs().max())

    @property
    def sum_dtype(self) -> torch.dtype:
        """float32 when every partial sum of products is an integer below 2**24 (then any
        summation order is exact), else float64 (exact below 2**53)."""
        return torch.float32 if self.sum_bound < 2**24 else torch.float64

    def split_weight(self) -> torch.Tensor:
        """Weight giving ``[P | N]`` (sums of the positive / negative products) in one product.

        Non-negative input: ``[w+ ; w-]`` stacked on the output axis, (2O, C, kh, kw) or
        (2O, I). Signed input, fed as ``[x+ , x-]`` on the input axis: rows
        ``[w+ , w- ; w- , w+]``, (2O, 2C, kh, kw) or (2O, 2I) (``x- * w-`` is positive).
        """
        key = ("split", self.sum_dtype)
        if key not in self._cache:
            w = self.weight.to(self.sum_dtype)
            wp, wn = w.clamp(min=0), w.clamp(max=0)
            if self.signed_input:
                split = torch.cat([torch.cat([wp, wn], dim=1), torch.cat([wn, wp], dim=1)])
            else:
                split = torch.cat([wp, wn])
            self._cache[key] = split.contiguous()
        return self._cache[key]

    def thresholds(self, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per output channel, in ``sum_dtype``: ``P > t_hi`` or ``N < t_lo`` marks a candidate.

        ``t_hi <= hi - max(b, 0)`` and ``t_lo >= lo - min(b, 0)`` (rounded toward the safe
        side), so an output with ``P <= t_hi`` and ``N >= t_lo`` cannot overflow.
        """
        key = ("thresholds", bits)
        if key not in self._cache:
            lo, hi = accumulator_range(bits)
            t_hi = [
                _round_toward(hi - max(b, 0), self.sum_dtype, down=True) for b in self.bias.tolist()
            ]
            t_lo = [
                _round_toward(lo - min(b, 0), self.sum_dtype, down=False)
                for b in self.bias.tolist()
            ]
            shape = (-1, 1, 1) if self.kind == "conv" else (-1,)
            self._cache[key] = (
                torch.tensor(t_hi, dtype=self.sum_dtype).reshape(shape),
                torch.tensor(t_lo, dtype=self.sum_dtype).reshape(shape),
            )
        return self._cache[key]


def _round_toward(value: int, dtype: torch.dtype, down: bool) -> float:
    """``value`` as a float of ``dtype``, rounded down (or up) so that the float is <= (>=)
    the exact integer."""
    kind = np.float32 if dtype == torch.float32 else np.float64
    f = kind(value)
    if down and int(f) > value:
        f = np.nextafter(f, kind(-np.inf))
    if not down and int(f) < value:
        f = np.nextafter(f, kind(np.inf))
    return float(f)


@dataclass
class QuantizedNet:
    """A network quantized by :func:`quantize` for the integer engine.

    Attributes:
        layers: the :class:`QuantLayer` in order.
        input_scale: real value of one step of the int8 input.
        input_shape: shape of one image, ``(1, 28, 28)``.
        normalize: maps uint8 images (N, H, W) to the float model's input (N, 1, H, W).
    """

    layers: list[QuantLayer]
    input_scale: float
    input_shape: tuple[int, ...]
    normalize: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def ops(self) -> list[LayerOps]:
        """Operation counts per image of every layer."""
        return [layer.ops() for layer in self.layers]

    def quantize_input(self, images: torch.Tensor) -> torch.Tensor:
        """int8 input ``clamp(round(normalize(images) / input_scale), -128, 127)``.

        Args:
            images: uint8 tensor (N, H, W) or (N, 1, H, W), pixels 0..255.

        Returns:
            int64 tensor (N, 1, H, W) with values in [-128, 127].
        """
        x = self.normalize(images).to(torch.float64)
        return torch.round(x / self.input_scale).clamp(-128, 127).to(torch.int64)

    def bits_per_layer(self, bits: int | Mapping[str, int], name: str = "bits") -> dict[str, int]:
        """Validate ``bits`` (one int for all layers, or a dict layer name -> int) -> dict."""
        names = self.layer_names
        if isinstance(bits, Mapping):
            missing = [n for n in names if n not in bits]
            unknown = [k for k in bits if k not in names]
            if missing or unknown:
                raise ValueError(
                    f"{name}: got a dict with keys {sorted(map(str, bits))}, expected exactly "
                    f"the layer names {names} (missing {missing}, unknown {unknown})"
                )
            return {n: check_bits(f"{name}[{n!r}]", bits[n]) for n in names}
        if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
            raise TypeError(
                f"{name}: got {describe(bits)}, expected an int or a dict layer name -> int"
            )
        b = check_bits(name, bits)
        return dict.fromkeys(names, b)


_SUPPORTED = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)
_SUPPORTED_TEXT = "Conv2d, Linear, ReLU, MaxPool2d, Flatten (and Dropout/Identity, inactive)"


def _compute_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's Conv2d and Linear modules; TypeError on any unsupported module."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: got {describe(model)}, expected a torch.nn.Module")
    found = []
    for name, module in model.named_modules():
        if len(list(module.children())) > 0:
            continue  # a container: its leaves are checked
        if not isinstance(module, _SUPPORTED):
            raise TypeError(
                f"model: layer {name!r} is {type(module).__name__}, which the integer engine "
                f"does not support; expected only {_SUPPORTED_TEXT}"
            )
        if isinstance(module, nn.Conv2d):
            ok = (
                module.groups == 1
                and tuple(module.dilation) == (1, 1)
                and module.padding_mode == "zeros"
                and not isinstance(module.padding, str)
                and len(set(module.stride)) == 1
                and len(set(module.padding)) == 1
            )
            if not ok:
                raise TypeError(
                    f"model: layer {name!r} is {module}, expected a Conv2d with groups=1, "
                    "dilation 1, equal integer stride and zero padding in both directions"
                )
        if isinstance(module, nn.Conv2d | nn.Linear):
            found.append((name, module))
    if not found:
        raise TypeError("model: has no Conv2d or Linear layer, expected at least one")
    return found


def _glue(out: torch.Tensor, nxt: torch.Tensor) -> tuple[int, bool] | None:
    """Which of ReLU, ReLU + max-pool(k), each optionally flattened, maps ``out`` to
    ``nxt`` exactly: ``(pool, flatten)`` or None."""
    act = F.relu(out)
    for pool in (0, 2, 3, 4):
        if pool:
            if act.ndim != 4 or min(act.shape[2:]) < pool:
                continue
            y = F.max_pool2d(act, pool)
        else:
            y = act
        for flat in (False, True):
            z = y.flatten(1) if flat else y
            if z.shape == nxt.shape and torch.equal(z, nxt):
                return pool, flat
    return None


@torch.no_grad()
def quantize(
    model: nn.Module,
    calibration_images: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> QuantizedNet:
    """Post-training int8 quantization of a feed-forward ReLU network (see the module doc).

    The structure is read from the model: its Conv2d / Linear modules, in the order the
    forward pass calls them (forward hooks on the calibration batch), and between two of
    them ReLU, optionally a max-pool with kernel = stride, optionally a flatten -- found by
    checking which of these maps one layer's output exactly onto the next layer's input.
    The last layer's output must be the model's output (the logits, no ReLU).

    Args:
        model: e.g. ``models.load_trained("lenet")`` (run in eval mode, mode restored).
        calibration_images: uint8 tensor (N, H, W) (N >= 1), e.g. training images; they set
            the input scale and the activation scales (maxima after each ReLU).
        normalize: uint8 images -> float model input (N, 1, H, W); default
            :func:`dnnkernels.data.normalize`.

    Returns:
        :class:`QuantizedNet`.

    Raises:
        TypeError: a module the engine does not support (e.g. BatchNorm2d, Sigmoid).
        ValueError: layers connected by anything but ReLU / max-pool / flatten, or a
            hidden layer without ReLU.
    """
    layers = _compute_layers(model)
    check_tensor("calibration_images", calibration_images, ndim=(3, 4), dtypes=(torch.uint8,))
    if len(calibration_images) == 0:
        raise ValueError("calibration_images: got 0 images, expected at least 1")
    if normalize is None:
        from dnnkernels.data import normalize
    x = normalize(calibration_images)
    records: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    names = {id(m): n for n, m in layers}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: records.append((names[id(mod)], inp[0], out)))
        for _, m in layers
    ]
    was_training = model.training
    model.eval()
    try:
        logits = model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    order = [r[0] for r in records]
    if sorted(order) != sorted(n for n, _ in layers):
        raise ValueError(
            f"model: its forward called the layers {order}, expected each of "
            f"{[n for n, _ in layers]} exactly once"
        )
    if not torch.equal(records[-1][2], logits):
        raise ValueError(
            f"model: its output is not the output of its last layer {order[-1]!r}; "
            "expected logits = last Linear/Conv2d layer, without activation"
        )
    first_in = records[0][1]
    if torch.equal(first_in, x):
        flatten_first = False
    elif torch.equal(first_in, x.flatten(1)):
        flatten_first = True
    else:
        raise ValueError(
            f"model: the input reaches its first layer {order[0]!r} through operations other "
            "than flatten; expected the normalised image (or its flattening)"
        )
    modules = dict(layers)
    in_scale = float(x.abs().max()) / 127 or 1.0
    input_scale = in_scale
    quantized = []
    flatten_in = flatten_first
    for i, (name, inp, out) in enumerate(records):
        module = modules[name]
        last = i == len(records) - 1
        pool, flatten_next = 0, False
        if not last:
            glue = _glue(out, records[i + 1][1])
            if glue is None:
                raise ValueError(
                    f"model: the output of {name!r} reaches {records[i + 1][0]!r} through "
                    "operations other than ReLU, max-pool and flatten (or without a ReLU); "
                    "expected ReLU, then optionally MaxPool2d(k) and flatten"
                )
            pool, flatten_next = glue
        w = module.weight.detach().to(torch.float64)
        w_scale = float(w.abs().max()) / 127 or 1.0
        qw = torch.round(w / w_scale).to(torch.int64)
        acc_scale = in_scale * w_scale
        b = module.bias
        qb = (
            torch.zeros(qw.shape[0], dtype=torch.int64)
            if b is None
            else torch.round(b.detach().to(torch.float64) / acc_scale).to(torch.int64)
        )
        if bool((qb.abs() > 2**31 - 1).any()):
            raise ValueError(f"model: the bias of {name!r} does not fit int32 once quantized")
        if last:
            out_scale = None
            out_shape = tuple(out.shape[1:])
        else:
            nxt = records[i + 1][1]
            out_scale = float(nxt.max()) / 255 or 1.0
            out_shape = tuple(F.max_pool2d(out, pool).shape[1:] if pool else out.shape[1:])
        if isinstance(module, nn.Conv2d):
            kind, stride, padding = "conv", int(module.stride[0]), int(module.padding[0])
        else:
            kind, stride, padding = "linear", 1, 0
        in_shape = tuple(inp.shape[1:])
        quantized.append(
            QuantLayer(
                name=name,
                kind=kind,
                weight=qw,
                bias=qb,
                stride=stride,
                padding=padding,
                in_shape=in_shape,
                out_shape=out_shape,
                flatten_input=flatten_in,
                signed_input=i == 0,
                pool=pool,
                in_scale=in_scale,
                weight_scale=w_scale,
                out_scale=out_scale,
            )
        )
        flatten_in = flatten_next
        in_scale = out_scale if out_scale is not None else in_scale
    return QuantizedNet(quantized, input_scale, tuple(x.shape[1:]), normalize)


def requantize(acc: torch.Tensor, multiplier: float) -> torch.Tensor:
    """uint8 activation from accumulator values: ``clamp(round(acc * multiplier), 0, 255)``.

    ``acc`` (int64, any shape) is converted to float64 and multiplied by the float64
    ``multiplier``; ``round`` is round-half-to-even; the clamp at 0 is the ReLU.

    Returns:
        float64 tensor of the shape of ``acc`` holding integers in [0, 255].
    """
    out = acc.to(torch.float64) * multiplier
    return out.round_().clamp_(0, 255)


# ================================================================= the integer engine


@dataclass
class IntegerOutput:
    """Result of :func:`integer_forward` on N images.

    Attributes:
        logits: int64 tensor (N, classes), the output layer's accumulator values.
        overflows: layer name -> int64 tensor (N,), outputs of that layer whose
            accumulation overflowed (at least one addition left the range), per image.
    """

    logits: torch.Tensor
    overflows: dict[str, torch.Tensor]


def _exact_conv_ok(
    x: torch.Tensor, w: torch.Tensor, stride: Sequence[int], padding: Sequence[int], groups: int
) -> bool:
    """True when ``F.conv2d`` would run a direct (or im2col + GEMM) algorithm, which is exact
    on integers whose partial sums are representable; False for Winograd / FFT-style
    backends (NNPACK, ...) and for reduced-precision float32 settings."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    conv_precision = getattr(getattr(torch.backends.mkldnn, "conv", None), "fp32_precision", "")
    if conv_precision not in ("", "none", "ieee"):
        return False
    try:
        backend = torch._C._select_conv_backend(
            x, w, None, list(stride), list(padding), [1, 1], False, [0, 0], groups, None
        )
    except Exception:  # private API: if it changes, use the explicit GEMM
        return False
    return str(backend).rsplit(".", 1)[-1] in ("Mkldnn", "Slow2d")


def _exact_conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d(x, w, stride=stride, padding=padding, groups=groups)``, exact for
    integer-valued float tensors whose partial sums are representable.

    A direct algorithm (oneDNN's direct convolution or torch's im2col + GEMM) adds exact
    integers in some order, which is exact; Winograd or FFT algorithms (NNPACK) would not
    be. So: NNPACK disabled, float32 convolutions go to ``F.conv2d`` only when torch selects
    such a backend, and otherwise (and for float64) an explicit im2col + GEMM is used.
    """
    with torch.backends.nnpack.flags(enabled=False):
        if x.dtype == torch.float32 and _exact_conv_ok(x, w, stride, padding, groups):
            return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)
    kh, kw = w.shape[2:]
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, L)
    ho = (x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1
    wo = (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1
    cols = cols.reshape(len(x), groups, -1, cols.shape[-1])
    out = torch.einsum("ngki,gjk->ngji", cols, w.reshape(groups, w.shape[0] // groups, -1))
    return out.reshape(len(x), w.shape[0], ho, wo)


def _signed_sums(layer: QuantLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of the positive and of the negative products of every output (bias excluded).

    Args:
        x: the layer input, float (N, C, H, W) or (N, I), integer values.

    Returns:
        ``(P, N)``, each (N, O, H', W') or (N, O) in ``layer.sum_dtype``, exact.
    """
    dtype = layer.sum_dtype
    x = x.to(dtype)
    if layer.signed_input:
        x = torch.cat([x.clamp(min=0), x.clamp(max=0)], dim=1)
    w = layer.split_weight()
    o = layer.out_channels
    if layer.kind == "linear":
        pn = x @ w.T
    else:
        pn = _exact_conv(x, w, (layer.stride,) * 2, (layer.padding,) * 2)
    return pn[:, :o], pn[:, o:]


class _Patches:
    """The products of any output of one layer, on demand, in canonical order.

    Outputs are addressed by their flat index ``lin`` into the layer's output tensor
    (N, O, H', W') or (N, O). The patch matrix (im2col, float32, one row per image and
    output position, columns in ``(c, u, v)`` order) is built once per layer and batch.
    """

    def __init__(self, layer: QuantLayer, x: torch.Tensor) -> None:
        self.layer = layer
        self.out_channels = layer.out_channels
        self.weight = layer.weight.reshape(layer.out_channels, -1).to(torch.float32)
        x = x.to(torch.float32)
        if layer.kind == "conv":
            kh, kw = layer.weight.shape[2:]
            p, s = layer.padding, layer.stride
            windows = F.pad(x, (p, p, p, p)).unfold(2, kh, s).unfold(3, kw, s)  # N,C,H',W',kh,kw
            self.positions = windows.shape[2] * windows.shape[3]
            self.rows = windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, self.weight.shape[1])
        else:
            self.positions = 1
            self.rows = x

    def split(self, lin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(n, o, r)``: image, output channel and patch row of the flat output indices."""
        per_image = self.out_channels * self.positions
        n, rest = lin // per_image, lin % per_image
        o, position = rest // self.positions, rest % self.positions
        return n, o, n * self.positions + position

    def products(self, o: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """float32 (M, K): patch row ``r`` times weight row ``o``, exact (8-bit values)."""
        return self.rows.index_select(0, r).mul_(self.weight.index_select(0, o))

    def with_bias(self, products: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """int64 (M, K + 1): the products then the bias, the terms of the accumulation."""
        out = torch.empty(products.shape[0], products.shape[1] + 1, dtype=torch.int64)
        out[:, :-1] = products
        out[:, -1] = self.layer.bias[o]
        return out


#: blocks of a fully connected layer's inputs for the block bounds
_LINEAR_BLOCKS = 8


def _block_bounds(layer: QuantLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Tighter bounds of the prefix sums of every output (bias excluded), or None.

    The K products are cut into G consecutive blocks of the canonical order (the input
    channels of a convolution with several, the kernel rows of one with a single input
    channel, ``_LINEAR_BLOCKS`` slices of a linear layer's inputs). With
    the exact block sums ``S_g`` and the sums of their positive / negative products
    ``P_g`` / ``N_g``, every prefix sum inside block g lies in
    ``[S_1 + ... + S_{g-1} + N_g, S_1 + ... + S_{g-1} + P_g]``.

    Returns:
        ``(upper, lower)`` of the output's shape in ``layer.sum_dtype`` (exact), or None
        when the layer has a single block. Costs about two more passes of the layer's
        convolution or matrix product, so it is used only when many outputs are candidates.
    """
    dtype, o = layer.sum_dtype, layer.out_channels
    x = x.to(dtype)
    w = layer.weight.to(dtype)
    if layer.kind == "conv":
        c, kh, kw = w.shape[1:]
        st, p = layer.stride, layer.padding
        if c >= 2:  # blocks = input channels: a grouped convolution, one group per channel
            groups, xb, wb = c, x, w
            stride, padding = (st, st), (p, p)
        else:  # blocks = kernel rows (c, u): input rows shifted by u, kernels 1 x kw
            padded = F.pad(x, (p, p, p, p))
            ho = layer.conv_out_size[0]
            rows = [padded[:, :, u : u + st * (ho - 1) + 1 : st] for u in range(kh)]
            groups, xb = c * kh, torch.stack(rows, dim=2).flatten(1, 2)  # (N, C*kh, H', Wp)
            wb = w.reshape(o, c * kh, 1, kw)
            stride, padding = (1, st), (0, 0)
        if groups < 2:
            return None
        wp, wn = wb.clamp(min=0), wb.clamp(max=0)  # (O, G, bh, bw)
        if layer.signed_input:  # inputs of group g interleaved [x+_g, x-_g]
            xb = torch.stack([xb.clamp(min=0), xb.clamp(max=0)], dim=2).flatten(1, 2)
            top, bottom = torch.stack([wp, wn], dim=2), torch.stack([wn, wp], dim=2)
        else:
            top, bottom = wp.unsqueeze(2), wn.unsqueeze(2)
        # group g computes [P of (o, g) for every o, N of (o, g) for every o]
        blocks = torch.cat([top, bottom]).transpose(0, 1).flatten(0, 1)  # (G*2O, 1|2, bh, bw)
        out = _exact_conv(xb, blocks, stride, padding, groups)
        out = out.reshape(len(x), groups, 2, o, *layer.conv_out_size)
    else:
        k = w.shape[1]
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        size = -(-k // _LINEAR_BLOCKS)
        groups = -(-k // size)
        if groups < 2:
            return None
        pad = groups * size - k
        xb = F.pad(x, (0, pad)).reshape(len(x), groups, size)
        wpb = F.pad(wp, (0, pad)).reshape(o, groups, size)
        wnb = F.pad(wn, (0, pad)).reshape(o, groups, size)
        if layer.signed_input:
            xb = torch.cat([xb.clamp(min=0), xb.clamp(max=0)], dim=2)
            wpb, wnb = torch.cat([wpb, wnb], dim=2), torch.cat([wnb, wpb], dim=2)
        weights = torch.cat([wpb, wnb]).permute(1, 2, 0)  # (G, size, 2O)
        out = torch.bmm(xb.transpose(0, 1), weights)  # (G, N, 2O)
        out = out.transpose(0, 1).reshape(len(x), groups, 2, o)
    pos, neg = out[:, :, 0], out[:, :, 1]
    total = pos + neg
    before = total.cumsum(dim=1) - total  # exact sum of the earlier blocks
    return (before + pos).amax(dim=1), (before + neg).amin(dim=1)


#: products gathered per chunk of candidate outputs (int64 elements), bounds memory
_CHUNK_ELEMENTS = 2**18


def _layer_fast(
    layer: QuantLayer,
    x: torch.Tensor,
    bits: int,
    mode: str,
    observer: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer, vectorized.

    Args:
        x: float (N, C, H, W) or (N, I) holding the integer input.

    Returns:
        the next layer's input (float32 holding uint8 values, pooled) -- or, for the output
        layer, the logits (int64 (N, O)) -- and the overflowed outputs per image (int64 (N,)).
    """
    n = x.shape[0]
    pos, neg = _signed_sums(layer, x)
    if observer is not None:
        observer(layer, x, pos, neg)
    t_hi, t_lo = layer.thresholds(bits)
    mask = pos > t_hi
    mask |= neg < t_lo
    shape = (1, -1, 1, 1) if layer.kind == "conv" else (1, -1)
    bias = layer.bias.reshape(shape)
    pos += neg  # exact: integers below 2**24 (float32) or 2**53 (float64)
    if layer.out_scale is None:
        acc = pos.to(torch.int64) + bias
    else:
        acc = pos.to(torch.float64).add_(bias)  # exact integers below 2**53
    lo, hi = accumulator_range(bits)
    if int(mask.sum()) * layer.fan_in > 8 * mask.numel():  # many candidates: refine them
        bounds = _block_bounds(layer, x)
        if bounds is not None:  # keep candidates whose block bounds or final value may leave
            upper, lower = bounds
            s_hi = _round_toward(hi, layer.sum_dtype, down=True)
            s_lo = _round_toward(lo, layer.sum_dtype, down=False)
            mask &= (upper > s_hi) | (lower < s_lo) | (acc > hi) | (acc < lo)
    candidates = mask.reshape(-1).nonzero().squeeze(1)  # only these outputs can overflow
    overflows = torch.zeros(n, dtype=torch.int64)
    if len(candidates):
        patches = _Patches(layer, x)
        flat = acc.reshape(-1)
        chunk = max(1, _CHUNK_ELEMENTS // (layer.fan_in + 1))
        for start in range(0, len(candidates), chunk):
            lin = candidates[start : start + chunk]
            img, o, r = patches.split(lin)
            terms = patches.with_bias(patches.products(o, r), o)
            sums, over = accumulate(terms, bits, mode)
            flat[lin] = sums.to(acc.dtype)
            overflows += torch.bincount(img[over], minlength=n)
    if layer.out_scale is None:
        return acc, overflows
    if layer.pool:  # max-pool commutes with the monotone requantization: pool first
        acc = F.max_pool2d(acc, layer.pool)
    return requantize(acc, layer.multiplier).to(torch.float32), overflows


def _forward_fast(
    qnet: QuantizedNet,
    q_input: torch.Tensor,
    bits: Mapping[str, int],
    mode: str,
    observer: Callable | None = None,
) -> IntegerOutput:
    x = q_input.to(torch.float32)
    overflows = {}
    for layer in qnet.layers:
        if layer.flatten_input:
            x = x.flatten(1)
        x, overflows[layer.name] = _layer_fast(layer, x, bits[layer.name], mode, observer)
    return IntegerOutput(x, overflows)


def _forward_loop(
    qnet: QuantizedNet,
    q_input: torch.Tensor,
    bits: Mapping[str, int],
    mode: str,
    record: dict[str, list] | None = None,
) -> IntegerOutput:
    """The readable definition: Python loops, one accumulator addition at a time.

    ``record`` (optional): layer name -> [min, max] of every value the accumulator takes
    after an addition (all partial sums), updated in place.
    """
    logits, overflows = [], {layer.name: [] for layer in qnet.layers}
    for image in q_input.tolist():  # image: nested lists [C][H][W] of ints
        act = image
        for layer in qnet.layers:
            lo, hi = accumulator_range(bits[layer.name])
            seen = None if record is None else record.setdefault(layer.name, [math.inf, -math.inf])
            weight, bias = layer.weight.tolist(), layer.bias.tolist()
            if layer.flatten_input:
                act = [v for channel in act for row in channel for v in row]
            if layer.kind == "conv":
                out, count = _conv_loop(act, weight, bias, layer, lo, hi, mode, seen)
            else:
                out, count = _linear_loop(act, weight, bias, lo, hi, mode, seen)
            overflows[layer.name].append(count)
            if layer.out_scale is None:
                act = out
                break
            act = _requantize_loop(out, layer.multiplier)
            if layer.pool:
                act = _max_pool_loop(act, layer.pool)
        logits.append(act)
    return IntegerOutput(
        torch.tensor(logits, dtype=torch.int64),
        {k: torch.tensor(v, dtype=torch.int64) for k, v in overflows.items()},
    )


def _conv_loop(act, weight, bias, layer, lo, hi, mode, seen):
    channels, height, width = len(act), len(act[0]), len(act[0][0])
    kh, kw = len(weight[0][0]), len(weight[0][0][0])
    s, p = layer.stride, layer.padding
    ho, wo = layer.conv_out_size
    out, count = [], 0
    for o in range(len(weight)):
        plane = []
        for i in range(ho):
            row = []
            for j in range(wo):
                acc, overflowed = 0, False
                for c in range(channels):
                    for u in range(kh):
                        for v in range(kw):
                            y, z = i * s + u - p, j * s + v - p
                            inside = 0 <= y < height and 0 <= z < width
                            a = act[c][y][z] if inside else 0  # zero padding
                            acc, flag = _add(acc, a * weight[o][c][u][v], lo, hi, mode)
                            overflowed |= flag
                            if seen is not None:
                                seen[0], seen[1] = min(seen[0], acc), max(seen[1], acc)
                acc, flag = _add(acc, bias[o], lo, hi, mode)
                overflowed |= flag
                if seen is not None:
                    seen[0], seen[1] = min(seen[0], acc), max(seen[1], acc)
                count += overflowed
                row.append(acc)
            plane.append(row)
        out.append(plane)
    return out, count


def _linear_loop(act, weight, bias, lo, hi, mode, seen):
    out, count = [], 0
    for o in range(len(weight)):
        acc, overflowed = 0, False
        for k in range(len(act)):
            acc, flag = _add(acc, act[k] * weight[o][k], lo, hi, mode)
            overflowed |= flag
            if seen is not None:
                seen[0], seen[1] = min(seen[0], acc), max(seen[1], acc)
        acc, flag = _add(acc, bias[o], lo, hi, mode)
        overflowed |= flag
        if seen is not None:
            seen[0], seen[1] = min(seen[0], acc), max(seen[1], acc)
        count += overflowed
        out.append(acc)
    return out, count


def _requantize_loop(values, multiplier):
    if isinstance(values, list):
        return [_requantize_loop(v, multiplier) for v in values]
    # same arithmetic as requantize(): float64 product, round half to even, clamp
    return min(max(round(float(values) * multiplier), 0), 255)


def _max_pool_loop(act, k):
    pooled = []
    for plane in act:
        rows = []
        for i in range(len(plane) // k):
            row = []
            for j in range(len(plane[0]) // k):
                row.append(max(plane[i * k + u][j * k + v] for u in range(k) for v in range(k)))
            rows.append(row)
        pooled.append(rows)
    return pooled


def _check_qnet(qnet: object) -> QuantizedNet:
    if not isinstance(qnet, QuantizedNet):
        raise TypeError(
            f"qnet: got {describe(qnet)}, expected a QuantizedNet (use bitwidth.quantize)"
        )
    return qnet


def _check_images(qnet: QuantizedNet, images: object, name: str = "images") -> torch.Tensor:
    check_tensor(name, images, ndim=(3, 4), dtypes=(torch.uint8,))
    shape = tuple(images.shape[-2:])
    if shape != tuple(qnet.input_shape[-2:]) or (images.ndim == 4 and images.shape[1] != 1):
        raise ValueError(
            f"{name}: got {describe(images)}, expected (N, {qnet.input_shape[-2]}, "
            f"{qnet.input_shape[-1]}) or (N, 1, {qnet.input_shape[-2]}, {qnet.input_shape[-1]})"
        )
    return images


def integer_forward(
    qnet: QuantizedNet,
    images: torch.Tensor,
    bits: int | Mapping[str, int] = 32,
    mode: str = "saturate",
    method: str = "fast",
) -> IntegerOutput:
    """Integer inference with a ``bits``-wide accumulator in every layer.

    The input is quantized by ``qnet.quantize_input``; each layer accumulates its products
    and bias in the canonical order (module doc) in ``bits[layer]`` bits with ``mode``,
    requantizes to uint8 (ReLU) and max-pools; the last layer's accumulators are the logits.

    Args:
        qnet: from :func:`quantize`.
        images: uint8 tensor (N, 28, 28) or (N, 1, 28, 28).
        bits: one int in [2, 64] for every layer, or a dict layer name -> int.
        mode: ``"saturate"`` or ``"wrap"``.
        method: ``"fast"`` (vectorized, default) or ``"loop"`` (naive, ~1 s per image).

    Returns:
        :class:`IntegerOutput` (logits int64 (N, classes), overflow counts per layer).
    """
    qnet = _check_qnet(qnet)
    images = _check_images(qnet, images)
    per_layer = qnet.bits_per_layer(bits)
    check_choice("mode", mode, MODES)
    check_choice("method", method, METHODS)
    q_input = qnet.quantize_input(images)
    if method == "loop":
        return _forward_loop(qnet, q_input, per_layer, mode)
    return _forward_fast(qnet, q_input, per_layer, mode)


@torch.no_grad()
def reference_logits(qnet: QuantizedNet, images: torch.Tensor) -> torch.Tensor:
    """Direct integer reference (no accumulator limit): ``F.conv2d`` / ``F.linear`` in
    float64 on the integer values (exact: every sum is an integer below 2**53), the same
    requantization (:func:`requantize`) and ``F.max_pool2d``.

    Returns:
        int64 tensor (N, classes), equal to ``integer_forward(..., bits=b).logits`` whenever
        no accumulation overflows b bits.
    """
    qnet = _check_qnet(qnet)
    x = qnet.quantize_input(_check_images(qnet, images)).to(torch.float64)
    for layer in qnet.layers:
        w = layer.weight.to(torch.float64)
        b = layer.bias.to(torch.float64)
        if layer.flatten_input:
            x = x.flatten(1)
        if layer.kind == "conv":
            acc = F.conv2d(x, w, b, stride=layer.stride, padding=layer.padding)
        else:
            acc = F.linear(x, w, b)
        acc = acc.to(torch.int64)
        if layer.out_scale is None:
            return acc
        x = requantize(acc, layer.multiplier)
        if layer.pool:
            x = F.max_pool2d(x, layer.pool)
    return x.to(torch.int64)


@dataclass
class Evaluation:
    """Accuracy and overflow statistics of the integer engine on a labelled data set.

    Attributes:
        accuracy: percent of images whose largest logit is the label (ties: first index).
        images: number of images.
        bits: layer name -> accumulator width. mode: the overflow mode.
        overflow_outputs: layer name -> accumulations that overflowed (all images).
        overflow_images: layer name -> images with at least one overflow in that layer.
        outputs: layer name -> accumulations performed (all images).
        seconds: wall-clock time of the run.
    """

    accuracy: float
    images: int
    bits: dict[str, int]
    mode: str
    overflow_outputs: dict[str, int]
    overflow_images: dict[str, int]
    outputs: dict[str, int]
    seconds: float


def evaluate(
    qnet: QuantizedNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    bits: int | Mapping[str, int] = 32,
    mode: str = "saturate",
    method: str = "fast",
    batch_size: int = 128,
    progress: bool = False,
) -> Evaluation:
    """Accuracy and overflow counts of :func:`integer_forward` over a data set, in batches.

    Args:
        qnet: from :func:`quantize`.
        images: uint8 tensor (N, 28, 28); labels: int64 tensor (N,).
        bits, mode, method: as in :func:`integer_forward`.
        batch_size: images per batch (128: the working set stays in the CPU caches).
        progress: show a tqdm bar.

    Returns:
        :class:`Evaluation`.
    """
    qnet = _check_qnet(qnet)
    images = _check_images(qnet, images)
    check_tensor("labels", labels, ndim=1, dtypes=(torch.int64,))
    if len(labels) != len(images):
        raise ValueError(f"labels: got {len(labels)} labels, expected {len(images)} (one/image)")
    per_layer = qnet.bits_per_layer(bits)
    check_choice("mode", mode, MODES)
    check_choice("method", method, METHODS)
    check_int("batch_size", batch_size, low=1)
    start = time.perf_counter()
    correct = 0
    ovf_out = dict.fromkeys(qnet.layer_names, 0)
    ovf_img = dict.fromkeys(qnet.layer_names, 0)
    batches = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"{mode} {_bits_label(per_layer)}", unit="batch")
    for s in batches:
        out = integer_forward(qnet, images[s : s + batch_size], per_layer, mode, method)
        correct += int((out.logits.argmax(dim=1) == labels[s : s + batch_size]).sum())
        for name, counts in out.overflows.items():
            ovf_out[name] += int(counts.sum())
            ovf_img[name] += int((counts > 0).sum())
    outputs = {op.name: op.n_outputs * len(images) for op in qnet.ops()}
    return Evaluation(
        accuracy=100.0 * correct / max(len(images), 1),
        images=len(images),
        bits=per_layer,
        mode=mode,
        overflow_outputs=ovf_out,
        overflow_images=ovf_img,
        outputs=outputs,
        seconds=time.perf_counter() - start,
    )


def _bits_label(bits: Mapping[str, int]) -> str:
    values = set(bits.values())
    return f"{values.pop()} bits" if len(values) == 1 else "/".join(map(str, bits.values()))


# ============================================================= partial-sum statistics


class _IntHistogram:
    """Counts of integer values, exact (bins of width 1) while the span allows, then in
    power-of-two bins (``value >> shift``) so memory stays below ``2**max_log2`` counters."""

    def __init__(self, max_log2: int = 22) -> None:
        self.shift = 0
        self.offset = 0  # bin index of counts[0]
        self.counts = torch.zeros(0, dtype=torch.int64)
        self.max_len = 2**max_log2

    def add(self, values: torch.Tensor) -> None:
        values = values.reshape(-1)
        if values.numel() == 0:
            return
        lo, hi = int(values.min()), int(values.max())
        first = min(lo >> self.shift, self.offset) if len(self.counts) else lo >> self.shift
        last = max(hi >> self.shift, self.offset + len(self.counts) - 1)
        while last - first + 1 > self.max_len:  # coarsen by a factor 2
            self._coarsen()
            first, last = first >> 1, last >> 1
        self._cover(first, last)
        idx = (values >> self.shift) - self.offset
        self.counts += torch.bincount(idx, minlength=len(self.counts))

    def _cover(self, first: int, last: int) -> None:
        if not len(self.counts):
            self.offset, self.counts = first, torch.zeros(last - first + 1, dtype=torch.int64)
            return
        before = self.offset - first
        after = last - (self.offset + len(self.counts) - 1)
        if before > 0 or after > 0:
            self.counts = F.pad(self.counts, (max(before, 0), max(after, 0)))
            self.offset = min(self.offset, first)

    def _coarsen(self) -> None:
        if self.offset % 2:  # align so that pairs (2j, 2j+1) merge
            self.counts = F.pad(self.counts, (1, 0))
            self.offset -= 1
        if len(self.counts) % 2:
            self.counts = F.pad(self.counts, (0, 1))
        self.counts = self.counts.reshape(-1, 2).sum(dim=1)
        self.offset //= 2
        self.shift += 1

    def edges_and_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin edges (len + 1) in value units and counts; bin j holds
        ``[edges[j], edges[j+1])``."""
        width = 2**self.shift
        edges = (self.offset + np.arange(len(self.counts) + 1)) * width
        return edges.astype(np.float64), self.counts.numpy().copy()


@dataclass
class PartialSumStats:
    """Accumulator values of one layer over a data set (exact arithmetic, no overflow).

    Attributes:
        name: layer name.
        prefix_min, prefix_max: smallest / largest partial sum over all accumulations and
            all additions in canonical order (every prefix sum, bias included).
        final_min, final_max: range of the final accumulator values (the layer's outputs
            before requantization, bias included).
        min_bits: ``min_bits(prefix_min, prefix_max)``, the smallest width that never
            overflows on this data set.
        final_bits: ``min_bits(final_min, final_max)``.
        accumulations: number of accumulations (outputs) seen.
        hist_edges, hist_counts: histogram of the final accumulator values (exact integer
            bins while the span is below 2**22, then power-of-two bins).
    """

    name: str
    prefix_min: int
    prefix_max: int
    final_min: int
    final_max: int
    min_bits: int
    final_bits: int
    accumulations: int
    hist_edges: np.ndarray = field(repr=False)
    hist_counts: np.ndarray = field(repr=False)


class _RangeObserver:
    """Collects, per layer, the exact range of all prefix sums and the final values.

    A prefix sum of an output lies in ``[N, P]`` (sums of its negative / positive terms,
    bias included), so only outputs with ``P`` above the largest value seen so far (or
    ``N`` below the smallest) can hold a new extreme: only their products are gathered and
    cumsummed.
    """

    def __init__(self) -> None:
        self.lo: dict[str, int] = {}
        self.hi: dict[str, int] = {}
        self.final_lo: dict[str, int] = {}
        self.final_hi: dict[str, int] = {}
        self.count: dict[str, int] = {}
        self.hist: dict[str, _IntHistogram] = {}
        self.gathered = 0

    def __call__(self, layer: QuantLayer, x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
        name = layer.name
        shape = (1, -1, 1, 1) if layer.kind == "conv" else (1, -1)
        bias = layer.bias.reshape(shape)
        acc = (pos + neg).to(torch.int64) + bias
        f_lo, f_hi = int(acc.min()), int(acc.max())
        self.final_lo[name] = min(self.final_lo.get(name, f_lo), f_lo)
        self.final_hi[name] = max(self.final_hi.get(name, f_hi), f_hi)
        self.count[name] = self.count.get(name, 0) + acc.numel()
        self.hist.setdefault(name, _IntHistogram()).add(acc)
        lo = min(self.lo.get(name, f_lo), f_lo)
        hi = max(self.hi.get(name, f_hi), f_hi)
        p_all = pos.to(torch.int64) + bias.clamp(min=0)
        n_all = neg.to(torch.int64) + bias.clamp(max=0)
        mask = (p_all > hi) | (n_all < lo)
        if int(mask.sum()) * layer.fan_in > 8 * mask.numel():
            bounds = _block_bounds(layer, x)
            if bounds is not None:  # the final values are already in [lo, hi]
                mask &= (bounds[0].to(torch.int64) > hi) | (bounds[1].to(torch.int64) < lo)
        candidates = mask.reshape(-1).nonzero().squeeze(1)
        chunk = max(1, _CHUNK_ELEMENTS // (layer.fan_in + 1))
        patches = _Patches(layer, x) if len(candidates) else None
        for start in range(0, len(candidates), chunk):
            _, o, r = patches.split(candidates[start : start + chunk])
            terms = patches.with_bias(patches.products(o, r), o)
            prefix = torch.cumsum(terms, dim=1)
            lo, hi = min(lo, int(prefix.min())), max(hi, int(prefix.max()))
            self.gathered += len(o)
        self.lo[name], self.hi[name] = lo, hi


@torch.no_grad()
def partial_sum_stats(
    qnet: QuantizedNet,
    images: torch.Tensor,
    batch_size: int = 256,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, PartialSumStats]:
    """Per layer: exact range of all partial sums, range and histogram of final sums.

    Runs the exact network (64-bit accumulators: with 8-bit operands nothing overflows),
    so every layer sees the activations of the unconstrained integer network.

    Args:
        qnet: from :func:`quantize`.
        images: uint8 tensor (N, 28, 28).
        batch_size: images per batch.
        limit: use only the first ``limit`` images (None: all).
        progress: show a tqdm bar.

    Returns:
        dict layer name -> :class:`PartialSumStats`, in layer order.
    """
    qnet = _check_qnet(qnet)
    images = _check_images(qnet, images)
    check_int("batch_size", batch_size, low=1)
    if limit is not None:
        check_int("limit", limit, low=1)
        images = images[:limit]
    observer = _RangeObserver()
    exact = dict.fromkeys(qnet.layer_names, MAX_BITS)
    batches = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="partial sums", unit="batch")
    for s in batches:
        q_input = qnet.quantize_input(images[s : s + batch_size])
        _forward_fast(qnet, q_input, exact, "saturate", observer)
    stats = {}
    for name in qnet.layer_names:
        edges, counts = observer.hist[name].edges_and_counts()
        stats[name] = PartialSumStats(
            name=name,
            prefix_min=observer.lo[name],
            prefix_max=observer.hi[name],
            final_min=observer.final_lo[name],
            final_max=observer.final_hi[name],
            min_bits=min_bits(observer.lo[name], observer.hi[name]),
            final_bits=min_bits(observer.final_lo[name], observer.final_hi[name]),
            accumulations=observer.count[name],
            hist_edges=edges,
            hist_counts=counts,
        )
    return stats


# ============================================================================== energy


@dataclass
class NetworkEnergy:
    """Energy of one inference (one image).

    Attributes:
        units: ``sum_l layer_energy(N_mul, N_add, bits_mul, bits[l])`` (model units).
        pj: ``sum_l mul_energy_pj(bits_mul) * N_mul + add_energy_pj(bits[l]) * N_add``.
        per_layer_units, per_layer_pj: layer name -> the layer's share.
    """

    units: float
    pj: float
    per_layer_units: dict[str, float]
    per_layer_pj: dict[str, float]


def network_energy(
    ops: Sequence[LayerOps], bits: Mapping[str, int], bits_mul: int = 8
) -> NetworkEnergy:
    """Energy per image of the layers ``ops`` with accumulator widths ``bits`` (both models).

    ``B_mul = bits_mul`` (8: int8 x int8/uint8 operands) in every layer, ``B_add = bits[l]``.
    """
    units = {op.name: layer_energy(op.n_mul, op.n_add, bits_mul, bits[op.name]) for op in ops}
    pj = {
        op.name: mul_energy_pj(bits_mul) * op.n_mul + add_energy_pj(bits[op.name]) * op.n_add
        for op in ops
    }
    return NetworkEnergy(sum(units.values()), sum(pj.values()), units, pj)


# ============================================================================ searches


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


def _timed_median(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median wall-clock and median process CPU time (all threads) of ``repeats`` calls."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), result


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


def _pyplot():
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # a notebook keeps its inline backend
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_partial_sums(stats: Mapping[str, PartialSumStats], path: str | os.PathLike) -> Path:
    """Histogram of the final accumulator values of every layer (one panel each), with the
    observed range of all partial sums and the range of its ``min_bits`` marked."""
    plt = _pyplot()
    n = len(stats)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for ax, s in zip(axes[0], stats.values(), strict=True):
        edges, counts = s.hist_edges, s.hist_counts
        # regroup into at most 80 display bins
        group = max(1, math.ceil(len(counts) / 80))
        pad = (-len(counts)) % group
        counts_g = np.pad(counts, (0, pad)).reshape(-1, group).sum(axis=1)
        edges_g = np.append(edges[:-1:group], edges[-1] + pad * (edges[1] - edges[0]))
        ax.stairs(counts_g, edges_g, fill=True, color="tab:blue", alpha=0.7)
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_accuracy_sweep(
    sweep: Mapping[str, Mapping[int, Evaluation]],
    accuracy_32: float,
    tolerance: float,
    bits_a: int,
    bits_b: int,
    path: str | os.PathLike,
) -> Path:
    """Test accuracy against the uniform accumulator width, one line per mode."""
    plt = _pyplot()
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_energy(approaches: Sequence[Approach], path: str | os.PathLike) -> Path:
    """Energy per image of each approach, model units and pJ side by side."""
    plt = _pyplot()
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def write_table(
    approaches: Sequence[Approach],
    names: Sequence[str],
    accuracy_32: float,
    out: str | os.PathLike,
) -> dict[str, Path]:
    """The A/B/C table as ``approaches.md`` (markdown) and ``approaches.csv``."""
    out = Path(out)
    base = next((a for a in approaches if a.label == "32-bit"), approaches[0])
    header = [
        "approach",
        "mode",
        *names,
        "accuracy %",
        "delta pp",
        "energy (units)",
        "vs 32-bit",
        "energy (pJ)",
    ]
    rows = []
    for a in approaches:
        rows.append(
            [
                a.label,
                a.mode,
                *(a.bits[n] for n in names),
                f"{a.accuracy:.2f}",
                f"{a.accuracy - accuracy_32:+.2f}",
                f"{a.energy.units:.0f}",
                f"{a.energy.units / base.energy.units:.3f}",
                f"{a.energy.pj:.0f}",
            ]
        )
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    md.append("")
    md += [f"- {a.label}: {a.description}" for a in approaches]
    (out / "approaches.md").write_text("\n".join(md) + "\n")
    with open(out / "approaches.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return {"table_md": out / "approaches.md", "table_csv": out / "approaches.csv"}


def update_benchmarks(path: str | os.PathLike, section: str) -> Path:
    """Replace the text between the bitwidth markers in ``path`` (append the marked section
    if absent; create the file if missing), leaving every other section unchanged."""
    path = Path(path)
    block = f"{BENCH_BEGIN}\n{section.strip()}\n{BENCH_END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BENCH_BEGIN) + r".*?" + re.escape(BENCH_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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

    Each time is the median of ``repeats`` runs: the wall-clock time with 2 torch threads
    (the target's setting: ``target`` seconds on 2 cores, judged on it) and the CPU time of
    a 1-thread run (the work of one core, which other jobs on a shared machine do not
    inflate). Loop against fast: the same ``loop_images`` images at each width, saturate.

    Returns:
        ``(section, numbers)``: the BENCHMARKS.md section (markdown) and the raw numbers.
    """
    widths = list(widths)
    previous = torch.get_num_threads()
    results, loops = [], []
    try:
        for b in widths:
            for mode in MODES:
                row = {"bits": b, "mode": mode}
                for threads, clock in ((2, 0), (1, 1)):
                    torch.set_num_threads(threads)
                    timed = _timed_median(
                        lambda b=b, mode=mode: evaluate(qnet, images, labels, b, mode), repeats
                    )
                    row[f"{threads}_threads"] = timed[clock]
                    ev = timed[2]
                row.update(accuracy=ev.accuracy, overflows=sum(ev.overflow_outputs.values()))
                results.append(row)
        torch.set_num_threads(1)
        few = images[:loop_images]
        for b in widths:
            _, loop_cpu, loop_out = _timed_median(
                lambda b=b: integer_forward(qnet, few, b, "saturate", "loop"), 1
            )
            _, fast_cpu, fast_out = _timed_median(
                lambda b=b: integer_forward(qnet, few, b, "saturate", "fast"), max(repeats, 5)
            )
            same = torch.equal(loop_out.logits, fast_out.logits) and all(
                torch.equal(loop_out.overflows[n], fast_out.overflows[n]) for n in qnet.layer_names
            )
            loops.append({"bits": b, "loop": loop_cpu, "fast": fast_cpu, "identical": same})
    finally:
        torch.set_num_threads(previous)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines = [
        "## Accumulator bit-width: integer LeNet engine (`dnnkernels.bitwidth`)",
        "",
        f"Command: `python -m dnnkernels.bitwidth --out build/bitwidth`. CPU: {_cpu_model()}, "
        f"{os.cpu_count()} logical cores; torch {torch.__version__}; "
        f"Python {platform.python_version()}; measured "
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC. "
        f"Load average at the end: {load} (1, 5, 15 min): the machine is shared, so "
        "wall-clock times can be inflated by other jobs; the 1-thread CPU time is not.",
        "",
        f"Whole set: {len(images)} test images, uint8 pixels to accuracy "
        f"(`bitwidth.evaluate`, batches of 128), median of {repeats} runs. "
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
        update_benchmarks(args.benchmarks, section)
        summary["benchmark"] = numbers
        print(section)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
