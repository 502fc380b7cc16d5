"""Tests of dnnkernels.lowrank, compress, matrix_families and lowrank_study.

References are independent of the code under test: errors against the matrix rebuilt from
``torch.linalg.svd`` in float64, FLOP counts against ``torch.utils.flop_counter`` on the real
products, ``rank_for_ratio`` against a brute-force search in exact fractions, SVDLinear
against ``nn.Linear``. No test asserts a measured time.

Tolerances: float64 layers and errors 1e-10; float32 layers 1e-5 (the SVD runs in float32),
1e-4 for the trained 512 -> 128 layer (longer sums).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from helpers import assert_close, randn
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dnnkernels.compress import (
    SVDLinear,
    check_layer_ratio,
    compress,
    compression_ratio,
    compression_sweep,
    factored_params,
    layer_ranks,
    linear_params,
    min_ratio,
    rank_for_ratio,
    svd_linear,
)
from dnnkernels.lowrank import error_curve, factored_matmul_flops, low_rank_errors
from dnnkernels.lowrank_study import plot_compression, rank_sweep
from dnnkernels.lowrank_study import run as run_study
from dnnkernels.matrix_families import FAMILIES, matrix_family
from dnnkernels.models import MLP

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mnist():
    from dnnkernels.data import MNISTUnavailableError, load_mnist

    try:
        return load_mnist()
    except MNISTUnavailableError as error:  # pragma: no cover - depends on the machine
        pytest.skip(f"MNIST not available: {error}")


@pytest.fixture(scope="module")
def trained_mlp():
    from dnnkernels.models import load_trained

    try:
        return load_trained("mlp")
    except FileNotFoundError as error:  # pragma: no cover - before the weights are committed
        pytest.skip(str(error))


def random_mlp(seed: int = 0) -> MLP:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return MLP().eval()


class TinyMLP(nn.Module):
    """The MLP's structure at a small size, 784 -> 32 -> 24 -> 10, so that SVDs are quick."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.fc2 = nn.Linear(32, 24)
        self.fc3 = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


TINY_SHAPES = {"fc1": (784, 32), "fc2": (32, 24), "fc3": (24, 10)}


def tiny_mlp(seed: int = 0) -> TinyMLP:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyMLP().eval()


@pytest.fixture(scope="module")
def small_mnist(mnist):
    """The first 256 training and 500 test images of MNIST (quick to evaluate)."""
    from dnnkernels.data import MNIST

    return MNIST(
        train_images=mnist.train_images[:256],
        train_labels=mnist.train_labels[:256],
        test_images=mnist.test_images[:500],
        test_labels=mnist.test_labels[:500],
        batch_size=64,
        test_batch_size=250,
    )


def matrix_with_singular_values(s: list[float], m: int, n: int, seed: int) -> torch.Tensor:
    """Q1 diag(s) Q2ᵀ (float64) with random orthonormal Q1 (m, p), Q2 (n, p), p = len(s)."""
    q1, _ = torch.linalg.qr(randn((m, len(s)), seed))
    q2, _ = torch.linalg.qr(randn((n, len(s)), seed + 1))
    return q1 @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ q2.T


def f64(values) -> torch.Tensor:
    """A float64 tensor of Python numbers (helpers.assert_close would read a list as float32)."""
    return torch.tensor(values, dtype=torch.float64)


def rebuilt_errors(M: torch.Tensor, ranks) -> torch.Tensor:
    """||M - M_k||_F / ||M||_F with M_k rebuilt from a float64 SVD (the direct definition)."""
    M = M.to(torch.float64)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    out = []
    for k in ranks:
        Mk = U[:, :k] @ torch.diag(S[:k]) @ Vh[:k]
        out.append(torch.linalg.norm(M - Mk) / torch.linalg.norm(M))
    return torch.stack(out)


# ----------------------------------------------------------------------------- low_rank_errors


@pytest.mark.svd_rank_errors
def test_low_rank_errors_hand_case():
    # diag(3, 4): singular values 4 and 3; ||M||_F = 5
    M = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    got = low_rank_errors(M, [1, 2])
    assert got.dtype == torch.float64 and got.shape == (2,)
    assert_close(got, f64([0.6, 0.0]), rtol=0, atol=1e-15, what="errors of diag(3, 4)")


