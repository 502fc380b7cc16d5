"""Hidden checks of the svd_rank assignment (never released to students).

Expected errors come from singular values computed here in float64 (Eckart-Young), FLOP
counts from the closed form stated in the exercise's docstring, in exact integers.
"""

from __future__ import annotations

import pytest
import torch

from autograder.checking import expect_close, expect_int, expect_tensor, randn
from autograder.student import CheckFailed


def errors_ref(M: torch.Tensor, ranks) -> torch.Tensor:
    """sqrt(sum_{i>k} s_i^2 / sum_i s_i^2) for each k, in float64."""
    s = torch.linalg.svdvals(M.double())
    energy = s * s
    return torch.stack([energy[k:].sum().sqrt() / energy.sum().sqrt() for k in ranks])


def expect_errors(student, M, ranks, what: str, rtol: float, atol: float) -> torch.Tensor:
    """The student's low_rank_errors(M, ranks), checked against :func:`errors_ref`."""
    got = student.call("low_rank_errors", M, ranks)
    expect_close(got, errors_ref(M, ranks), dtype=torch.float64, what=what, rtol=rtol, atol=atol)
    return got


@pytest.mark.svd_rank_errors
@pytest.mark.points(1)
def test_errors_random_and_low_rank(student):
    """low_rank_errors: a random matrix (ranks in any order, repeats), an exactly low-rank one"""
    M = randn(20, 13, seed=8101)
    ranks = [5, 1, 12, 5, 3]
    expect_errors(student, M, ranks, "a random matrix", rtol=1e-9, atol=1e-12)
    M = randn(15, 3, seed=8111) @ randn(3, 11, seed=8112)
    ranks = [1, 2, 3, 4, 11]
    expect_errors(student, M, ranks, "an exactly low-rank matrix", rtol=1e-8, atol=1e-10)


@pytest.mark.svd_rank_errors
@pytest.mark.points(1)
def test_errors_shapes_and_dtype(student):
    """low_rank_errors: float32 and wide matrices give float64 errors, one per rank"""
    M = randn(6, 30, seed=8121, dtype=torch.float32)
    ranks = [2, 6]
    got = student.call("low_rank_errors", M, ranks)
    expect_tensor(got, (2,), torch.float64, what="a float32 matrix")
    tol = dict(rtol=1e-5, atol=1e-6)
    expect_close(got, errors_ref(M, ranks), dtype=torch.float64, what="a float32 matrix", **tol)
    M = randn(40, 4, seed=8131)
    expect_errors(student, M, [4], "a tall matrix, one rank", rtol=1e-9, atol=1e-12)
    values = student.call("low_rank_errors", randn(9, 9, seed=8141), list(range(1, 10)))
    expect_tensor(values, (9,), torch.float64, what="every rank of a square matrix")
    if bool((values[1:] > values[:-1] + 1e-12).any()):
        raise CheckFailed("errors increase with the rank")


def with_spectrum(s: list[float], m: int, n: int, seed: int) -> torch.Tensor:
    """An (m, n) float64 matrix with singular values ``s`` and random singular vectors."""
    U, _ = torch.linalg.qr(randn(m, len(s), seed=seed))
    V, _ = torch.linalg.qr(randn(n, len(s), seed=seed + 1))
    return (U * torch.tensor(s, dtype=torch.float64)) @ V.T


@pytest.mark.svd_rank_errors
@pytest.mark.points(1)
def test_errors_tiny_singular_values(student):
    """low_rank_errors: tiny singular values give tiny errors, to full relative accuracy"""
    # the tail energy must be summed from the small end (total - cumsum cancels to 0), and
    # in float64 (a float32 SVD of a float32 matrix is off by ~1e-7 of the largest value)
    M = torch.diag(torch.tensor([1.0, 1e-9, 1e-12], dtype=torch.float64))
    expect_errors(
        student, M, [1, 2, 3], "a diagonal matrix with tiny singular values", rtol=1e-6, atol=0.0
    )
    M = with_spectrum([10.0**-e for e in range(8)], 11, 9, seed=8151)
    expect_errors(
        student,
        M,
        [7, 3, 5, 1],
        "a non-square matrix with a spectrum over many orders of magnitude",
        rtol=1e-6,
        atol=0.0,
    )
    M32 = with_spectrum([1.0, 1e-3, 1e-6, 1e-7], 7, 5, seed=8161).float()
    expect_errors(
        student,
        M32,
        [2, 3],
        "a float32 matrix with small singular values (computed in float64?)",
        rtol=1e-3,
        atol=0.0,
    )


def flops_ref(m: int, k: int, n: int, r: int) -> tuple[int, int]:
    """(min(2rn(m+k), 2mk(r+n)), 2mkn): the counting rule of the docstring."""
    return min(2 * r * n * (m + k), 2 * m * k * (r + n)), 2 * m * k * n


@pytest.mark.svd_rank_flops
@pytest.mark.points(1)
def test_flops_square(student):
    """factored_matmul_flops: square products (the right-first order is cheaper)"""
    for m, k, n, r in [(512, 512, 512, 32), (300, 300, 300, 1), (96, 96, 96, 40)]:
        got = student.call("factored_matmul_flops", m, k, n, r)
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed("expected a tuple (factored, dense)")
        factored, dense = flops_ref(m, k, n, r)
        expect_int(got[1], dense, what="dense FLOPs of a square product")
        expect_int(got[0], factored, what="factored FLOPs of a square product")


@pytest.mark.svd_rank_flops
@pytest.mark.points(1)
def test_flops_rectangular(student):
    """factored_matmul_flops: rectangular shapes, where the left-first order can be cheaper"""
    cases = [
        (3, 4, 1000, 3, "a small A times a wide B (left first is cheaper)"),
        (1000, 20, 7, 5, "a tall A times a narrow B"),
        (64, 2048, 1, 64, "a matrix times a vector, full rank"),
        (10, 10, 10, 10, "a square product at full rank (both orders cost the same)"),
        (5000, 3000, 7000, 2900, "large shapes, rank near the smaller dimension"),
    ]
    for m, k, n, r, what in cases:
        got = student.call("factored_matmul_flops", m, k, n, r)
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed("expected a tuple (factored, dense)")
        factored, dense = flops_ref(m, k, n, r)
        expect_int(got[1], dense, what=f"dense FLOPs, {what}")
        expect_int(got[0], factored, what=f"factored FLOPs, {what}")
