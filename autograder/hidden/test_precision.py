"""Hidden checks of the precision assignment (never released to students).

Inputs are drawn here, from private seeds, and the expected values are computed here with
torch in float64 (``F.conv2d``, ``@``, ``torch.linalg.svd``); the student's functions run
in the sandboxed runner behind the ``student`` fixture.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.checking import (
    CheckFailed,
    expect_close,
    expect_equal,
    expect_tensor,
    randint,
    randn,
)

F64 = dict(rtol=1e-9, atol=1e-9)


def conv_inputs(n, c, h, w, o, kh, kw, seed, dtype=torch.float64, bias=True):
    x = randn(n, c, h, w, seed=seed, dtype=dtype)
    k = randn(o, c, kh, kw, seed=seed + 1, dtype=dtype)
    b = randn(o, seed=seed + 2, dtype=dtype) if bias else None
    return x, k, b


def conv_ref(x, k, b=None, stride=1, padding=0):
    """F.conv2d in float64 of the same inputs."""
    b64 = None if b is None else b.double()
    return F.conv2d(x.double(), k.double(), b64, stride=stride, padding=padding)


# ------------------------------------------------------------------------------ im2col


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_values(student):
    """im2col: values on a float64 batch (N=2, C=3, 3x3 kernels, bias)"""
    x, k, b = conv_inputs(2, 3, 10, 9, 5, 3, 3, seed=7301)
    got = student.call("conv2d_im2col", x, k, b)
    expect_close(got, conv_ref(x, k, b), dtype=torch.float64, **F64)


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_stride_padding(student):
    """im2col: strides 2 and 3, paddings 1 and 2, non-square kernels and odd sizes"""
    for stride, padding, (kh, kw), seed in [(2, 1, (2, 3), 7311), (3, 2, (4, 2), 7321)]:
        x, k, b = conv_inputs(2, 2, 11, 8, 3, kh, kw, seed=seed)
        got = student.call("conv2d_im2col", x, k, b, stride=stride, padding=padding)
        expect_close(
            got,
            conv_ref(x, k, b, stride, padding),
            dtype=torch.float64,
            what=f"stride={stride}, padding={padding}",
            **F64,
        )


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_edge_shapes(student):
    """im2col: no bias, 1x1 kernels, and a kernel as large as the padded input"""
    x, k, _ = conv_inputs(1, 4, 7, 5, 2, 1, 1, seed=7331, bias=False)
    got = student.call("conv2d_im2col", x, k, None)
    expect_close(got, conv_ref(x, k), dtype=torch.float64, what="1x1 kernel, b=None", **F64)
    x, k, b = conv_inputs(3, 1, 5, 6, 2, 7, 8, seed=7341)
    got = student.call("conv2d_im2col", x, k, b, stride=1, padding=1)
    expect_close(got, conv_ref(x, k, b, 1, 1), dtype=torch.float64, what="1x1 output", **F64)


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_dtypes(student):
    """im2col: float32 and int32 inputs keep their dtype (int32 results exact)"""
    x, k, b = conv_inputs(2, 3, 9, 12, 4, 3, 3, seed=7351, dtype=torch.float32)
    got = student.call("conv2d_im2col", x, k, b, stride=2, padding=1)
    expect_close(
        got, conv_ref(x, k, b, 2, 1), dtype=torch.float32, what="float32", rtol=1e-4, atol=1e-4
    )
    x = randint(-9, 10, 2, 2, 7, 6, seed=7361).to(torch.int32)
    k = randint(-9, 10, 3, 2, 3, 2, seed=7362).to(torch.int32)
    got = student.call("conv2d_im2col", x, k, None, stride=1, padding=1)
    expect_equal(got, conv_ref(x, k, None, 1, 1).round().to(torch.int32), what="int32")


# ------------------------------------------------------------------------------ winograd


@pytest.mark.precision_winograd
@pytest.mark.points(1)
def test_winograd_f2_values(student):
    """Winograd F(2x2, 3x3): float64 values on odd sizes (tiles that overhang the output)"""
    x, k, b = conv_inputs(2, 3, 11, 9, 4, 3, 3, seed=7401)
    got = student.call("conv2d_winograd", x, k, b, m=2)
    expect_close(got, conv_ref(x, k, b), dtype=torch.float64, **F64)


@pytest.mark.precision_winograd
@pytest.mark.points(1)
def test_winograd_f4_values(student):
    """Winograd F(4x4, 3x3): float64 values"""
    x, k, b = conv_inputs(2, 2, 13, 16, 3, 3, 3, seed=7411)
    got = student.call("conv2d_winograd", x, k, b, m=4)
    expect_close(got, conv_ref(x, k, b), dtype=torch.float64, rtol=1e-8, atol=1e-8)


@pytest.mark.precision_winograd
@pytest.mark.points(1)
def test_winograd_edge_shapes(student):
    """Winograd: smallest input (3x3 -> 1x1), non-square input, no bias, both tile sizes"""
    for m, (h, w), seed in [
        (2, (3, 3), 7421),
        (4, (3, 3), 7431),
        (2, (4, 13), 7441),
        (4, (14, 5), 7451),
    ]:
        x, k, _ = conv_inputs(1, 2, h, w, 3, 3, 3, seed=seed, bias=False)
        got = student.call("conv2d_winograd", x, k, None, m=m)
        expect_close(
            got,
            conv_ref(x, k),
            dtype=torch.float64,
            what=f"m={m}, {h}x{w} input",
            rtol=1e-8,
            atol=1e-8,
        )


@pytest.mark.precision_winograd
@pytest.mark.points(1)
def test_winograd_float32(student):
    """Winograd: float32 in, float32 out (transforms in float32), to float32 accuracy"""
    x, k, b = conv_inputs(2, 4, 10, 10, 3, 3, 3, seed=7461, dtype=torch.float32)
    for m, tol in [(2, 1e-4), (4, 1e-3)]:
        got = student.call("conv2d_winograd", x, k, b, m=m)
        expect_close(got, conv_ref(x, k, b), dtype=torch.float32, what=f"m={m}", rtol=tol, atol=tol)


# ------------------------------------------------------------------------------ fft


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_values(student):
    """FFT conv2d: float64 values, 3x3 kernels, bias"""
    x, k, b = conv_inputs(2, 3, 12, 10, 4, 3, 3, seed=7501)
    got = student.call("conv2d_fft", x, k, b)
    expect_close(got, conv_ref(x, k, b), dtype=torch.float64, **F64)


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_large_kernels(student):
    """FFT conv2d: large non-square kernels (7x5, 9x9) on non-square inputs"""
    for (h, w), (kh, kw), seed in [((16, 13), (7, 5), 7511), ((20, 18), (9, 9), 7521)]:
        x, k, b = conv_inputs(1, 2, h, w, 3, kh, kw, seed=seed)
        got = student.call("conv2d_fft", x, k, b)
        expect_close(got, conv_ref(x, k, b), dtype=torch.float64, what=f"{kh}x{kw} kernel", **F64)


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_edge_shapes(student):
    """FFT conv2d: no bias, 1x1 kernels, and a kernel as large as the input"""
    x, k, _ = conv_inputs(2, 3, 6, 7, 2, 1, 1, seed=7531, bias=False)
    got = student.call("conv2d_fft", x, k, None)
    expect_close(got, conv_ref(x, k), dtype=torch.float64, what="1x1 kernel, b=None", **F64)
    x, k, b = conv_inputs(1, 2, 6, 5, 3, 6, 5, seed=7541)
    got = student.call("conv2d_fft", x, k, b)
    expect_close(got, conv_ref(x, k, b), dtype=torch.float64, what="1x1 output", **F64)


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_float32(student):
    """FFT conv2d: float32 in, float32 out, to float32 accuracy"""
    x, k, b = conv_inputs(2, 3, 11, 12, 2, 5, 3, seed=7551, dtype=torch.float32)
    got = student.call("conv2d_fft", x, k, b)
    expect_close(got, conv_ref(x, k, b), dtype=torch.float32, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ matmul_svd


def truncated(M: torch.Tensor, r: int) -> torch.Tensor:
    """Best rank-r approximation of M, in float64."""
    U, S, Vh = torch.linalg.svd(M.double(), full_matrices=False)
    return (U[:, :r] * S[:r]) @ Vh[:r]


@pytest.mark.precision_matmul_svd
@pytest.mark.points(1)
def test_matmul_svd_full_rank(student):
    """matmul_svd: no ranks, and full ranks, equal A @ B"""
    A, B = randn(9, 14, seed=7601), randn(14, 6, seed=7602)
    expect_close(
        student.call("matmul_svd", A, B), A @ B, dtype=torch.float64, what="ranks None", **F64
    )
    got = student.call("matmul_svd", A, B, rank_A=9, rank_B=6)
    expect_close(got, A @ B, dtype=torch.float64, what="full ranks", **F64)


@pytest.mark.precision_matmul_svd
@pytest.mark.points(1)
def test_matmul_svd_one_factor(student):
    """matmul_svd: only A truncated, then only B truncated"""
    A, B = randn(12, 10, seed=7611), randn(10, 8, seed=7612)
    got = student.call("matmul_svd", A, B, rank_A=3)
    expect_close(got, truncated(A, 3) @ B, dtype=torch.float64, what="rank_A=3", **F64)
    got = student.call("matmul_svd", A, B, rank_B=2)
    expect_close(got, A @ truncated(B, 2), dtype=torch.float64, what="rank_B=2", **F64)


@pytest.mark.precision_matmul_svd
@pytest.mark.points(1)
def test_matmul_svd_both_factors(student):
    """matmul_svd: both truncated (both association orders), and float32 in/out"""
    for (m, k, n), (r, s), seed in [((7, 12, 30), (2, 4), 7621), ((30, 12, 5), (4, 2), 7631)]:
        A, B = randn(m, k, seed=seed), randn(k, n, seed=seed + 1)
        got = student.call("matmul_svd", A, B, rank_A=r, rank_B=s)
        expect_close(
            got,
            truncated(A, r) @ truncated(B, s),
            dtype=torch.float64,
            what=f"({m}x{k}) @ ({k}x{n}), ranks {r}, {s}",
            **F64,
        )
    A = randn(8, 10, seed=7641, dtype=torch.float32)
    B = randn(10, 6, seed=7642, dtype=torch.float32)
    got = student.call("matmul_svd", A, B, rank_A=4, rank_B=5)
    expect_close(
        got,
        truncated(A, 4) @ truncated(B, 5),
        dtype=torch.float32,
        what="float32",
        rtol=1e-4,
        atol=1e-4,
    )


# ------------------------------------------------------------------------------ matmul_log


@pytest.mark.precision_matmul_log
@pytest.mark.points(1)
def test_matmul_log_positive(student):
    """matmul_log: positive entries, float64"""
    A, B = randn(6, 9, seed=7701).abs() + 0.1, randn(9, 7, seed=7702).abs() + 0.1
    expect_close(student.call("matmul_log", A, B), A @ B, dtype=torch.float64, **F64)


@pytest.mark.precision_matmul_log
@pytest.mark.points(1)
def test_matmul_log_signs_and_zeros(student):
    """matmul_log: negative entries and exact zeros (a zero row gives exact zeros)"""
    A, B = randn(7, 8, seed=7711), randn(8, 5, seed=7712)
    A[2] = 0.0
    A[:, 3] = 0.0
    B[5, 1] = 0.0
    got = student.call("matmul_log", A, B)
    expect_close(got, A @ B, dtype=torch.float64, **F64)
    if bool((got[2] != 0).any()):
        raise CheckFailed("output: the row of a zero row of A is not exactly zero")


@pytest.mark.precision_matmul_log
@pytest.mark.points(1)
def test_matmul_log_shapes_float32(student):
    """matmul_log: float32 in/out, a 1x1 product and a vector product"""
    A = randn(5, 11, seed=7721, dtype=torch.float32)
    B = randn(11, 4, seed=7722, dtype=torch.float32)
    got = student.call("matmul_log", A, B)
    expect_close(got, A.double() @ B.double(), dtype=torch.float32, rtol=1e-4, atol=1e-4)
    a, b = randn(1, 1, seed=7723), randn(1, 1, seed=7724)
    expect_close(student.call("matmul_log", a, b), a @ b, dtype=torch.float64, what="1x1", **F64)
    a, b = randn(1, 13, seed=7725), randn(13, 1, seed=7726)
    expect_close(
        student.call("matmul_log", a, b), a @ b, dtype=torch.float64, what="row x column", **F64
    )


# ------------------------------------------------------------------------------ log_approx


def quantised(M: torch.Tensor, f: int) -> torch.Tensor:
    """sign(M) * 2**(round(2**f * log2|M|) / 2**f), zeros kept (the documented number system)."""
    M = M.double()
    e = torch.round(torch.log2(M.abs()) * 2**f)
    return torch.where(M != 0, torch.sign(M) * torch.exp2(e / 2**f), torch.zeros_like(M))


@pytest.mark.precision_matmul_log_approx
@pytest.mark.points(1)
def test_matmul_log_approx_values(student):
    """matmul_log_approx: equals the product of the quantised matrices (f = 4, mixed signs)"""
    A, B = randn(9, 17, seed=7801), randn(17, 6, seed=7802)
    got = student.call("matmul_log_approx", A, B, frac_bits=4)
    Aq, Bq = quantised(A, 4), quantised(B, 4)
    scale = A.abs() @ B.abs()
    expect_close(got, Aq @ Bq, dtype=torch.float64, rtol=1e-9, atol=float(scale.max()) * 1e-12)


@pytest.mark.precision_matmul_log_approx
@pytest.mark.points(1)
def test_matmul_log_approx_bits_and_zeros(student):
    """matmul_log_approx: f = 0 and f = 8, exact zeros, float32 in/out"""
    A, B = randn(6, 12, seed=7811), randn(12, 5, seed=7812)
    A[1] = 0.0
    B[:, 2] = 0.0
    for f in (0, 8):
        got = student.call("matmul_log_approx", A, B, frac_bits=f)
        expect_close(
            got,
            quantised(A, f) @ quantised(B, f),
            dtype=torch.float64,
            what=f"frac_bits={f}",
            rtol=1e-9,
            atol=1e-12,
        )
    A32, B32 = A.float(), B.float()
    got = student.call("matmul_log_approx", A32, B32, frac_bits=5)
    expect_tensor(got, (6, 5), torch.float32, what="float32")
    expect_close(
        got,
        quantised(A32, 5) @ quantised(B32, 5),
        dtype=torch.float32,
        what="float32",
        rtol=1e-5,
        atol=1e-5,
    )