@pytest.mark.svd_rank_errors
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    seed=seeds,
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_low_rank_errors_match_rebuilt_matrix(m, n, seed, dtype):
    M = randn((m, n), seed, dtype)
    ranks = list(range(1, min(m, n) + 1))
    got = low_rank_errors(M, ranks)
    assert got.dtype == torch.float64 and got.shape == (len(ranks),)
    assert_close(got, rebuilt_errors(M, ranks), rtol=1e-10, atol=1e-12, what="relative error")
    # non-increasing in the rank and exactly representable 0 at full rank (up to rounding)
    assert bool((got[1:] <= got[:-1] + 1e-15).all()), got
    assert float(got[-1]) <= 1e-12


@pytest.mark.svd_rank_errors
def test_low_rank_errors_order_and_repeats():
    M = randn((9, 7), 3)
    ranks = [5, 1, 5, 7, 2]
    assert_close(low_rank_errors(M, ranks), rebuilt_errors(M, ranks), 1e-10, 1e-12, "errors")


@pytest.mark.svd_rank_errors
def test_low_rank_errors_eckart_young_known_singular_values():
    s = [10.0, 5.0, 2.0, 1.0, 0.5, 1e-3]
    M = matrix_with_singular_values(s, 20, 15, seed=7)
    total = sum(v * v for v in s)
    expected = [math.sqrt(sum(v * v for v in s[k:]) / total) for k in range(1, len(s) + 1)]
    # the matrix has rank 6 but shape (20, 15): ranks beyond 6 give 0 as well
    got = low_rank_errors(M, list(range(1, 16)))
    assert_close(got[:6], f64(expected), rtol=1e-10, atol=1e-13, what="Eckart-Young tail")
    assert_close(got[6:], [0.0] * 9, rtol=0, atol=1e-12, what="errors beyond the true rank")
    # no rank-2 matrix does better than the truncated SVD: a random rank-2 competitor
    competitor = randn((20, 2), 1) @ randn((2, 15), 2)
    assert float(torch.linalg.norm(M - competitor) / torch.linalg.norm(M)) >= float(got[1])


@pytest.mark.svd_rank_errors
def test_low_rank_errors_tiny_tail_is_accurate():
    # a tail of 1e-9 relative energy must not drown in cancellation (total - cumsum)
    s = [1.0, 1e-5, 1e-6]
    M = matrix_with_singular_values(s, 5, 4, seed=11)
    expected = math.sqrt(1e-12) / math.sqrt(1 + 1e-10 + 1e-12)
    assert_close(low_rank_errors(M, [2]), f64([expected]), rtol=1e-6, atol=0, what="tiny tail")


# ----------------------------------------------------------------------------- FLOPs


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.svd_rank_flops
@pytest.mark.parametrize(
    ("m", "k", "n", "rank", "expected"),
    [
        # right first: 2*64*1024*2048 ; dense 2*1024^3
        (1024, 1024, 1024, 64, (268_435_456, 2_147_483_648)),
        # right first 2*1*4*(2+3) = 40 < left first 2*2*3*(1+4) = 60; dense 2*2*3*4 = 48
        (2, 3, 4, 1, (40, 48)),
        # left first 2*4*4*(4+100) = 3328 < right first 2*4*100*8 = 6400; dense 3200
        (4, 4, 100, 4, (3328, 3200)),
        # equal orders at m = k = n = r: 2*r^3*2 both; dense 2*r^3
        (8, 8, 8, 8, (2048, 1024)),
    ],
)
def test_factored_matmul_flops_hand_cases(m, k, n, rank, expected):
    got = factored_matmul_flops(m, k, n, rank)
    assert tuple(got) == expected
    assert all(isinstance(v, int) for v in got)


@pytest.mark.svd_rank_flops
@given(m=st.integers(1, 9), k=st.integers(1, 9), n=st.integers(1, 9), data=st.data())
def test_factored_matmul_flops_match_counted_products(m, k, n, data):
    rank = data.draw(st.integers(1, min(m, k)))
    U, Vh, B = torch.ones(m, rank), torch.ones(rank, k), torch.ones(k, n)
    A = torch.ones(m, k)
    right = counted_flops(lambda: U @ (Vh @ B))
    left = counted_flops(lambda: (U @ Vh) @ B)
    dense = counted_flops(lambda: A @ B)
    assert factored_matmul_flops(m, k, n, rank) == (min(right, left), dense)


