# Generated automatically from src/dnnkernels/accumulator.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""The b-bit accumulator: sums of products with saturation or wrap-around.

Part of the bit_width assignment (the integer engine :mod:`dnnkernels.intengine` runs
every accumulation of the quantized LeNet through :func:`accumulate`).

Exercises (the course kit holds their reference solutions; the student build runs the
student's own functions, see ``dnnkernels._student``; they take already-validated
input, the public wrappers check it):

- :func:`accumulate` -- sums of products in a b-bit accumulator, saturating or wrapping
  (wrapper :func:`accumulate_products`; naive definition :func:`accumulate_loop`);
- :func:`min_bits` -- the smallest bit-width whose range holds ``[lo, hi]``
  (wrapper :func:`bits_for_range`).

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
"""

from __future__ import annotations

import math

import numpy as np  # noqa: F401  (available to the exercise functions)
import torch

from dnnkernels.checks import check_choice, check_int, check_tensor, describe

MODES = ("saturate", "wrap")
METHODS = ("fast", "loop")
MIN_BITS = 2
MAX_BITS = 64
#: the public wrappers require sum(|products|) along the accumulation axis below this bound,
#: so that every exact partial sum, and every intermediate of the fast method, fits int64
PRODUCT_SUM_LIMIT = 2**62


def accumulator_range(bits: int) -> tuple[int, int]:
    """The two's complement range ``(lo, hi) = (-2**(bits-1), 2**(bits-1) - 1)``."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


# ============================================================================ exercises


def accumulate(
    products: torch.Tensor, bits: int, mode: str = "saturate"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum products in a ``bits``-bit two's complement accumulator, one at a time.

    For every index ``i`` of the leading dimensions the accumulator starts at
    ``acc = 0`` and adds ``products[i, 0]``, ``products[i, 1]``, ...,
    ``products[i, K-1]`` in this order. It holds values in
    ``[lo, hi] = [-2**(bits-1), 2**(bits-1) - 1]``; when an addition ``acc + p`` leaves
    that range,

    - ``mode="saturate"``: the accumulator becomes ``min(max(acc + p, lo), hi)``
      (clamped after every single addition, so later additions start from ``lo`` or
      ``hi``);
    - ``mode="wrap"``: it becomes ``acc + p`` modulo ``2**bits``, mapped into
      ``[lo, hi]`` (the carry is dropped), so the result is ``wrap(exact sum)``.

    ``overflow[i]`` is True when at least one addition left the range. Before the first
    such addition the accumulator equals the exact prefix sum.

    Precondition (checked by :func:`accumulate_products`):
    ``sum(|products[i, :]|) < 2**62`` for every ``i``, so exact partial sums fit in
    int64, and with ``bits >= 63`` nothing can overflow.

    Vectorize: no Python loop over the accumulations ``i`` (the integer engine calls
    this on millions of them). A loop over the K positions, each step acting on all
    accumulations at once, is fine; so is composing the additions pairwise in log2(K)
    steps -- one saturating addition is the map ``f(x) = min(max(x + a, l), h)``, and
    two such maps in a row are again such a map. The result must equal the
    one-addition-at-a-time definition above exactly (the reference kit tests it against
    a naive loop, :func:`accumulate_loop`, whose body the student build leaves out).

    Args:
        products: int64 tensor of shape (..., K), K >= 0.
        bits: accumulator width, 2 <= bits <= 64.
        mode: ``"saturate"`` or ``"wrap"``.

    Returns:
        ``(sums, overflow)``: int64 tensor (...) -- the final accumulator values -- and
        bool tensor (...).
    """
    # Student build: runs your own `accumulate` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("bit_width_accumulate")(products, bits, mode)


def min_bits(lo: int, hi: int) -> int:
    """The smallest two's complement bit-width whose range holds all of ``[lo, hi]``.

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
