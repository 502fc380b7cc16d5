"""Hidden checks of the bit_width assignment (never released to students).

The expected accumulator values come from a direct simulation here: Python ints, one
addition at a time (the definition in the exercise's docstring); min_bits and the energy
model from their closed forms.
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.checking import expect_equal, expect_float, expect_int, randint
from autograder.student import CheckFailed

_REF_CACHE: dict = {}


def accumulate_ref(products: torch.Tensor, bits: int, mode: str):
    """The direct simulation, remembered for inputs already simulated (same bytes)."""
    key = (products.shape, products.dtype, products.numpy().tobytes(), bits, mode)
    if key not in _REF_CACHE:
        while len(_REF_CACHE) >= 4:  # keep only the last few (large inputs are megabytes)
            del _REF_CACHE[next(iter(_REF_CACHE))]
        _REF_CACHE[key] = _accumulate_ref(products, bits, mode)
    return _REF_CACHE[key]


def _accumulate_ref(products: torch.Tensor, bits: int, mode: str):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rows = products.reshape(math.prod(products.shape[:-1]), products.shape[-1]).tolist()
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


#: the vectorization check: the same call on a few and on many accumulations (K = 16),
#: timed by the CPU seconds the sandbox spends on it, read from /proc outside the sandbox
#: (every thread and child counted; student code cannot reach the measurement). The
#: reference spends about 0.3 us of CPU per accumulation, a Python loop over the
#: accumulations 3 us or more (20 us calling torch per row); the bound sits between, with
#: room for a loaded machine and the 10 ms resolution of the kernel's CPU clock.
VECTOR_FEW, VECTOR_MANY, VECTOR_K = 4096, 65536, 16
VECTOR_MAX_MICROSECONDS = 1.2
VECTOR_REPEATS = 3  # a call over the bound is measured up to three times (the least counts)


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_vectorized(student):
    """accumulate: vectorized, no Python loop over the accumulations (tens of thousands)"""
    few = randint(-200, 200, VECTOR_FEW, VECTOR_K, seed=9541)
    many = randint(-200, 200, VECTOR_MANY, VECTOR_K, seed=9542)
    for mode in ("saturate", "wrap"):
        got, cpu_few = student.timed_call("accumulate", few, 10, mode)
        compare_accumulate(got, few, 10, mode, f"{mode}, many accumulations")
        got, cpu_many = student.timed_call("accumulate", many, 10, mode)
        compare_accumulate(got, many, 10, mode, f"{mode}, many accumulations")
        per_row = 1e6 * (cpu_many - cpu_few) / (VECTOR_MANY - VECTOR_FEW)
        for _ in range(VECTOR_REPEATS - 1):  # over the bound: measure again (noise)
            if per_row <= VECTOR_MAX_MICROSECONDS:
                break
            cpu_few = min(cpu_few, student.timed_call("accumulate", few, 10, mode)[1])
            cpu_many = min(cpu_many, student.timed_call("accumulate", many, 10, mode)[1])
            per_row = 1e6 * (cpu_many - cpu_few) / (VECTOR_MANY - VECTOR_FEW)
        if per_row > VECTOR_MAX_MICROSECONDS:
            raise CheckFailed(
                f"accumulate ({mode}) is not vectorized: its CPU time per accumulation is "
                "far beyond what a vectorized kernel needs (a Python loop over the "
                "accumulations, in any thread or process?); loop over the K positions or "
                "compose pairwise"
            )


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_saturate(student):
    """accumulate: saturation clamps after every addition (narrow and wider accumulators)"""
    for bits, seed in [(8, 9511), (12, 9512)]:
        products = randint(-600, 700, 9, 25, seed=seed)
        check_accumulate(student, products, bits, "saturate", "saturate, random products")


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_wrap(student):
    """accumulate: wrap-around is modulo 2**bits, overflow flagged (also when the sum returns)"""
    for bits, seed in [(8, 9521), (10, 9522)]:
        products = randint(-900, 900, 7, 30, seed=seed)
        check_accumulate(student, products, bits, "wrap", "wrap, random products")
    # a partial sum leaves the range and comes back: the final sum is in range, yet the
    # output overflowed (flags from the final sum alone are wrong)
    there_and_back = torch.tensor([[100, 100, -150, 0], [-100, -100, 150, 0], [127, 1, -1, 0]])
    check_accumulate(student, there_and_back, 8, "wrap", "wrap, a partial sum that comes back")


@pytest.mark.bit_width_accumulate
@pytest.mark.points(1)
def test_accumulate_shapes_and_extremes(student):
    """accumulate: wide accumulators, leading dimensions, one or no product, sums at range ends"""
    wide = randint(-2000, 2000, 6, 40, seed=9501)
    for mode in ("saturate", "wrap"):
        check_accumulate(student, wide, 32, mode, f"a wide accumulator, {mode}")
    products = randint(-5, 6, 2, 3, 4, 7, seed=9531)
    check_accumulate(student, products, 2, "saturate", "leading dimensions, saturate")
    check_accumulate(student, products, 2, "wrap", "leading dimensions, wrap")
    single = randint(-300, 300, 5, 1, seed=9532)
    check_accumulate(student, single, 8, "saturate", "one product per accumulation")
    empty = torch.zeros(3, 0, dtype=torch.int64)
    for mode in ("saturate", "wrap"):
        check_accumulate(student, empty, 8, mode, f"no products (K = 0), {mode}")
    big = randint(-(2**40), 2**40, 3, 50, seed=9533)
    check_accumulate(student, big, 64, "wrap", "the widest accumulator, wrap")
    check_accumulate(student, big, 40, "saturate", "large products, saturate")
    # sums that reach hi or lo exactly (no overflow) and one past them (overflow)
    edges = torch.tensor([[100, 27, 0], [-100, -28, 0], [100, 28, -1], [-100, -29, 1]])
    for mode in ("saturate", "wrap"):
        check_accumulate(student, edges, 8, mode, f"partial sums at the ends of the range, {mode}")


def min_bits_ref(lo: int, hi: int) -> int:
    b = 1
    while not (-(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1):
        b += 1
    return b


@pytest.mark.bit_width_min_bits
@pytest.mark.points(1)
def test_min_bits_ranges(student):
    """min_bits: symmetric, one-sided and single-value ranges"""
    cases = [
        (-1000, 1000, "a symmetric range"),
        (0, 300, "a non-negative range"),
        (-70, -3, "a negative range"),
        (5, 5, "a single positive value"),
        (-1, -1, "a single negative value"),
        (0, 0, "the single value 0"),
        (-3, 2, "a small range around 0"),
    ]
    for lo, hi, what in cases:
        expect_int(student.call("min_bits", lo, hi), min_bits_ref(lo, hi), what=what)


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


def check_energy(student, cases, what):
    for args in cases:
        got = student.call("layer_energy", *args)
        if not isinstance(got, float):
            raise CheckFailed(f"{what}: expected a Python float, got {type(got).__name__}")
        expect_float(got, energy_ref(*args), rtol=1e-12, what=what)


@pytest.mark.bit_width_energy
@pytest.mark.points(1)
def test_energy_byte_widths(student):
    """layer_energy: multiplier widths that are multiples of 8, zero counts, a float result"""
    cases = [
        (1_000_000, 1_010_000, 8, 32),
        (300, 310, 16, 20),
        (0, 0, 8, 32),
        (7, 0, 24, 8),
        (0, 12, 8, 7),
        (5, 3, 64, 64),
    ]
    check_energy(student, cases, "a multiplier width that is a multiple of 8")


@pytest.mark.bit_width_energy
@pytest.mark.points(1)
def test_energy_other_widths(student):
    """layer_energy: multiplier widths that are not multiples of 8 (1-bit included)"""
    cases = [(4096, 4160, 4, 16), (5, 0, 1, 1), (3, 3, 12, 1), (10, 10, 2, 7), (9, 4, 33, 40)]
    check_energy(student, cases, "a multiplier width that is not a multiple of 8")