# ----------------------------------------------------------------------------- SVDLinear


@pytest.mark.mnist_svd_linear
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_svd_linear_full_rank_equals_linear(bias, dtype, tol):
    torch.manual_seed(0)
    linear = nn.Linear(13, 7, bias=bias).to(dtype)
    layer = SVDLinear(linear, 7)
    x = randn((5, 13), 1, dtype)
    with torch.no_grad():
        assert_close(layer(x), linear(x), rtol=tol, atol=tol, what="full-rank SVDLinear")
        # any leading dimensions, like nn.Linear
        x3 = randn((2, 3, 13), 2, dtype)
        assert_close(layer(x3), linear(x3), rtol=tol, atol=tol, what="3-D input")
    assert layer(x).dtype == dtype


@pytest.mark.mnist_svd_linear
@pytest.mark.parametrize("rank", [1, 3, 6])
def test_svd_linear_matches_truncated_weight(rank):
    torch.manual_seed(1)
    linear = nn.Linear(9, 6).double()
    W = linear.weight.detach()
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    W_k = U[:, :rank] @ torch.diag(S[:rank]) @ Vh[:rank]
    x = randn((4, 9), 3)
    with torch.no_grad():
        got = SVDLinear(linear, rank)(x)
    expected = x @ W_k.T + linear.bias.detach()
    assert_close(got, expected, rtol=1e-10, atol=1e-10, what=f"rank-{rank} layer")


@pytest.mark.mnist_svd_linear
@pytest.mark.parametrize("bias", [True, False])
def test_svd_linear_parameters_and_factors(bias):
    torch.manual_seed(2)
    i, o, r = 20, 12, 5
    linear = nn.Linear(i, o, bias=bias)
    layer = SVDLinear(linear, r)
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    expected = {"V": (i, r), "SUt": (r, o)} | ({"bias": (o,)} if bias else {})
    assert shapes == expected
    assert all(isinstance(p, nn.Parameter) for p in layer.parameters())
    assert sum(p.numel() for p in layer.parameters()) == factored_params(i, o, r, bias)
    assert (layer.in_features, layer.out_features, layer.rank) == (i, o, r)
    # S is folded into the output-side factor: V keeps orthonormal columns
    V = layer.V.detach().double()
    assert_close(V.T @ V, torch.eye(r), rtol=0, atol=1e-5, what="V^T V")
    if bias:
        assert torch.equal(layer.bias.detach(), linear.bias.detach())
        assert layer.bias.data_ptr() != linear.bias.data_ptr()  # a copy, not shared


@pytest.mark.mnist_svd_linear
def test_svd_linear_forward_multiplies_by_the_factors():
    # the forward pass costs 2*B*r*(in + out) FLOPs: two thin products, no rebuilt weight
    # (rebuilding would add 2*out*r*in, multiplying by it 2*B*in*out)
    torch.manual_seed(3)
    i, o, r, batch = 64, 48, 4, 10
    layer = SVDLinear(nn.Linear(i, o), r)
    x = torch.randn(batch, i)
    with torch.no_grad():
        flops = counted_flops(lambda: layer(x))
    assert flops == 2 * batch * r * (i + o)


@pytest.mark.mnist_svd_linear
def test_svd_linear_can_be_fine_tuned():
    torch.manual_seed(4)
    layer = SVDLinear(nn.Linear(8, 5), 2)
    loss = layer(torch.randn(3, 8)).square().sum()
    loss.backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.V.detach().clone()
    optimizer.step()
    assert not torch.equal(before, layer.V.detach())


