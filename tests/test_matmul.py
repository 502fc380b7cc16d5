"""Tests of dnnkernels.matmul: every method against ``A @ B`` in float64.

Tolerances ``(rtol, atol)`` for Gaussian matrices up to 8x8 (products of magnitude up to ~10):

===========  ==================  ==================  ====================================
method       float64             float32             reference
===========  ==================  ==================  ====================================
naive        1e-12, 1e-12        1e-5, 1e-5          A @ B (float64)
torch        1e-12, 1e-12        1e-5, 1e-5          A @ B (float64)
log          1e-12, 1e-12        1e-5, 1e-5          A @ B; log2 and exp2 add 2 roundings
svd (full)   1e-10, 1e-10        1e-4, 1e-4          A @ B; SVD factors are rounded
log_approx   1e-12 (relative)    -                   Aq @ Bq, the quantised matrices, and
                                                     the bound (2**(2**-f) - 1) |A| @ |B|
===========  ==================  ==================  ====================================
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from helpers import assert_close, check_dispatch, randn, relative_error, spy_on
from hypothesis import given
from hypothesis import strategies as st
from strategies import matrix_pairs, seeds
from torch.overrides import TorchFunctionMode

from dnnkernels.matmul import (
    MAX_FRAC_BITS,
    METHODS,
    matmul,
    matmul_log,
    matmul_log_approx,
    matmul_svd,
    truncated_svd,
)

MARKS = {
    "svd": pytest.mark.precision_matmul_svd,
    "log": pytest.mark.precision_matmul_log,
    "log_approx": pytest.mark.precision_matmul_log_approx,
}
TOL = {
    ("naive", torch.float64): (1e-12, 1e-12),
    ("torch", torch.float64): (1e-12, 1e-12),
    ("log", torch.float64): (1e-12, 1e-12),
    ("svd", torch.float64): (1e-10, 1e-10),
    ("naive", torch.float32): (1e-5, 1e-5),
    ("torch", torch.float32): (1e-5, 1e-5),
    ("log", torch.float32): (1e-5, 1e-5),
    ("svd", torch.float32): (1e-4, 1e-4),
}
HALF_TOL = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float32: 1e-5}


def with_marks(methods):
    """pytest.param for each method, marked with the task marker of its exercise."""
    return [pytest.param(m, marks=MARKS[m]) if m in MARKS else m for m in methods]


def exact(A, B):
    return A.double() @ B.double()


def quantised(M, f):
    """sign(M) * 2**(round(2**f log2|M|) / 2**f), in numpy float64 (zeros stay zero)."""
    m = M.double().numpy()
    with np.errstate(divide="ignore"):
        e = np.round(np.log2(np.abs(m)) * 2**f)
    return torch.from_numpy(np.where(m == 0, 0.0, np.sign(m) * np.exp2(e / 2**f)))


# --- hand-computed cases ------------------------------------------------------------------

A2 = torch.tensor([[1.0, -2.0], [3.0, 0.0]], dtype=torch.float64)
B2 = torch.tensor([[5.0, 6.0], [7.0, -8.0]], dtype=torch.float64)
C2 = torch.tensor([[-9.0, 22.0], [15.0, 18.0]], dtype=torch.float64)  # by hand


@pytest.mark.parametrize("method", with_marks(["naive", "torch", "svd", "log"]))
def test_hand_computed_2x2(method):
    assert_close(matmul(A2, B2, method=method), C2, 1e-12, 1e-12, method)


@pytest.mark.precision_matmul_log_approx
def test_log_approx_hand_computed():
    # f = 1 (units of 1/2 in the exponent):
    #   A = [2, -3, 1]: e = round(2 log2|a|) = 2, 3 (2*1.585 = 3.17), 0
    #   B = [1.5, 2, 4]: e = 1 (2*0.585 = 1.17), 2, 4
    #   q = 3, 5, 4  ->  (Q, r) = (1, 1), (2, 1), (2, 0); signs +, -, +
    #   bin r=1: +2**1 - 2**2 = -2;  bin r=0: +2**2 = 4
    #   C = 4 * 2**(0/2) + (-2) * 2**(1/2) = 4 - 2*sqrt(2)   (exact product: 3 - 6 + 4 = 1)
    A = torch.tensor([[2.0, -3.0, 1.0]], dtype=torch.float64)
    B = torch.tensor([[1.5], [2.0], [4.0]], dtype=torch.float64)
    expected = torch.tensor([[4 - 2 * math.sqrt(2)]], dtype=torch.float64)
    assert_close(matmul(A, B, method="log_approx", frac_bits=1), expected, 1e-15, 0, "f=1")
    # f = 0: values rounded to powers of two: 2 * 2 + (-4) * 2 + 1 * 4 = 0
    zero = torch.zeros(1, 1, dtype=torch.float64)
    assert_close(matmul(A, B, method="log_approx", frac_bits=0), zero, 0, 0, "f=0")
    # small magnitudes: negative exponents and an arithmetic shift (Q < 0)
    small = matmul(A / 16, B / 8, method="log_approx", frac_bits=1)
    assert_close(small, expected / 128, 1e-15, 0, "f=1, scaled by 2**-7")


# --- direct methods and log against A @ B (hypothesis) ------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", with_marks(["naive", "torch", "log"]))
@given(pair=matrix_pairs())
def test_methods_match_plain_product(method, dtype, pair):
    A, B = (t.to(dtype) for t in pair)
    C = matmul(A, B, method=method)
    assert C.dtype == dtype and C.shape == (A.shape[0], B.shape[1])
    rtol, atol = TOL[method, dtype]
    assert_close(C, exact(A, B), rtol, atol, f"matmul method={method!r}")


@pytest.mark.precision_matmul_log
@given(pair=matrix_pairs(zeros=True, spread=3.0))
def test_log_is_exact_to_rounding(pair):
    # positive, negative and zero entries over six decades: each product has relative error
    # of a few ulps, so |C - A@B| <= c * eps * (|A| @ |B|)
    A, B = pair
    C = matmul_log(A, B)
    scale = (A.abs() @ B.abs()).max().item()
    assert_close(C, exact(A, B), 0, 64 * 2**-52 * scale + 1e-300, "log domain")


@pytest.mark.precision_matmul_log
def test_log_keeps_exact_zeros():
    A, B = randn((4, 5), 1), randn((5, 3), 2)
    A[1] = 0.0
    B[:, 2] = 0.0
    A[0, 0] = -0.0
    C = matmul(A, B, method="log")
    assert torch.equal(C[1], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(C[:, 2], torch.zeros(4, dtype=torch.float64))
    assert not torch.isnan(C).any()
    assert_close(C, exact(A, B), 1e-12, 1e-12, "log with zeros")


@pytest.mark.precision_matmul_log
def test_log_on_large_matrices_in_blocks():
    # 150 * 120 * 100 products: more than one block of 2**20
    A, B = randn((150, 120), 3), randn((120, 100), 4)
    assert_close(matmul_log(A, B), exact(A, B), 1e-12, 1e-11, "log 150x120x100")


# --- svd -----------------------------------------------------------------------------------


@pytest.mark.precision_matmul_svd
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("which", ["A", "B", "both"])
@given(pair=matrix_pairs())
def test_svd_with_full_rank_equals_product(which, dtype, pair):
    A, B = (t.to(dtype) for t in pair)
    rank_A = min(A.shape) if which in ("A", "both") else None
    rank_B = min(B.shape) if which in ("B", "both") else None
    C = matmul(A, B, method="svd", rank_A=rank_A, rank_B=rank_B)
    assert C.dtype == dtype
    rtol, atol = TOL["svd", dtype]
    assert_close(C, exact(A, B), rtol, atol, f"svd, full rank of {which}")


@pytest.mark.precision_matmul_svd
def test_svd_without_ranks_is_the_plain_product():
    A, B = randn((6, 4), 5), randn((4, 3), 6)
    assert_close(matmul(A, B, method="svd"), exact(A, B), 1e-12, 1e-12, "svd, ranks None")


@pytest.mark.precision_matmul_svd
@pytest.mark.parametrize("which", ["A", "B", "both"])
def test_svd_error_decreases_with_rank(which):
    A, B = randn((12, 9), 7), randn((9, 10), 8)  # both of rank 9
    errors = []
    for r in range(1, 10):
        ranks = {"rank_A": r} if which == "A" else {"rank_B": r} if which == "B" else {}
        if which == "both":
            ranks = {"rank_A": r, "rank_B": r}
        errors.append(relative_error(matmul(A, B, method="svd", **ranks), exact(A, B)))
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:], strict=False)), errors
    assert errors[0] > 0.3 and errors[-1] < 1e-12, errors


@pytest.mark.precision_matmul_svd
def test_svd_error_is_the_eckart_young_error():
    # A_r @ I = A_r, whose Frobenius error is sqrt(sum_{i > r} sigma_i**2) (numpy's SVD)
    A = randn((10, 7), 9)
    sigma = np.linalg.svd(A.numpy(), compute_uv=False)
    eye = torch.eye(7, dtype=torch.float64)
    for r in range(1, 8):
        error = (matmul(A, eye, method="svd", rank_A=r) - A).norm().item()
        assert math.isclose(error, math.sqrt((sigma[r:] ** 2).sum()), rel_tol=1e-9, abs_tol=1e-12)


# calls that may return a full-size matrix without computing it from factors
_NOT_ARITHMETIC = {"isfinite", "isnan", "isinf", "to", "double", "float", "contiguous", "clone"}


class _ProductLog(TorchFunctionMode):
    """Records every torch call made inside the ``with`` block and its output shape."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            self.calls.append((getattr(func, "__name__", repr(func)), shapes, tuple(out.shape)))
        return out


