"""dnnkernels.accumulator: b-bit accumulation and minimal widths, against hand cases and
the naive loop definition (task markers ``bit_width_accumulate``, ``bit_width_min_bits``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

from dnnkernels import accumulator
from dnnkernels.accumulator import (
    MODES,
    accumulate,
    accumulate_loop,
    accumulate_products,
    bits_for_range,
    min_bits,
)


def by_hand(row: list[int], bits: int, mode: str) -> tuple[int, bool]:
    """One accumulation written out with Python ints (independent of the module)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    acc, overflow = 0, False
    for p in row:
        acc += p
        if acc > hi or acc < lo:
            overflow = True
            acc = min(max(acc, lo), hi) if mode == "saturate" else (acc - lo) % 2**bits + lo
    return acc, overflow


# ------------------------------------------------------------------ accumulate (exercise)


@pytest.mark.bit_width_accumulate
@pytest.mark.parametrize(
    ("products", "bits", "mode", "expected"),
    [
        # 100 -> 200 > 127 clamps to 127 -> 127 - 150 = -23
        ([100, 100, -150], 8, "saturate", (-23, True)),
        # 100 -> 200 - 256 = -56 -> -56 - 150 = -206 + 256 = 50 (= the exact sum 50)
        ([100, 100, -150], 8, "wrap", (50, True)),
        # -100 -> -200 < -128 clamps to -128 -> -128 + 150 = 22
        ([-100, -100, 150], 8, "saturate", (22, True)),
        # -100 -> -200 + 256 = 56 -> 56 + 150 = 206 - 256 = -50 (= the exact sum -50)
        ([-100, -100, 150], 8, "wrap", (-50, True)),
        ([100, 20, -50], 8, "saturate", (70, False)),  # never leaves [-128, 127]
        ([127], 8, "saturate", (127, False)),  # the top of the range is inside
        ([127, 1], 8, "saturate", (127, True)),
        ([127, 1], 8, "wrap", (-128, True)),
        ([-128, -1], 8, "wrap", (127, True)),
        ([1, 1, -5, 7], 2, "saturate", (1, True)),  # [-2, 1]: 1, 1, -2, 1
        ([1, 1, -5, 7], 2, "wrap", (0, True)),  # exact sum 4 = 0 mod 4
        ([200, -200], 8, "saturate", (-73, True)),  # 127 - 200 = -73: clamped once
        ([], 8, "saturate", (0, False)),  # no products: the accumulator stays at 0
    ],
)
def test_accumulate_hand_cases(products, bits, mode, expected):
    sums, overflow = accumulate(torch.tensor(products, dtype=torch.int64), bits, mode)
    assert sums.dtype == torch.int64 and overflow.dtype == torch.bool
    assert sums.shape == () and overflow.shape == ()
    assert (int(sums), bool(overflow)) == expected
    assert by_hand(products, bits, mode) == expected  # the hand arithmetic above is right


@st.composite
def accumulations(draw):
    """(products int64 (..., K), bits, mode) with magnitudes around the range of ``bits``."""
    bits = draw(st.integers(2, 64))
    lead = draw(st.lists(st.integers(0, 4), min_size=0, max_size=2))
    k = draw(st.integers(0, 24))
    scale = draw(st.sampled_from([0.25, 1.0, 4.0]))
    mode = draw(st.sampled_from(MODES))
    g = torch.Generator().manual_seed(draw(seeds))
    bound = max(1, min(int(scale * 2 ** (bits - 1)), 2**40))  # sum(|p|) stays < 2**62
    products = torch.randint(-bound, bound + 1, (*lead, k), generator=g, dtype=torch.int64)
    return products, bits, mode


@pytest.mark.bit_width_accumulate
@given(accumulations())
def test_accumulate_equals_loop_definition(case):
    products, bits, mode = case
    sums, overflow = accumulate(products, bits, mode)
    loop_sums, loop_overflow = accumulate_loop(products, bits, mode)
    assert sums.shape == products.shape[:-1] and overflow.shape == products.shape[:-1]
    assert torch.equal(sums, loop_sums), (products, bits, mode, sums, loop_sums)
    assert torch.equal(overflow, loop_overflow)
    rows = products.reshape(math.prod(products.shape[:-1]), products.shape[-1]).tolist()
    for row, s, o in zip(
        rows, sums.reshape(-1).tolist(), overflow.reshape(-1).tolist(), strict=True
    ):
        assert (s, o) == by_hand(row, bits, mode)


