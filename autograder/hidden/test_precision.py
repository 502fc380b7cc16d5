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
    truncated,
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


def wrap_to(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int64 values modulo 2**bits of ``dtype``, in two's complement (torch's cast)."""
    return values.to(torch.int64).to(dtype)


def int_conv_ref(x, k, b=None, stride=1, padding=0):
    """conv2d in exact int64 arithmetic (wrapping modulo 2**64, like torch's integers)."""
    x, k = x.to(torch.int64), k.to(torch.int64)
    kh, kw = k.shape[2:]
    xp = F.pad(x, (padding, padding, padding, padding))
    windows = xp.unfold(2, kh, stride).unfold(3, kw, stride)  # (N, C, H', W', kh, kw)
    y = (windows[:, None] * k[None, :, :, None, None]).sum(dim=(2, 5, 6))
    return y if b is None else y + b.to(torch.int64).view(1, -1, 1, 1)


def expect_conv_values(student, name: str, cases) -> None:
    """``name`` on each case ``(conv_inputs shape, seed, bias?, keywords, what)`` against
    :func:`conv_ref` in float64."""
    for shape, seed, bias, kwargs, what in cases:
        x, k, b = conv_inputs(*shape, seed=seed, bias=bias)
        got = student.call(name, x, k, b, **kwargs)
        ref = conv_ref(x, k, b, kwargs.get("stride", 1), kwargs.get("padding", 0))
        expect_close(got, ref, dtype=torch.float64, what=what, **F64)


# ------------------------------------------------------------------------------ im2col


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_values(student):
    """im2col: float64 values, also without bias, with 1x1 kernels and a 1x1 output"""
    expect_conv_values(
        student,
        "conv2d_im2col",
        [
            ((2, 3, 10, 9, 5, 3, 3), 7301, True, {}, "a float64 batch"),
            ((1, 4, 7, 5, 2, 1, 1), 7331, False, {}, "1x1 kernel, no bias"),
            (
                (3, 1, 5, 6, 2, 7, 8),
                7341,
                True,
                {"stride": 1, "padding": 1},
                "a kernel as large as the padded input (1x1 output)",
            ),
        ],
    )


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_stride_padding(student):
    """im2col: strides above 1 with padding, non-square kernels, odd and non-square inputs"""
    for stride, padding, (kh, kw), seed in [(2, 1, (2, 3), 7311), (3, 2, (4, 2), 7321)]:
        x, k, b = conv_inputs(2, 2, 11, 8, 3, kh, kw, seed=seed)
        got = student.call("conv2d_im2col", x, k, b, stride=stride, padding=padding)
        expect_close(
            got,
            conv_ref(x, k, b, stride, padding),
            dtype=torch.float64,
            what="a strided, padded case with a non-square kernel",
            **F64,
        )


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_float_dtypes(student):
    """im2col: float32, float16 and bfloat16 inputs give results of their own dtype"""
    for dtype, tol in [(torch.float32, 1e-4), (torch.float16, 5e-3), (torch.bfloat16, 3e-2)]:
        x, k, b = conv_inputs(2, 3, 9, 12, 4, 3, 3, seed=7351, dtype=dtype)
        got = student.call("conv2d_im2col", x, k, b, stride=2, padding=1)
        expect_close(got, conv_ref(x, k, b, 2, 1), dtype=dtype, what=str(dtype), rtol=tol, atol=tol)


@pytest.mark.precision_im2col
@pytest.mark.points(1)
def test_im2col_integer_wraparound(student):
    """im2col: integer dtypes exact, results that overflow wrap modulo 2**bits"""
    # small values (exact, no overflow), then products large enough that the sums of
    # 2 x 3 x 2 = 12 products leave the dtype's range and must wrap (int32, int16, int8),
    # and int64 sums beyond 2**53 (not exact in float64)
    cases = [
        (torch.int32, 10, "int32 without overflow"),
        (torch.int32, 2**15, "int32 results that wrap around"),
        (torch.int16, 2**8, "int16 results that wrap around"),
        (torch.int8, 2**4, "int8 results that wrap around"),
        (torch.int64, 2**31, "int64 results beyond 2**53"),
    ]
    for i, (dtype, high, what) in enumerate(cases):
        x = randint(-high, high, 2, 2, 7, 6, seed=7361 + 3 * i).to(dtype)
        k = randint(-high, high, 3, 2, 3, 2, seed=7362 + 3 * i).to(dtype)
        b = randint(-high, high, 3, seed=7363 + 3 * i).to(dtype)
        got = student.call("conv2d_im2col", x, k, b, stride=1, padding=1)
        expect_equal(got, wrap_to(int_conv_ref(x, k, b, 1, 1), dtype), what=what)


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
    """Winograd: the smallest input (one output pixel), non-square inputs, no bias"""
    for m, (h, w), seed, what in [
        (2, (3, 3), 7421, "F(2x2, 3x3), the smallest input"),
        (4, (3, 3), 7431, "F(4x4, 3x3), the smallest input"),
        (2, (4, 13), 7441, "F(2x2, 3x3), a wide input"),
        (4, (14, 5), 7451, "F(4x4, 3x3), a tall input"),
    ]:
        x, k, _ = conv_inputs(1, 2, h, w, 3, 3, 3, seed=seed, bias=False)
        got = student.call("conv2d_winograd", x, k, None, m=m)
        expect_close(got, conv_ref(x, k), dtype=torch.float64, what=what, rtol=1e-8, atol=1e-8)


@pytest.mark.precision_winograd
@pytest.mark.points(1)
def test_winograd_low_precision(student):
    """Winograd: float32, float16 and bfloat16 in, the same dtype out, to its accuracy"""
    cases = [
        (torch.float32, 2, 1e-4),
        (torch.float32, 4, 1e-3),
        (torch.float16, 2, 2e-2),
        (torch.float16, 4, 2e-1),
        (torch.bfloat16, 2, 2.5e-1),  # F(4x4, 3x3) is too inaccurate in bfloat16 to check
    ]
    for dtype, m, tol in cases:
        x, k, b = conv_inputs(2, 4, 10, 10, 3, 3, 3, seed=7461, dtype=dtype)
        got = student.call("conv2d_winograd", x, k, b, m=m)
        expect_close(
            got,
            conv_ref(x, k, b),
            dtype=dtype,
            what=f"F({m}x{m}, 3x3) in {dtype}",
            rtol=tol,
            atol=tol,
        )


# ------------------------------------------------------------------------------ fft


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_values(student):
    """FFT conv2d: float64 values, also without bias, with 1x1 kernels and a 1x1 output"""
    expect_conv_values(
        student,
        "conv2d_fft",
        [
            ((2, 3, 12, 10, 4, 3, 3), 7501, True, {}, "a float64 batch"),
            ((2, 3, 6, 7, 2, 1, 1), 7531, False, {}, "1x1 kernel, no bias"),
            ((1, 2, 6, 5, 3, 6, 5), 7541, True, {}, "a kernel as large as the input (1x1 output)"),
        ],
    )


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_large_kernels(student):
    """FFT conv2d: large non-square kernels on non-square inputs"""
    for (h, w), (kh, kw), seed in [((16, 13), (7, 5), 7511), ((20, 18), (9, 9), 7521)]:
        x, k, b = conv_inputs(1, 2, h, w, 3, kh, kw, seed=seed)
        got = student.call("conv2d_fft", x, k, b)
        expect_close(got, conv_ref(x, k, b), dtype=torch.float64, what="a large kernel", **F64)


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_float32(student):
    """FFT conv2d: float32 in, float32 out, to float32 accuracy"""
    x, k, b = conv_inputs(2, 3, 11, 12, 2, 5, 3, seed=7551, dtype=torch.float32)
    got = student.call("conv2d_fft", x, k, b)
    expect_close(got, conv_ref(x, k, b), dtype=torch.float32, rtol=1e-4, atol=1e-4)


@pytest.mark.precision_fft
@pytest.mark.points(1)
def test_fft_half_precision(student):
    """FFT conv2d: float16 and bfloat16 inputs (accepted by the docstring) keep their dtype"""
    for dtype, tol in [(torch.float16, 1e-2), (torch.bfloat16, 5e-2)]:
        x, k, b = conv_inputs(2, 3, 11, 12, 2, 5, 3, seed=7561, dtype=dtype)
        got = student.call("conv2d_fft", x, k, b)
        expect_close(got, conv_ref(x, k, b), dtype=dtype, what=str(dtype), rtol=tol, atol=tol)


# ------------------------------------------------------------------------------ matmul_svd


@pytest.mark.precision_matmul_svd
@pytest.mark.points(1)
def test_matmul_svd_full_rank(student):
    """matmul_svd: no ranks, and full ranks, equal A @ B"""
    A, B = randn(9, 14, seed=7601), randn(14, 6, seed=7602)
    expect_close(
        student.call("matmul_svd", A, B), A @ B, dtype=torch.float64, what="no ranks", **F64
    )
    got = student.call("matmul_svd", A, B, rank_A=9, rank_B=6)
    expect_close(got, A @ B, dtype=torch.float64, what="full ranks", **F64)


@pytest.mark.precision_matmul_svd
@pytest.mark.points(1)
def test_matmul_svd_one_factor(student):
    """matmul_svd: only A truncated, then only B truncated"""
    A, B = randn(12, 10, seed=7611), randn(10, 8, seed=7612)
    got = student.call("matmul_svd", A, B, rank_A=3)
    expect_close(got, truncated(A, 3) @ B, dtype=torch.float64, what="only A truncated", **F64)
    got = student.call("matmul_svd", A, B, rank_B=2)
    expect_close(got, A @ truncated(B, 2), dtype=torch.float64, what="only B truncated", **F64)


@pytest.mark.precision_matmul_svd
@pytest.mark.points(1)
def test_matmul_svd_both_factors(student):
    """matmul_svd: both truncated (both association orders), float32 and bfloat16 in/out"""
    for (m, k, n), (r, s), seed, what in [
        ((7, 12, 30), (2, 4), 7621, "both truncated, a wide product"),
        ((30, 12, 5), (4, 2), 7631, "both truncated, a tall product"),
    ]:
        A, B = randn(m, k, seed=seed), randn(k, n, seed=seed + 1)
        got = student.call("matmul_svd", A, B, rank_A=r, rank_B=s)
        expect_close(got, truncated(A, r) @ truncated(B, s), dtype=torch.float64, what=what, **F64)
    for dtype, tol in [(torch.float32, 1e-4), (torch.bfloat16, 1e-1)]:
        A = randn(8, 10, seed=7641, dtype=dtype)
        B = randn(10, 6, seed=7642, dtype=dtype)
        got = student.call("matmul_svd", A, B, rank_A=4, rank_B=5)
        expect_close(
            got,
            truncated(A, 4) @ truncated(B, 5),
            dtype=dtype,
            what=str(dtype),
            rtol=tol,
            atol=tol,
        )


# ------------------------------------------------------------------------------ matmul_log


@pytest.mark.precision_matmul_log
@pytest.mark.points(1)
def test_matmul_log_signs_and_zeros(student):
    """matmul_log: positive entries, negative entries and exact zeros (zero rows stay zero)"""
    A, B = randn(6, 9, seed=7701).abs() + 0.1, randn(9, 7, seed=7702).abs() + 0.1
    got = student.call("matmul_log", A, B)
    expect_close(got, A @ B, dtype=torch.float64, what="positive entries", **F64)
    A, B = randn(7, 8, seed=7711), randn(8, 5, seed=7712)
    A[2] = 0.0
    A[:, 3] = 0.0
    B[5, 1] = 0.0
    got = student.call("matmul_log", A, B)
    expect_close(got, A @ B, dtype=torch.float64, what="signs and zeros", **F64)
    if bool((got[2] != 0).any()):
        raise CheckFailed("output: the row of a zero row of A is not exactly zero")


@pytest.mark.precision_matmul_log
@pytest.mark.points(1)
def test_matmul_log_shapes_float32(student):
    """matmul_log: float32 in/out, a 1x1 product and a vector product"""
    A = randn(5, 11, seed=7721, dtype=torch.float32)
    B = randn(11, 4, seed=7722, dtype=torch.float32)
    got = student.call("matmul_log", A, B)
    expect_close(
        got, A.double() @ B.double(), dtype=torch.float32, what="float32", rtol=1e-4, atol=1e-4
    )
    a, b = randn(1, 1, seed=7723), randn(1, 1, seed=7724)
    expect_close(student.call("matmul_log", a, b), a @ b, dtype=torch.float64, what="1x1", **F64)
    a, b = randn(1, 13, seed=7725), randn(13, 1, seed=7726)
    expect_close(
        student.call("matmul_log", a, b), a @ b, dtype=torch.float64, what="row x column", **F64
    )


@pytest.mark.precision_matmul_log
@pytest.mark.points(1)
def test_matmul_log_blocks(student):
    """matmul_log: sizes that need several row blocks, and rows too long for one block"""
    # about 2**20 products per block: many rows of a small product make several blocks
    # (the last one partial); one row of a product with K * N > 2**20 is a block by itself
    for (m, k, n), seed, what in [
        ((70, 160, 120), 7731, "a product that needs several row blocks"),
        ((3, 1100, 1000), 7741, "rows with more products than one block holds"),
    ]:
        A, B = randn(m, k, seed=seed), randn(k, n, seed=seed + 1)
        got = student.call("matmul_log", A, B)
        expect_close(got, A @ B, dtype=torch.float64, what=what, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------ log_approx


def quantised(M: torch.Tensor, f: int) -> torch.Tensor:
    """sign(M) * 2**(round(2**f * log2|M|) / 2**f), zeros kept (the documented number system)."""
    M = M.double()
    e = torch.round(torch.log2(M.abs()) * 2**f)
    return torch.where(M != 0, torch.sign(M) * torch.exp2(e / 2**f), torch.zeros_like(M))


@pytest.mark.precision_matmul_log_approx
@pytest.mark.points(1)
def test_matmul_log_approx_values(student):
    """matmul_log_approx: equals the product of the quantised matrices (mixed signs)"""
    A, B = randn(9, 17, seed=7801), randn(17, 6, seed=7802)
    got = student.call("matmul_log_approx", A, B, frac_bits=4)
    Aq, Bq = quantised(A, 4), quantised(B, 4)
    scale = A.abs() @ B.abs()
    expect_close(
        got,
        Aq @ Bq,
        dtype=torch.float64,
        what="mixed signs",
        rtol=1e-9,
        atol=float(scale.max()) * 1e-12,
    )


@pytest.mark.precision_matmul_log_approx
@pytest.mark.points(1)
def test_matmul_log_approx_bits_and_zeros(student):
    """matmul_log_approx: no and many fraction bits, exact zeros, float32, row blocks"""
    A, B = randn(6, 12, seed=7811), randn(12, 5, seed=7812)
    A[1] = 0.0
    B[:, 2] = 0.0
    for f in (0, 8):
        got = student.call("matmul_log_approx", A, B, frac_bits=f)
        expect_close(
            got,
            quantised(A, f) @ quantised(B, f),
            dtype=torch.float64,
            what="no fraction bits" if f == 0 else "many fraction bits",
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
    # one row of a product with K * N > 2**20 products is a row block by itself
    A, B = randn(2, 1100, seed=7821), randn(1100, 1000, seed=7822)
    got = student.call("matmul_log_approx", A, B, frac_bits=3)
    expect_close(
        got,
        quantised(A, 3) @ quantised(B, 3),
        dtype=torch.float64,
        what="rows with more products than one block holds",
        rtol=1e-9,
        atol=1e-9,
    )