@pytest.mark.precision_matmul_svd
@pytest.mark.parametrize("ranks", [(2, None), (None, 3), (2, 3), (4, 1)])
def test_svd_never_rebuilds_a_full_matrix(ranks):
    M, K, N = 9, 7, 5  # distinct sizes, so shapes identify matrices
    A, B = randn((M, K), 10), randn((K, N), 11)
    rank_A, rank_B = ranks
    with _ProductLog() as log:
        C = matmul_svd(A, B, rank_A=rank_A, rank_B=rank_B)
    forbidden = ({(M, K)} if rank_A else set()) | ({(K, N)} if rank_B else set())
    rebuilt = [c for c in log.calls if c[2] in forbidden and c[0] not in _NOT_ARITHMETIC]
    assert not rebuilt, f"a factored matrix was rebuilt: {rebuilt}"
    # and the matrix products cost no more than the best factored association order
    r, s = rank_A, rank_B
    if s is None:
        budget = r * K * N + M * r * N  # U_A @ (S_A * (Vh_A @ B))
    elif r is None:
        budget = M * K * s + M * s * N  # ((A @ U_B) * S_B) @ Vh_B
    else:
        budget = r * K * s + min(M * r * s + M * s * N, r * s * N + M * r * N)
    flops = sum(
        math.prod(shapes[0]) * shapes[1][-1]
        for name, shapes, _ in log.calls
        if name in ("matmul", "__matmul__", "mm") and len(shapes) == 2
    )
    assert flops <= budget, (flops, budget, log.calls)
    A_r = _rebuild(A, rank_A)
    B_s = _rebuild(B, rank_B)
    assert_close(C, A_r @ B_s, 1e-12, 1e-12, f"svd ranks {ranks}")