@pytest.mark.mnist_svd_linear
def test_svd_linear_on_trained_layer(trained_mlp):
    fc2 = trained_mlp.fc2
    x = torch.randn(6, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = SVDLinear(fc2, 128)(x)
        expected = fc2(x)
    assert_close(full, expected, rtol=1e-4, atol=1e-4, what="trained fc2 at full rank")


# ----------------------------------------------------------------------------- rank_for_ratio


def brute_force_rank(i: int, o: int, ratio: float) -> int:
    """Largest r >= 1 with r(i+o)+o <= ratio (i*o+o), exactly, by trying every r."""
    best = 0
    for r in range(1, min(i, o) + 1):
        if Fraction(factored_params(i, o, r)) <= Fraction(ratio) * linear_params(i, o):
            best = r
    return best


@pytest.mark.mnist_rank_for_ratio
def test_rank_for_ratio_hand_case():
    # 77 * 1296 + 512 = 100,304 <= 0.25 * 401,920 = 100,480 < 78 * 1296 + 512 = 101,600
    assert rank_for_ratio(784, 512, 0.25) == 77
    assert rank_for_ratio(784, 512, 1.0) == 309  # 309 < 784*512/1296 = 309.7
    # exactly the rank-1 layer: 148 of 1290 parameters (min_ratio rounds 148/1290 up)
    assert Fraction(min_ratio(128, 10)) >= Fraction(148, 1290)
    assert rank_for_ratio(128, 10, min_ratio(128, 10)) == 1


@pytest.mark.mnist_rank_for_ratio
@pytest.mark.parametrize("i", [1, 2, 3, 5, 8, 13, 40])
@pytest.mark.parametrize("o", [1, 2, 3, 7, 10, 33])
def test_rank_for_ratio_against_brute_force(i, o):
    total = linear_params(i, o)
    # every boundary (a ratio that lands exactly on a parameter count, as a float), its
    # neighbouring floats, and a grid of ordinary ratios
    boundaries = [factored_params(i, o, r) / total for r in range(1, min(i, o) + 1)]
    candidates = set(np.linspace(0.01, 1.0, 50).tolist()) | {1.0}
    for b in boundaries:
        candidates |= {b, math.nextafter(b, 0), math.nextafter(b, 2)}
    checked = 0
    for ratio in sorted(candidates):
        if not 0 < ratio <= 1 or brute_force_rank(i, o, ratio) == 0:
            continue  # not a valid input: callers reject it (test below)
        got = rank_for_ratio(i, o, ratio)
        assert isinstance(got, int)
        assert got == brute_force_rank(i, o, ratio), (i, o, ratio)
        checked += 1
    if min_ratio(i, o) <= 1:
        assert checked > 0


@pytest.mark.mnist_rank_for_ratio
@given(i=st.integers(1, 2000), o=st.integers(1, 2000), u=st.floats(0, 1))
def test_rank_for_ratio_is_the_largest_feasible_rank(i, o, u):
    low = min_ratio(i, o)
    if low > 1:
        return  # no factored layer of this shape saves parameters
    ratio = low + u * (1 - low)
    r = rank_for_ratio(i, o, ratio)
    total = Fraction(linear_params(i, o))
    assert 1 <= r < min(i, o) or (r == 1 and min(i, o) == 1)
    assert Fraction(factored_params(i, o, r)) <= Fraction(ratio) * total
    assert Fraction(factored_params(i, o, r + 1)) > Fraction(ratio) * total


def test_check_layer_ratio_rejects_unreachable_targets():
    # 128 -> 10: the rank-1 layer keeps 148 of 1290 parameters (0.1147...)
    assert check_layer_ratio("ratio", min_ratio(128, 10), 128, 10) == min_ratio(128, 10)
    with pytest.raises(ValueError, match=r"ratio: got 0\.1, expected at least 0\.11472"):
        check_layer_ratio("ratio", 0.1, 128, 10)
    with pytest.raises(ValueError, match=r"ratio: got 1\.0, expected at least 1\.5"):
        check_layer_ratio("ratio", 1.0, 1, 1)


# ----------------------------------------------------------------------------- compression


def test_compression_ratio_counts_every_parameter():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 5))
    small = compress(model, ranks={"0": 3})  # layer "2" stays dense and counts on both sides
    expected = (3 * 30 + 10 + 55) / (210 + 55)
    assert compression_ratio(model, small) == pytest.approx(expected, rel=1e-15)
    both = compress(model, ranks=[3, 2])
    assert compression_ratio(model, both) == pytest.approx((100 + 35) / 265, rel=1e-15)
    assert compression_ratio(model, model) == 1.0
    # an MLP: parameters of the factored layers including bias over the original's
    mlp = tiny_mlp()
    ranks = {"fc1": 10, "fc2": 5, "fc3": 2}
    got = compression_ratio(mlp, compress(mlp, ranks=ranks))
    want = sum(factored_params(i, o, ranks[n]) for n, (i, o) in TINY_SHAPES.items()) / sum(
        i * o + o for i, o in TINY_SHAPES.values()
    )
    assert got == pytest.approx(want, rel=1e-15)


