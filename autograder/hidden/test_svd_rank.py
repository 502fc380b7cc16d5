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


@pytest.mark.svd_rank_errors
@pytest.mark.points(1)
def test_errors_random_matrix(student):
    """low_rank_errors: values on a random matrix, ranks in any order with repeats"""
    M = randn(20, 13, seed=8101)
    ranks = [5, 1, 12, 5, 3]
    got = student.call("low_rank_errors", M, ranks)
    expect_close(got, errors_ref(M, ranks), dtype=torch.float64, rtol=1e-9, atol=1e-12)


@pytest.mark.svd_rank_errors
@pytest.mark.points(1)
def test_errors_exact_low_rank(student):
    """low_rank_errors: an exactly rank-3 matrix (zero error from rank 3 on), full rank gives 0"""
    M = randn(15, 3, seed=8111) @ randn(3, 11, seed=8112)
    ranks = [1, 2, 3, 4, 11]
    got = student.call("low_rank_errors", M, ranks)
    expect_close(got, errors_ref(M, ranks), dtype=torch.float64, rtol=1e-8, atol=1e-10)


@pytest.mark.svd_rank_errors
@pytest.mark.points(1)
def test_errors_shapes_and_dtype(student):
    """low_rank_errors: float32 and wide matrices give float64 errors of shape (len(ranks),)"""
    M = randn(6, 30, seed=8121, dtype=torch.float32)
    ranks = [2, 6]
    got = student.call("low_rank_errors", M, ranks)
    expect_tensor(got, (2,), torch.float64, what="float32 input")
    expect_close(got, errors_ref(M, ranks), dtype=torch.float64, rtol=1e-5, atol=1e-6)
    M = randn(40, 4, seed=8131)
    got = student.call("low_rank_errors", M, [4])
    expect_close(
        got, errors_ref(M, [4]), dtype=torch.float64, what="tall, one rank", rtol=1e-9, atol=1e-12
    )
    values = student.call("low_rank_errors", randn(9, 9, seed=8141), list(range(1, 10)))
    expect_tensor(values, (9,), torch.float64)
    if bool((values[1:] > values[:-1] + 1e-12).any()):
        raise CheckFailed("errors increase with the rank")


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
        expect_int(got[1], dense, what=f"dense FLOPs for m=k=n={m}")
        expect_int(got[0], factored, what=f"factored FLOPs for m=k=n={m}, rank {r}")


@pytest.mark.svd_rank_flops
@pytest.mark.points(1)
def test_flops_rectangular(student):
    """factored_matmul_flops: rectangular shapes, where the left-first order can be cheaper"""
    for m, k, n, r in [(3, 4, 1000, 3), (1000, 20, 7, 5), (64, 2048, 1, 64), (10, 10, 10, 10)]:
        got = student.call("factored_matmul_flops", m, k, n, r)
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed("expected a tuple (factored, dense)")
        factored, dense = flops_ref(m, k, n, r)
        expect_int(got[1], dense, what=f"dense FLOPs for ({m}, {k}, {n})")
        expect_int(got[0], factored, what=f"factored FLOPs for ({m}, {k}, {n}), rank {r}")