def _rebuild(M, rank):
    """Best rank-r approximation from numpy's SVD (the independent reference)."""
    if rank is None:
        return M
    U, S, Vh = np.linalg.svd(M.numpy(), full_matrices=False)
    return torch.from_numpy((U[:, :rank] * S[:rank]) @ Vh[:rank])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_truncated_svd_factors(dtype):
    M = randn((8, 5), 12, dtype)
    U, S, Vh = truncated_svd(M, 3)
    assert (U.shape, S.shape, Vh.shape) == ((8, 3), (3,), (3, 5))
    assert U.dtype == S.dtype == Vh.dtype == dtype
    sigma = np.linalg.svd(M.double().numpy(), compute_uv=False)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 2e-2)
    assert_close(S, sigma[:3], tol, tol, "singular values")
    assert_close(U.double().T @ U.double(), torch.eye(3), 0, tol, "U orthonormal columns")
    assert_close(Vh.double() @ Vh.double().T, torch.eye(3), 0, tol, "Vh orthonormal rows")
    full = truncated_svd(M)
    assert full[1].shape == (5,)


# --- log_approx ----------------------------------------------------------------------------


@pytest.mark.precision_matmul_log_approx
@given(pair=matrix_pairs(max_dim=6, spread=3.0), f=st.integers(0, MAX_FRAC_BITS))
def test_log_approx_is_the_product_of_quantised_matrices(pair, f):
    # the shifts and the per-bin lookup are exact: only the exponent rounding approximates
    A, B = pair
    Aq, Bq = quantised(A, f), quantised(B, f)
    scale = (Aq.abs() @ Bq.abs()).max().item()
    C = matmul(A, B, method="log_approx", frac_bits=f)
    assert_close(C, Aq @ Bq, 0, 1e-12 * scale + 1e-300, f"log_approx f={f}")