def test_compress_keeps_the_original_and_replaces_layers():
    mlp = tiny_mlp(1)
    state = {k: v.clone() for k, v in mlp.state_dict().items()}
    small = compress(mlp, ranks=4)
    assert all(torch.equal(v, mlp.state_dict()[k]) for k, v in state.items())
    assert all(isinstance(getattr(mlp, n), nn.Linear) for n in ("fc1", "fc2", "fc3"))
    assert all(isinstance(getattr(small, n), SVDLinear) for n in ("fc1", "fc2", "fc3"))
    assert layer_ranks(small) == {"fc1": 4, "fc2": 4, "fc3": 4}
    assert not small.training  # keeps eval mode
    # full rank everywhere reproduces the network
    full = compress(mlp, ranks=[32, 24, 10])
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert_close(full(x), mlp(x), rtol=1e-4, atol=1e-5, what="full-rank MLP")


@pytest.mark.parametrize("allocation", ["energy", "uniform"])
@pytest.mark.parametrize("target", [1.0, 0.5, 0.25, 0.15, 0.1, 0.05, 0.04])
def test_compress_ratio_meets_target(target, allocation):
    mlp = tiny_mlp(2)
    small = compress(mlp, ratio=target, allocation=allocation)
    assert compression_ratio(mlp, small) <= target
    ranks = layer_ranks(small)
    assert set(ranks) == set(TINY_SHAPES)
    # never beyond the rank where the factors stop saving parameters
    assert all(1 <= ranks[n] <= brute_force_rank(i, o, 1.0) for n, (i, o) in TINY_SHAPES.items())
    if allocation == "uniform" and all(
        brute_force_rank(i, o, target) >= 1 for i, o in TINY_SHAPES.values()
    ):
        # every layer reaches the target on its own: exactly rank_for_ratio per layer
        assert ranks == {n: brute_force_rank(i, o, target) for n, (i, o) in TINY_SHAPES.items()}


def test_compress_energy_allocation_is_optimal_for_equal_layer_costs():
    # two 12 -> 12 layers (24 parameters per rank each) with known singular values: the
    # greedy allocation must minimise e1(r1)² + e2(r2)² over all (r1, r2) within budget
    s1 = [8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001]
    s2 = [5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.25, 0.1]
    model = nn.Sequential(nn.Linear(12, 12), nn.Linear(12, 12))
    with torch.no_grad():
        for layer, s, seed in ((model[0], s1, 20), (model[1], s2, 30)):
            layer.weight.copy_(matrix_with_singular_values(s, 12, 12, seed).float())

    def squared_error(s, r):
        return sum(v * v for v in s[r:]) / sum(v * v for v in s)

    total = 2 * linear_params(12, 12)
    cap = rank_for_ratio(12, 12, 1.0)
    assert cap == 6
    for target in (0.25, 0.3, 0.45, 0.6, 0.8, 1.0):
        best = min(
            (squared_error(s1, a) + squared_error(s2, b), (a, b))
            for a in range(1, cap + 1)
            for b in range(1, cap + 1)
            if Fraction(factored_params(12, 12, a) + factored_params(12, 12, b))
            <= Fraction(target) * total
        )[1]
        got = layer_ranks(compress(model, ratio=target, allocation="energy"))
        assert (got["0"], got["1"]) == best, target


def test_compress_ratio_lowers_other_layers_when_one_cannot_reach_it():
    # Linear(64, 64): r=15 keeps exactly 1984 of 4160; Linear(2, 2) keeps 6 of 6 at rank 1.
    # At target 1984/4160 the big layer alone fits, the small one overshoots, so the big
    # one must drop to rank 14 for the model to meet the target.
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(2, 2))
    target = 1984 / 4160
    small = compress(model, ratio=target, allocation="uniform")
    assert layer_ranks(small) == {"0": 14, "1": 1}
    assert compression_ratio(model, small) <= target


