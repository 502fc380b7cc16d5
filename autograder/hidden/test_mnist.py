"""Hidden checks of the mnist assignment (never released to students).

``SVDLinear`` is a class: the runner's ``svd_linear`` adapter builds an ``nn.Linear`` from
the weights sent, constructs the student's ``SVDLinear(linear, rank)``, runs it forward
(and backward) and returns plain values. Expected outputs use a float64 SVD computed here.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from autograder.checking import expect_close, expect_int, randn, truncated
from autograder.student import CheckFailed


def layer_ref(x, W, b, r):
    y = x.double() @ truncated(W, r).T
    return y if b is None else y + b.double()


def expect_layer(student, W, b, r, x, dtype: torch.dtype, what: str, tol: dict) -> None:
    """The student's SVDLinear at rank r on x, checked against :func:`layer_ref`."""
    out = run_layer(student, W, b, r, x)
    expect_close(out["y"], layer_ref(x, W, b, r), dtype=dtype, what=what, **tol)


def run_layer(student, W, b, r, x, backward=False) -> dict:
    out = student.adapter("svd_linear", W, b, r, x, backward=backward)
    if not isinstance(out, dict) or not out.get("module"):
        raise CheckFailed("SVDLinear(linear, rank) did not build a torch.nn.Module")
    return out


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_full_rank(student):
    """SVDLinear: at full rank it computes the original layer (wide and tall weights)"""
    for (o, i), seed in [((12, 20), 9101), ((20, 12), 9105)]:
        W, b, x = randn(o, i, seed=seed), randn(o, seed=seed + 1), randn(7, i, seed=seed + 2)
        out = run_layer(student, W, b, min(o, i), x)
        expect_close(
            out["y"], x @ W.T + b, dtype=torch.float64, what="full rank", rtol=1e-8, atol=1e-8
        )


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_truncated(student):
    """SVDLinear: at a low rank it computes x W_k^T + b with the best rank-k W_k (float32)"""
    W = randn(30, 24, seed=9111, dtype=torch.float32)
    b = randn(30, seed=9112, dtype=torch.float32)
    x = randn(9, 24, seed=9113, dtype=torch.float32)
    tol = dict(rtol=1e-4, atol=1e-4)
    expect_layer(student, W, b, 4, x, torch.float32, "a truncated float32 layer", tol)


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_no_bias_batched(student):
    """SVDLinear: a layer without bias, on inputs with extra leading dimensions"""
    W = randn(10, 16, seed=9121)
    x = randn(2, 3, 16, seed=9122)
    tol = dict(rtol=1e-8, atol=1e-8)
    expect_layer(student, W, None, 5, x, torch.float64, "no bias, leading dimensions", tol)


@pytest.mark.mnist_svd_linear
@pytest.mark.points(1)
def test_svd_linear_parameters(student):
    """SVDLinear: the two trainable factors and the bias, k(in + out) + out parameters, no full W"""
    # the contract (docstring and notebook): V (in, k) and SUt = diag(S_k) U_k^T (k, out),
    # the singular values folded into SUt, so no separate S: exactly k(in + out) + out
    for (o, i), bias in [((40, 50), True), ((24, 9), False)]:
        r = 6
        W, x = randn(o, i, seed=9131 + o), randn(3, i, seed=9133 + o)
        b = randn(o, seed=9132 + o) if bias else None
        out = run_layer(student, W, b, r, x, backward=True)
        what = "a layer with bias" if bias else "a layer without bias"
        expected = r * (i + o) + (o if bias else 0)
        if out.get("full"):
            raise CheckFailed(
                f"{what}: the layer keeps a parameter or buffer as large as the whole weight"
            )
        if out["params"] != expected:
            extra = out["params"] - expected
            hint = " (S kept apart? fold it into SUt)" if extra == r else ""
            raise CheckFailed(
                f"{what}: {'more' if extra > 0 else 'fewer'} parameters than the factors V, "
                f"SUt and the bias hold{hint}"
            )
        if not out.get("grad"):
            raise CheckFailed(f"{what}: after backward, not every parameter has a finite gradient")


def ratio_ref(i: int, o: int, ratio: float) -> int:
    """Largest r with r(i + o) + o <= ratio (i o + o), ratio at its exact binary value."""
    q = Fraction(ratio)
    return int((q * (i * o + o) - o) // (i + o))


def on_boundary(i: int, o: int, r: int) -> float:
    """The float nearest the ratio at which rank r exactly meets its parameter count."""
    return float(Fraction(r * (i + o) + o, i * o + o))


@pytest.mark.mnist_rank_for_ratio
@pytest.mark.points(1)
def test_rank_for_ratio_values(student):
    """rank_for_ratio: typical layers and ratios"""
    for i, o, ratio in [(784, 512, 0.5), (512, 128, 0.1), (128, 10, 0.9), (300, 300, 0.37)]:
        expect_int(
            student.call("rank_for_ratio", i, o, ratio),
            ratio_ref(i, o, ratio),
            what="a typical layer and ratio",
        )


@pytest.mark.mnist_rank_for_ratio
@pytest.mark.points(1)
def test_rank_for_ratio_boundaries(student):
    """rank_for_ratio: ratios exactly on, just below and (in binary) near a rank boundary"""
    # n -> n layers: ratio (2r + 1) / (n + 1) is exact in binary when n + 1 is a power of 2
    cases = [
        (127, 127, 21 / 128, "a ratio exactly on a rank boundary"),
        (127, 127, 21 / 128 - 2**-30, "a ratio just below a rank boundary"),
        (63, 63, 11 / 64, "a ratio exactly on a rank boundary"),
        (1000, 1000, 1.0, "ratio 1"),
        (6, 2, 0.75, "a ratio exactly on a rank boundary"),
    ]
    # boundaries whose ratio is not a binary fraction: the nearest float lies just below
    # the boundary, so the exact answer is one rank lower than float arithmetic gives
    for i, o, r in [(300, 200, 12), (784, 512, 3), (240, 170, 9)]:
        cases.append(
            (i, o, on_boundary(i, o, r), "a ratio that is not a binary fraction, at a boundary")
        )
    for i, o, ratio, what in cases:
        expect_int(student.call("rank_for_ratio", i, o, ratio), ratio_ref(i, o, ratio), what=what)