@pytest.mark.precision_matmul_log_approx
@given(pair=matrix_pairs(max_dim=6, spread=2.0), f=st.integers(0, MAX_FRAC_BITS))
def test_log_approx_error_bound(pair, f):
    # each factor is off by a factor in [2**(-d), 2**d], d = 2**-(f+1), so each product by at
    # most 2**(2d) = 2**(2**-f): |C - A@B| <= (2**(2**-f) - 1) * (|A| @ |B|)
    A, B = pair
    bound = (2 ** (2.0**-f) - 1) * (A.abs() @ B.abs())
    C = matmul_log_approx(A, B, frac_bits=f)
    excess = ((C - exact(A, B)).abs() - bound).max().item()
    assert excess <= 1e-12 * (A.abs() @ B.abs()).max().item(), f"f={f}: bound exceeded by {excess}"


@pytest.mark.precision_matmul_log_approx
def test_log_approx_error_shrinks_as_frac_bits_grows():
    A, B = randn((16, 16), 13), randn((16, 16), 14)
    A[A.abs() < 0.2] = 0.0
    errors = [
        relative_error(matmul(A, B, method="log_approx", frac_bits=f), exact(A, B))
        for f in (0, 2, 4, 8)
    ]
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-2, errors


@pytest.mark.precision_matmul_log_approx
def test_log_approx_default_frac_bits_is_4():
    A, B = randn((5, 4), 15), randn((4, 3), 16)
    assert torch.equal(matmul(A, B, method="log_approx"), matmul_log_approx(A, B, frac_bits=4))
    assert torch.equal(matmul_log_approx(A, B), matmul_log_approx(A, B, 4))


@pytest.mark.precision_matmul_log_approx
def test_log_approx_on_large_matrices_in_blocks():
    A, B = randn((130, 90), 17), randn((90, 100), 18)
    f = 6
    assert_close(matmul_log_approx(A, B, f), quantised(A, f) @ quantised(B, f), 1e-12, 1e-10, "")


# --- dtypes -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("method", with_marks(METHODS))
def test_output_keeps_dtype(method, dtype):
    A, B = randn((6, 5), 19, dtype), randn((5, 4), 20, dtype)
    options = {"frac_bits": 10} if method == "log_approx" else {}
    C = matmul(A, B, method=method, **options)
    assert C.dtype == dtype and C.shape == (6, 4)
    error = relative_error(C, exact(A, B))
    assert error < max(HALF_TOL[dtype], 1e-3 if method == "log_approx" else 0), (method, error)