def test_compress_on_trained_mlp_keeps_accuracy_at_full_rank(trained_mlp, mnist):
    from dnnkernels.models import evaluate

    dense = evaluate(trained_mlp, mnist)
    full = compress(trained_mlp, ranks=[512, 128, 10])
    assert abs(evaluate(full, mnist) - dense) <= 2e-4  # at most 2 of 10,000 images flip
    half = compress(trained_mlp, ratio=0.5)  # energy allocation
    assert compression_ratio(trained_mlp, half) <= 0.5
    assert evaluate(half, mnist) >= dense - 0.01


# ----------------------------------------------------------------------------- sweeps


def test_rank_sweep_rows():
    M = randn((40, 30), 8, torch.float32)
    ranks = [1, 4, 30]
    rows = rank_sweep(M, ranks, n=16, measure=False, progress=False)
    keys = {
        "rank",
        "rel_error",
        "flops_factored",
        "flops_dense",
        "flop_ratio",
        "time_dense_s",
        "time_factored_s",
        "speedup",
    }
    assert [set(r) for r in rows] == [keys] * 3
    assert [r["rank"] for r in rows] == ranks
    assert_close(
        f64([r["rel_error"] for r in rows]), rebuilt_errors(M, ranks), 1e-6, 1e-6, "errors"
    )
    for r in rows:
        factored, dense = factored_matmul_flops(40, 30, 16, r["rank"])
        assert (r["flops_factored"], r["flops_dense"]) == (factored, dense)
        assert r["flop_ratio"] == dense / factored
        assert math.isnan(r["time_dense_s"]) and math.isnan(r["speedup"])
    timed = rank_sweep(M, [2], n=8, min_run_time=0.01, progress=False)
    assert timed[0]["time_dense_s"] > 0 and timed[0]["time_factored_s"] > 0
    assert timed[0]["speedup"] == timed[0]["time_dense_s"] / timed[0]["time_factored_s"]
    assert [r["rank"] for r in rank_sweep(M, measure=False, progress=False)] == [
        1,
        2,
        4,
        8,
        16,
        30,
    ]


def test_error_curve_defaults_to_every_rank():
    M = randn((6, 4), 9)
    assert_close(error_curve(M), rebuilt_errors(M, [1, 2, 3, 4]), 1e-10, 1e-12, "curve")


# ----------------------------------------------------------------------------- families


@pytest.mark.parametrize(
    ("name", "shape"),
    [("random", (1024, 1024)), ("lowrank_noise", (1024, 1024)), ("photo", (600, 512))],
)
def test_matrix_families_without_data(name, shape):
    M = matrix_family(name)
    assert M.shape == shape and M.dtype == torch.float32
    assert bool(torch.isfinite(M).all())
    assert torch.equal(M, matrix_family(name))  # deterministic
    if name == "photo":
        assert 0 <= float(M.min()) and float(M.max()) <= 1
    else:
        assert not torch.equal(M, matrix_family(name, seed=1))


def test_lowrank_noise_family_has_its_knee_at_rank_32():
    s = torch.linalg.svdvals(matrix_family("lowrank_noise")).double()
    energy = s.square()
    errors = [float((energy[k:].sum() / energy.sum()).sqrt()) for k in (31, 32)]
    # noise 0.05 on unit-variance entries: about 5 % of the norm remains at rank 32
    assert errors[1] < 0.06 < errors[0]


