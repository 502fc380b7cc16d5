"""Hidden checks of the mnist assignment (never released to students).

``SVDLinear`` is a class: the runner's ``svd_linear`` adapter builds an ``nn.Linear`` from
the weights sent, constructs the student's ``SVDLinear(linear, rank)``, runs it forward
(and backward) and returns plain values. Expected outputs use a float64 SVD computed here.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from autograder.checking import expect_close, expect_int, randn
from autograder.student import CheckFailed


def truncated_weight(W: torch.Tensor, r: int) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    return (U[:, :r] * S[:r]) @ Vh[:r]


def layer_ref(x, W, b, r):
    y = x.double() @ truncated_weight(W, r).T
    return y if b is None else y + b.double()


def run_layer(student, W, b, r, x, backward=False) -> dict:
    out = student.adapter("svd_linear", W, b, r, x, backward=backward)
    if not isinstance(out, dict) or not out.get("module"):
        raise CheckFailed("SVDLinear(linear, rank) did not build a torch.nn.Module")
    return out


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_full_rank(student):
    """SVDLinear: at full rank it computes the original layer"""
    W, b, x = randn(12, 20, seed=9101), randn(12, seed=9102), randn(7, 20, seed=9103)
    out = run_layer(student, W, b, 12, x)
    expect_close(out["y"], x @ W.T + b, dtype=torch.float64, rtol=1e-8, atol=1e-8)


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_truncated(student):
    """SVDLinear: at rank 4 it computes x W_4^T + b with the best rank-4 W_4 (float32 layer)"""
    W = randn(30, 24, seed=9111, dtype=torch.float32)
    b = randn(30, seed=9112, dtype=torch.float32)
    x = randn(9, 24, seed=9113, dtype=torch.float32)
    out = run_layer(student, W, b, 4, x)
    expect_close(out["y"], layer_ref(x, W, b, 4), dtype=torch.float32, rtol=1e-4, atol=1e-4)


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_no_bias_batched(student):
    """SVDLinear: a layer without bias, on inputs with extra leading dimensions"""
    W = randn(10, 16, seed=9121)
    x = randn(2, 3, 16, seed=9122)
    out = run_layer(student, W, None, 5, x)
    expect_close(out["y"], layer_ref(x, W, None, 5), dtype=torch.float64, rtol=1e-8, atol=1e-8)


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_parameters(student):
    """SVDLinear: trainable factors, r(in + out) + out parameters (S may be apart), no full W"""
    W, b, x = randn(40, 50, seed=9131), randn(40, seed=9132), randn(3, 50, seed=9133)
    r = 6
    out = run_layer(student, W, b, r, x, backward=True)
    lowest = r * (40 + 50) + 40
    if out.get("full"):
        raise CheckFailed("the layer keeps a parameter or buffer as large as the whole weight")
    if not lowest <= out["params"] <= lowest + r:
        raise CheckFailed(
            f"expected {lowest} parameters (or {lowest + r} with S kept apart), got {out['params']}"
        )
    if not out.get("grad"):
        raise CheckFailed("after backward, not every parameter has a finite gradient")


def ratio_ref(i: int, o: int, ratio: float) -> int:
    """Largest r with r(i + o) + o <= ratio (i o + o), ratio at its exact binary value."""
    q = Fraction(ratio)
    return int((q * (i * o + o) - o) // (i + o))


@pytest.mark.mnist_rank_for_ratio
@pytest.mark.points(1)
def test_rank_for_ratio_values(student):
    """rank_for_ratio: typical layers and ratios"""
    for i, o, ratio in [(784, 512, 0.5), (512, 128, 0.1), (128, 10, 0.9), (300, 300, 0.37)]:
        expect_int(
            student.call("rank_for_ratio", i, o, ratio),
            ratio_ref(i, o, ratio),
            what=f"{i} -> {o} at ratio {ratio}",
        )


@pytest.mark.mnist_rank_for_ratio
@pytest.mark.points(1)
def test_rank_for_ratio_boundaries(student):
    """rank_for_ratio: targets that land exactly on a parameter count, and ratio 1"""
    # n -> n layers: ratio (2r + 1) / (n + 1) is exact in binary when n + 1 is a power of 2
    cases = [
        (127, 127, 21 / 128),
        (127, 127, 21 / 128 - 2**-30),
        (63, 63, 11 / 64),
        (1000, 1000, 1.0),
        (6, 2, 0.75),
    ]
    for i, o, ratio in cases:
        expect_int(
            student.call("rank_for_ratio", i, o, ratio),
            ratio_ref(i, o, ratio),
            what=f"{i} -> {o} at ratio {ratio}",
        )