@pytest.mark.parametrize("method", ["naive", "torch"])
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
@given(pair=matrix_pairs(zeros=False), seed=seeds)
def test_integer_inputs_wrap_around(method, dtype, pair, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randint(-128, 128, pair[0].shape, generator=g)
    B = torch.randint(-128, 128, pair[1].shape, generator=g)
    exact_int = A @ B  # int64, no overflow at these sizes
    bits = torch.iinfo(dtype).bits
    half = 2 ** (bits - 1)
    wrapped = exact_int if bits == 64 else (exact_int + half) % (2 * half) - half
    C = matmul(A.to(dtype), B.to(dtype), method=method)
    assert C.dtype == dtype
    assert torch.equal(C.long(), wrapped), f"{method} {dtype}: not exact modulo 2**{bits}"


#: what each method must run, written out by hand (not derived from METHODS)
DISPATCH = {
    "naive": ("matmul_naive", {}),
    "svd": ("matmul_svd", {}),
    "log": ("matmul_log", {}),
    "log_approx": ("matmul_log_approx", {"frac_bits": 10}),
    "torch": (None, {}),  # A @ B itself: none of the course kernels runs
}


def test_every_method_is_dispatched(monkeypatch):
    """Each method runs its own kernel, with the options it was given."""
    import dnnkernels.matmul as module

    assert set(METHODS) == set(DISPATCH), f"METHODS {METHODS} != the methods tested here"
    kernels = {kernel for kernel, _ in DISPATCH.values() if kernel}
    calls = spy_on(monkeypatch, module, kernels)
    A, B = randn((3, 4), 21), randn((4, 2), 22)
    for method, (kernel, params) in DISPATCH.items():
        calls.clear()
        y = matmul(A, B, method=method, **params)
        check_dispatch(calls, method, kernel, params)
        tol = 1e-3 if method == "log_approx" else 1e-12
        assert_close(y, exact(A, B), tol, tol, method)


# --- bad input ----------------------------------------------------------------------------

A34, B45 = torch.zeros(3, 4), torch.zeros(4, 5)
NAN_A = torch.full((3, 4), float("nan"))
INF_B = torch.full((4, 5), float("inf"))

BAD_CALLS = [
    # (id, args, kwargs, exception, fragments the message must contain)
    ("A-not-tensor", ([[1.0]], B45), {}, TypeError, ["A: got list", "expected a torch.Tensor"]),
    ("B-not-tensor", (A34, np.zeros((4, 5))), {}, TypeError, ["B: got ndarray", "torch.Tensor"]),
    ("A-1d", (torch.zeros(4), B45), {}, ValueError, ["A: got", "(4,)", "(1-D), expected 2-D"]),
    ("B-3d", (A34, torch.zeros(1, 4, 5)), {}, ValueError, ["B: got", "(3-D), expected 2-D"]),
    (
        "inner-mismatch",
        (A34, torch.zeros(3, 5)),
        {},
        ValueError,
        ["B: got tensor of shape (3, 5)", "expected 4 rows", "4 columns of A"],
    ),
    ("empty", (torch.zeros(3, 0), torch.zeros(0, 5)), {}, ValueError, ["A: got", "size 0"]),
    ("method", (A34, B45), {"method": "strassen"}, ValueError, ["method: got 'strassen'", "'svd'"]),
    (
        "dtype-mismatch",
        (A34, B45.double()),
        {},
        TypeError,
        ["B: got dtype torch.float64", "expected the dtype of A (torch.float32)"],
    ),
    (
        "int-svd",
        (A34.long(), B45.long()),
        {"method": "svd"},
        TypeError,
        ["A: got dtype torch.int64", "for method 'svd'"],
    ),
    (
        "int-log",
        (A34.int(), B45.int()),
        {"method": "log"},
        TypeError,
        ["A: got dtype torch.int32", "for method 'log'"],
    ),
    (
        "bool",
        (A34.bool(), B45.bool()),
        {},
        TypeError,
        ["A: got dtype torch.bool", "expected one of float16"],
    ),
    (
        "rank-0",
        (A34, B45),
        {"method": "svd", "rank_A": 0},
        ValueError,
        ["rank_A: got 0", "expected an int in [1, 3]"],
    ),
    (
        "rank-too-large",
        (A34, B45),
        {"method": "svd", "rank_B": 5},
        ValueError,
        ["rank_B: got 5", "expected an int in [1, 4]"],
    ),
    (
        "rank-float",
        (A34, B45),
        {"method": "svd", "rank_A": 2.0},
        TypeError,
        ["rank_A: got float 2.0", "expected an int"],
    ),
    (
        "rank-other-method",
        (A34, B45),
        {"method": "log", "rank_A": 2},
        ValueError,
        ["rank_A: got 2", "expected None for method 'log'"],
    ),
    (
        "frac-bits-range",
        (A34, B45),
        {"method": "log_approx", "frac_bits": 11},
        ValueError,
        ["frac_bits: got 11", "expected an int in [0, 10]"],
    ),
    (
        "frac-bits-negative",
        (A34, B45),
        {"method": "log_approx", "frac_bits": -1},
        ValueError,
        ["frac_bits: got -1", "[0, 10]"],
    ),
    (
        "frac-bits-type",
        (A34, B45),
        {"method": "log_approx", "frac_bits": "4"},
        TypeError,
        ["frac_bits: got str '4'", "expected an int"],
    ),
    (
        "option-other-method",
        (A34, B45),
        {"method": "log", "frac_bits": 4},
        TypeError,
        ["options: got frac_bits", "method 'log': none"],
    ),
    (
        "unknown-option",
        (A34, B45),
        {"method": "log_approx", "bits": 4},
        TypeError,
        ["options: got bits", "method 'log_approx': frac_bits"],
    ),
    (
        "nan-svd",
        (NAN_A, B45),
        {"method": "svd", "rank_A": 1},
        ValueError,
        ["A: got", "12 NaN or inf entries", "expected finite values"],
    ),
    (
        "inf-log",
        (A34, INF_B),
        {"method": "log"},
        ValueError,
        ["B: got", "20 NaN or inf entries", "expected finite values"],
    ),
    (
        "nan-log-approx",
        (NAN_A, B45),
        {"method": "log_approx"},
        ValueError,
        ["A: got", "NaN or inf", "expected finite values"],
    ),
]


@pytest.mark.parametrize(
    "args, kwargs, error, fragments",
    [pytest.param(*case[1:], id=case[0]) for case in BAD_CALLS],
)
def test_bad_input_is_reported(args, kwargs, error, fragments):
    with pytest.raises(error) as info:
        matmul(*args, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in message {message!r}"


@pytest.mark.parametrize("method", ["naive", "torch"])
def test_nan_propagates_in_direct_methods(method):
    A = torch.zeros(2, 2)
    A[0, 0] = float("nan")
    C = matmul(A, torch.ones(2, 2), method=method)
    assert torch.isnan(C[0]).all() and not torch.isnan(C[1]).any()


@pytest.mark.parametrize(
    "args, error, fragment",
    [
        ((np.zeros((3, 3)), 1), TypeError, "M: got ndarray"),
        ((torch.zeros(3), 1), ValueError, "M: got tensor of shape (3,)"),
        ((torch.zeros(3, 3, dtype=torch.int32), 1), TypeError, "M: got dtype torch.int32"),
        ((torch.full((3, 3), float("inf")), 1), ValueError, "9 NaN or inf entries"),
        ((torch.zeros(3, 4), 0), ValueError, "rank: got 0, expected an int in [1, 3]"),
        ((torch.zeros(3, 4), 4), ValueError, "rank: got 4, expected an int in [1, 3]"),
        ((torch.zeros(3, 4), 1.5), TypeError, "rank: got float 1.5, expected an int"),
    ],
)
def test_truncated_svd_bad_input(args, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        truncated_svd(*args)