def test_matrix_families_with_data(mnist, trained_mlp):
    batch = matrix_family("mnist_batch", seed=3, data=mnist)
    assert batch.shape == (1000, 784) and batch.dtype == torch.float32
    pixels = batch * 255
    assert (
        torch.equal(pixels, pixels.round()) and 0 <= float(batch.min()) <= float(batch.max()) <= 1
    )
    assert torch.equal(batch, matrix_family("mnist_batch", seed=3, data=mnist))
    assert not torch.equal(batch, matrix_family("mnist_batch", seed=4, data=mnist))
    # every row is a test image
    test = mnist.test_images.reshape(10000, 784).to(torch.float32) / 255
    index = (batch[:5, None, :] == test[None]).all(dim=2).nonzero()
    assert len(index) >= 5

    weight = matrix_family("mlp_weight", model=trained_mlp)
    assert weight.shape == (512, 784) and torch.equal(weight, trained_mlp.fc1.weight.detach())

    acts = matrix_family("mlp_activations", seed=3, model=trained_mlp, data=mnist)
    assert acts.shape == (1000, 512) and acts.dtype == torch.float32
    assert float(acts.min()) >= 0
    # the rest of the network applied to the activations gives the network's logits
    from dnnkernels.data import normalize

    images = (batch * 255).round().to(torch.uint8).reshape(1000, 28, 28)
    with torch.no_grad():
        logits = trained_mlp(normalize(images))
        rest = trained_mlp.fc3(torch.relu(trained_mlp.fc2(acts)))
    assert_close(rest, logits, rtol=1e-5, atol=1e-5, what="fc3(relu(fc2(activations)))")