@pytest.mark.bit_width_accumulate
@pytest.mark.parametrize("shape", [(3, 500), (500, 3), (1, 1), (64, 151)])
@pytest.mark.parametrize("mode", MODES)
def test_accumulate_long_and_many_rows(shape, mode):
    # few long rows and many short rows take different vectorized paths in the reference
    g = torch.Generator().manual_seed(sum(shape))
    products = torch.randint(-3000, 3001, shape, generator=g, dtype=torch.int64)
    for bits in (10, 13, 17):
        sums, overflow = accumulate(products, bits, mode)
        loop_sums, loop_overflow = accumulate_loop(products, bits, mode)
        assert torch.equal(sums, loop_sums) and torch.equal(overflow, loop_overflow)


@pytest.mark.bit_width_accumulate
@given(accumulations())
def test_accumulate_closed_forms(case):
    products, bits, mode = case
    sums, overflow = accumulate(products, bits, mode)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rows = products.reshape(math.prod(products.shape[:-1]), products.shape[-1]).tolist()
    for row, s, o in zip(
        rows, sums.reshape(-1).tolist(), overflow.reshape(-1).tolist(), strict=True
    ):
        prefix = [sum(row[: i + 1]) for i in range(len(row))]
        assert o == any(p < lo or p > hi for p in prefix)  # overflow: a prefix leaves the range
        if mode == "wrap":
            assert s == (sum(row) - lo) % 2**bits + lo  # wrap(exact sum)
        elif not o:
            assert s == sum(row)
        assert lo <= s <= hi


# -------------------------------------------------------------------- min_bits (exercise)


@pytest.mark.bit_width_min_bits
def test_min_bits_edges():
    assert min_bits(0, 0) == 1  # [-1, 0] holds 0
    assert min_bits(-1, -1) == 1 and min_bits(-1, 0) == 1
    assert min_bits(0, 1) == 2 and min_bits(-2, 1) == 2 and min_bits(-3, 0) == 3
    for b in range(2, 70):
        top, bottom = 2 ** (b - 1) - 1, -(2 ** (b - 1))
        assert min_bits(top, top) == b and min_bits(0, top) == b
        assert min_bits(bottom, bottom) == b and min_bits(bottom, top) == b
        assert min_bits(0, top + 1) == b + 1 and min_bits(bottom - 1, 0) == b + 1


@pytest.mark.bit_width_min_bits
@given(st.integers(-(2**70), 2**70), st.integers(0, 2**70))
def test_min_bits_is_smallest_covering_width(lo, span):
    hi = lo + span
    b = min_bits(lo, hi)
    assert -(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1
    if b > 1:
        assert not (-(2 ** (b - 2)) <= lo and hi <= 2 ** (b - 2) - 1)


# ---------------------------------------------------------------- wrappers and bad input


def test_accumulate_products_dispatch():
    products = torch.tensor([[100, 100, -150], [-100, -100, 150]])
    for method in accumulator.METHODS:
        sums, overflow = accumulate_products(products, 8, "saturate", method)
        assert sums.tolist() == [-23, 22] and overflow.tolist() == [True, True]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"bits": 1}, ValueError, ["bits", "got 1", "[2, 64]"]),
        ({"bits": 65}, ValueError, ["bits", "got 65", "[2, 64]"]),
        ({"bits": 8.0}, TypeError, ["bits", "float", "int"]),
        ({"bits": True}, TypeError, ["bits", "bool"]),
        ({"mode": "clip"}, ValueError, ["mode", "'clip'", "'saturate'", "'wrap'"]),
        ({"method": "numba"}, ValueError, ["method", "'numba'", "'fast'", "'loop'"]),
        ({"products": torch.ones(3)}, TypeError, ["products", "float32", "int64"]),
        ({"products": [1, 2]}, TypeError, ["products", "list", "torch.Tensor"]),
        ({"products": torch.tensor(5)}, ValueError, ["products", "0-D", "1-D"]),
        ({"products": torch.tensor([2**62, 1])}, ValueError, ["products", "2**62"]),
        ({"products": torch.full((3,), 2**61)}, ValueError, ["products", "1 rows", "2**62"]),
    ],
)
def test_accumulate_products_bad_input(kwargs, error, words):
    args = {"products": torch.tensor([1, 2, 3]), "bits": 8, "mode": "saturate"} | kwargs
    with pytest.raises(error) as info:
        accumulate_products(**args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bits_for_range_and_its_checks():
    assert bits_for_range(-129, 127) == 9
    assert bits_for_range(np.int64(-16), np.int32(15)) == 5  # numpy ints
    with pytest.raises(ValueError, match=r"hi: got 3 < lo = 4, expected lo <= hi"):
        bits_for_range(4, 3)
    with pytest.raises(TypeError, match=r"lo: got float 1.5, expected an int"):
        bits_for_range(1.5, 3)
