"""Hidden checks of the bit_width assignment (never released to students).

The expected accumulator values come from a direct simulation here: Python ints, one
addition at a time (the definition in the exercise's docstring); min_bits and the energy
model from their closed forms.
"""

from __future__ import annotations

import pytest
import torch

from autograder.checking import expect_equal, expect_float, expect_int, randint
from autograder.student import CheckFailed


def accumulate_ref(products: torch.Tensor, bits: int, mode: str):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rows = products.reshape(-1, products.shape[-1]).tolist()
    sums, flags = [], []
    for row in rows:
        acc, over = 0, False
        for p in row:
            s = acc + p
            if lo <= s <= hi:
                acc = s
            else:
                over = True
                acc = min(max(s, lo), hi) if mode == "saturate" else (s - lo) % 2**bits + lo
        sums.append(acc)
        flags.append(over)
    shape = products.shape[:-1]
    return (
        torch.tensor(sums, dtype=torch.int64).reshape(shape),
        torch.tensor(flags, dtype=torch.bool).reshape(shape),
    )


def check_accumulate(student, products, bits, mode, what):
    compare_accumulate(student.call("accumulate", products, bits, mode), products, bits, mode, what)


def compare_accumulate(got, products, bits, mode, what):
    """``got`` (the student's result) must equal the direct simulation, sums and flags."""
    if not isinstance(got, tuple) or len(got) != 2:
        raise CheckFailed(f"{what}: expected a tuple (sums, overflow)")
    sums, flags = accumulate_ref(products, bits, mode)
    expect_equal(got[0], sums, what=f"{what}: sums")
    expect_equal(got[1], flags, what=f"{what}: overflow flags")


#: accumulations in the vectorization check, and the most lines of student code allowed to
#: run for them: a loop over the accumulations runs at least one line per accumulation,
#: a vectorized kernel (a loop over the K positions, or log2(K) pairwise steps) a few hundred
VECTOR_ROWS, VECTOR_K, VECTOR_MAX_LINES = 8192, 16, 2000


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_vectorized(student):
    """accumulate: vectorized, no Python loop over the accumulations (8192 of them)"""
    products = randint(-200, 200, VECTOR_ROWS, VECTOR_K, seed=9541)
    for mode in ("saturate", "wrap"):
        out = student.adapter("line_count", "accumulate", products, 10, mode)
        if not out["own"]:
            raise CheckFailed("accumulate must be a function defined in your answer cell")
        if not out["intact"]:
            raise CheckFailed("accumulate: your code changed the interpreter's trace function")
        compare_accumulate(out["value"], products, 10, mode, f"10 bits, {mode}, {VECTOR_ROWS} rows")
        if out["lines"] > VECTOR_MAX_LINES:
            raise CheckFailed(
                f"accumulate ({mode}) ran {out['lines']} lines of your code for {VECTOR_ROWS} "
                f"accumulations of {VECTOR_K} products (at most {VECTOR_MAX_LINES} allowed): "
                "loop over the K positions or compose pairwise, not over the accumulations"
            )


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_saturate(student):
    """accumulate: saturation clamps after every addition (8 and 12 bits)"""
    for bits, seed in [(8, 9511), (12, 9512)]:
        products = randint(-600, 700, 9, 25, seed=seed)
        check_accumulate(student, products, bits, "saturate", f"{bits} bits, saturate")


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_wrap(student):
    """accumulate: wrap-around is modulo 2**bits (8 and 10 bits), overflow flagged"""
    for bits, seed in [(8, 9521), (10, 9522)]:
        products = randint(-900, 900, 7, 30, seed=seed)
        check_accumulate(student, products, bits, "wrap", f"{bits} bits, wrap")


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_shapes_and_extremes(student):
    """accumulate: no overflow at 32 bits, leading dimensions (2, 3, 4), K = 1, 2 and 64 bits"""
    wide = randint(-2000, 2000, 6, 40, seed=9501)
    for mode in ("saturate", "wrap"):
        check_accumulate(student, wide, 32, mode, f"32 bits, {mode}")
    products = randint(-5, 6, 2, 3, 4, 7, seed=9531)
    check_accumulate(student, products, 2, "saturate", "2 bits, (2, 3, 4, 7)")
    check_accumulate(student, products, 2, "wrap", "2 bits wrap, (2, 3, 4, 7)")
    single = randint(-300, 300, 5, 1, seed=9532)
    check_accumulate(student, single, 8, "saturate", "K = 1")
    big = randint(-(2**40), 2**40, 3, 50, seed=9533)
    check_accumulate(student, big, 64, "wrap", "64 bits")
    check_accumulate(student, big, 40, "saturate", "40 bits")


def min_bits_ref(lo: int, hi: int) -> int:
    b = 1
    while not (-(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1):
        b += 1
    return b


@pytest.mark.bit_width_min_bits
@pytest.mark.points(1)
def test_min_bits_ranges(student):
    """min_bits: symmetric, one-sided and single-value ranges"""
    for lo, hi in [(-1000, 1000), (0, 300), (-70, -3), (5, 5), (-1, -1), (0, 0), (-3, 2)]:
        expect_int(student.call("min_bits", lo, hi), min_bits_ref(lo, hi), what=f"[{lo}, {hi}]")


@pytest.mark.bit_width_min_bits
@pytest.mark.points(1)
def test_min_bits_powers_of_two(student):
    """min_bits: edges at powers of two, and ranges beyond 64 bits"""
    cases = [
        (-(2**15), 2**15 - 1),
        (-(2**15) - 1, 0),
        (0, 2**15),
        (-(2**31), 0),
        (0, 2**31 - 1),
        (-(2**70), 2**70),
        (-1, 0),
        (-2, 1),
    ]
    for lo, hi in cases:
        expect_int(
            student.call("min_bits", lo, hi), min_bits_ref(lo, hi), what="a range at a power of two"
        )


def energy_ref(n_mul, n_add, bits_mul, bits_add) -> float:
    return 64 * (bits_mul / 8) ** 2 * n_mul + bits_add * n_add


@pytest.mark.bit_width_energy
@pytest.mark.points(1)
def test_energy_values(student):
    """layer_energy: the s_mul / s_add model on typical layer counts"""
    for args in [(1_000_000, 1_010_000, 8, 32), (4096, 4160, 4, 16), (300, 310, 16, 20)]:
        expect_float(
            student.call("layer_energy", *args),
            energy_ref(*args),
            rtol=1e-12,
            what=f"layer_energy{args}",
        )


@pytest.mark.bit_width_energy
@pytest.mark.points(1)
def test_energy_edges(student):
    """layer_energy: zero counts, 1-bit widths, a float result"""
    for args in [(0, 0, 8, 32), (0, 12, 8, 7), (5, 0, 1, 1), (3, 3, 12, 1)]:
        got = student.call("layer_energy", *args)
        if not isinstance(got, float):
            raise CheckFailed(
                f"layer_energy{args}: expected a Python float, got {type(got).__name__}"
            )
        expect_float(got, energy_ref(*args), rtol=1e-12, what=f"layer_energy{args}")