def test_compression_sweep_and_plots(tmp_path, small_mnist):
    from dnnkernels.models import evaluate

    mlp = tiny_mlp(3)
    rows = compression_sweep(
        mlp,
        [0.1],
        small_mnist,
        finetune_steps=2,
        allocations=("energy", "uniform"),
        batch_sizes=(1, 8),
        min_run_time=0.01,
        progress=False,
    )
    assert [(r["allocation"], r["ratio_target"]) for r in rows] == [
        ("energy", 0.1),
        ("uniform", 0.1),
    ]
    for row in rows:
        assert row["ratio"] <= row["ratio_target"]
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["accuracy_finetuned"] <= 1
        assert re.fullmatch(r"fc1:\d+ fc2:\d+ fc3:\d+", row["ranks"])
        for b in (1, 8):
            assert row[f"speedup_b{b}"] == row[f"time_dense_b{b}_s"] / row[f"time_factored_b{b}_s"]
        assert row["accuracy_dense"] == evaluate(mlp, small_mnist)
    again = compress(mlp, ratio=0.1, allocation="uniform")
    assert rows[1]["accuracy"] == evaluate(again, small_mnist)
    assert rows[1]["ranks"] == " ".join(f"{n}:{r}" for n, r in layer_ranks(again).items())
    paths = plot_compression(rows, tmp_path)
    assert sorted(p.name for p in paths) == [
        "ratio_vs_accuracy.png",
        "ratio_vs_runtime.png",
        "runtime_vs_accuracy.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_run_writes_tables_plots_and_benchmark_section(tmp_path, small_mnist):
    bench = tmp_path / "BENCHMARKS.md"
    bench.write_text(
        "# Benchmarks\n\n<!-- bench:conv2d:begin -->\nconv text\n<!-- bench:conv2d:end -->\n"
    )
    written = run_study(
        tmp_path / "out",
        bench,
        ratios=(0.25,),
        finetune_steps=0,
        min_run_time=0.01,
        families={"small": randn((60, 40), 12, torch.float32)},
        allocations=("energy",),
        model=tiny_mlp(4),
        data=small_mnist,
        progress=False,
    )
    names = {p.name for p in written["plots"]}
    assert {"errors_vs_rank.png", "speedup_vs_rank.png", "ratio_vs_accuracy.png"} <= names
    assert all(p.exists() for paths in written.values() for p in paths)
    text = bench.read_text()
    assert "<!-- bench:conv2d:begin -->\nconv text\n<!-- bench:conv2d:end -->" in text
    assert text.count("<!-- bench:lowrank:begin -->") == 1
    assert "Target: at compression ratio <= 0.25" in text
    assert re.search(r"Result: \*\*(met|missed)\*\*", text)
    errors = (tmp_path / "out" / "svd_rank" / "errors.csv").read_text().splitlines()
    assert errors[0] == "family,rank,rel_error" and len(errors) == 1 + 40
    assert written["benchmarks"] == [bench]


# ----------------------------------------------------------------------------- bad input


def test_bad_matrix_and_ranks():
    M = randn((5, 3), 0)
    with pytest.raises(ValueError, match=r"ranks\[1\]: got 0, expected an int in \[1, 3\]"):
        error_curve(M, [1, 0])
    with pytest.raises(ValueError, match=r"ranks\[0\]: got 4, expected an int in \[1, 3\]"):
        rank_sweep(M, [4], measure=False, progress=False)
    with pytest.raises(TypeError, match=r"ranks\[0\]: got float 2.0, expected an int"):
        error_curve(M, [2.0])
    with pytest.raises(ValueError, match="ranks: got an empty sequence"):
        error_curve(M, [])
    with pytest.raises(ValueError, match=r"matrix: got .*\(1-D\), expected 2-D"):
        error_curve(torch.ones(4), [1])
    with pytest.raises(ValueError, match="matrix: got .* all entries 0, expected a nonzero"):
        error_curve(torch.zeros(3, 3), [1])
    with pytest.raises(ValueError, match="matrix: got .* NaN or inf"):
        error_curve(torch.full((2, 2), math.nan), [1])
    with pytest.raises(TypeError, match="matrix: got dtype torch.int64"):
        error_curve(torch.ones(2, 2, dtype=torch.int64), [1])


def test_bad_layers_and_ratios():
    linear = nn.Linear(6, 4)
    with pytest.raises(ValueError, match=r"rank: got 0, expected an int in \[1, 4\]"):
        svd_linear(linear, 0)
    with pytest.raises(ValueError, match=r"rank: got 5, expected an int in \[1, 4\]"):
        svd_linear(linear, 5)
    with pytest.raises(TypeError, match="linear: got Conv2d module .* expected a torch.nn.Linear"):
        svd_linear(nn.Conv2d(1, 1, 3), 1)
    with pytest.raises(TypeError, match="linear: got SVDLinear module"):
        svd_linear(SVDLinear(linear, 2), 1)
    broken = nn.Linear(3, 2)
    with torch.no_grad():
        broken.weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="linear.weight: got .* 1 NaN or inf entries"):
        svd_linear(broken, 1)
    mlp = random_mlp()
    for bad in (0, -0.5, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"ratio: got .*, expected a float in \(0, 1\]"):
            compress(mlp, ratio=bad)
    with pytest.raises(TypeError, match="ratio: got str"):
        compress(mlp, ratio="0.5")
    with pytest.raises(ValueError, match="ratio: got 0.001, expected at least 0.0058"):
        compress(mlp, ratio=0.001)
    # the tiny MLP at rank 1 everywhere keeps 972 of 26,162 parameters (0.03715...)
    for allocation in ("energy", "uniform"):
        with pytest.raises(ValueError, match=r"ratio: got 0.03, expected at least 0.0371"):
            compress(tiny_mlp(), ratio=0.03, allocation=allocation)
    with pytest.raises(ValueError, match="allocation: got 'greedy', expected one of"):
        compress(mlp, ratio=0.5, allocation="greedy")
    with pytest.raises(ValueError, match="ranks, ratio: .* expected exactly one of them"):
        compress(mlp)
    with pytest.raises(ValueError, match="ranks, ratio: .* expected exactly one of them"):
        compress(mlp, ranks=2, ratio=0.5)
    with pytest.raises(ValueError, match=r"ranks\['fc3'\]: got 11, expected an int in \[1, 10\]"):
        compress(mlp, ranks=11)
    with pytest.raises(ValueError, match=r"ranks: got 2 ranks, expected 3"):
        compress(mlp, ranks=[1, 2])
    with pytest.raises(ValueError, match=r"ranks: got layer names \['fc9'\]"):
        compress(mlp, ranks={"fc9": 1})
    with pytest.raises(ValueError, match="model: got ReLU module .* expected at least one"):
        compress(nn.ReLU(), ranks=1)
    with pytest.raises(TypeError, match="model: got int"):
        compress(3, ranks=1)
    with pytest.raises(TypeError, match="compressed_model: got str"):
        compression_ratio(mlp, "mlp")


def test_bad_family():
    with pytest.raises(ValueError, match="name: got 'noise', expected one of 'random'"):
        matrix_family("noise")
    with pytest.raises(ValueError, match=r"seed: got -1, expected an int in \[0, inf\]"):
        matrix_family("random", seed=-1)
    assert FAMILIES == (
        "random",
        "lowrank_noise",
        "photo",
        "mnist_batch",
        "mlp_weight",
        "mlp_activations",
    )
