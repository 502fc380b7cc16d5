"""Tests of dnnkernels.conv2d: every method against torch.nn.functional.conv2d.

The reference is ``F.conv2d`` in float64 on the same (already rounded) inputs. Tolerances
``(rtol, atol)`` per method and dtype, for Gaussian inputs with at most 3 channels and
kernels up to 7x7 (outputs of magnitude up to about 30):

==========  ==================  ==================  =====================================
method      float64             float32             why
==========  ==================  ==================  =====================================
naive       1e-12, 1e-12        1e-5, 2e-5          direct sums
im2col      1e-12, 1e-12        1e-5, 2e-5          direct sums (one GEMM)
winograd    1e-10, 1e-10        1e-5, 5e-5          transforms add a few roundings
winograd4   1e-10, 1e-10        1e-4, 5e-4          F(4x4, 3x3) entries up to 8 amplify them
fft         1e-10, 1e-10        1e-5, 1e-4          errors spread over the whole image
==========  ==================  ==================  =====================================

Observed worst cases over 200 random examples were below a tenth of these bounds.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close, check_dispatch, randn, relative_error, spy_on
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_cases, seeds

from dnnkernels.conv2d import (
    METHODS,
    conv2d,
    conv2d_fft,
    conv2d_im2col,
    conv2d_winograd,
    winograd_transforms,
)

MARKS = {
    "im2col": pytest.mark.precision_im2col,
    "winograd": pytest.mark.precision_winograd,
    "winograd4": pytest.mark.precision_winograd,
    "fft": pytest.mark.precision_fft,
}

TOL = {
    ("naive", torch.float64): (1e-12, 1e-12),
    ("im2col", torch.float64): (1e-12, 1e-12),
    ("torch", torch.float64): (1e-12, 1e-12),
    ("winograd", torch.float64): (1e-10, 1e-10),
    ("winograd4", torch.float64): (1e-10, 1e-10),
    ("fft", torch.float64): (1e-10, 1e-10),
    ("naive", torch.float32): (1e-5, 2e-5),
    ("im2col", torch.float32): (1e-5, 2e-5),
    ("torch", torch.float32): (1e-5, 2e-5),
    ("winograd", torch.float32): (1e-5, 5e-5),
    ("winograd4", torch.float32): (1e-4, 5e-4),
    ("fft", torch.float32): (1e-5, 1e-4),
}

# relative Frobenius error bound in half precision (unit roundoff 2**-11 and 2**-8)
HALF_TOL = {torch.float16: 1e-2, torch.bfloat16: 5e-2}


def with_marks(methods):
    """pytest.param for each method, marked with the task marker of its exercise."""
    return [pytest.param(m, marks=MARKS[m]) if m in MARKS else m for m in methods]


def reference(x, k, b=None, stride=1, padding=0):
    """F.conv2d in float64 on the given (possibly rounded) inputs."""
    b64 = None if b is None else b.double()
    return F.conv2d(x.double(), k.double(), b64, stride=stride, padding=padding)


def check_against_torch(method, case, seed, dtype):
    x, k, b = case.tensors(seed, dtype)
    y = conv2d(x, k, b, method=method, stride=case.stride, padding=case.padding)
    assert y.dtype == dtype
    assert tuple(y.shape) == case.out_shape
    rtol, atol = TOL[method, dtype]
    expected = reference(x, k, b, case.stride, case.padding)
    assert_close(y, expected, rtol, atol, f"conv2d method={method!r} {case}")


# --- hand-computed cases ------------------------------------------------------------------

X3 = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
K2 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("method", with_marks(["naive", "torch", "im2col", "fft"]))
def test_hand_computed_3x3_input_2x2_kernel(method):
    # y[0,0] = 1*1 + 2*2 + 4*3 + 5*4 = 37 (a convolution would flip k and give 23)
    expected = torch.tensor([[37.0, 47.0], [67.0, 77.0]])
    assert_close(conv2d(X3, K2, method=method), expected, 0, 1e-5, method)
    assert_close(conv2d(X3, K2, 1.0, method=method), expected + 1, 0, 1e-5, f"{method}, b=1")


@pytest.mark.parametrize("method", with_marks(["naive", "torch", "im2col"]))
def test_hand_computed_stride_2_padding_1(method):
    # padded 5x5 input, windows at rows/cols 0 and 2:
    # [[0,0],[0,1]]·K = 4, [[0,0],[2,3]]·K = 18, [[0,4],[0,7]]·K = 36, [[5,6],[8,9]]·K = 77
    expected = torch.tensor([[4.0, 18.0], [36.0, 77.0]])
    y = conv2d(X3, K2, method=method, stride=2, padding=1)
    assert_close(y, expected, 0, 1e-5, method)


@pytest.mark.parametrize("method", with_marks(METHODS))
def test_hand_computed_3x3_kernel(method):
    # sums of the 3x3 windows of [[0..3], [4..7], [8..11], [12..15]]
    x = torch.arange(16.0).reshape(4, 4)
    expected = torch.tensor([[45.0, 54.0], [81.0, 90.0]])
    assert_close(conv2d(x, torch.ones(3, 3), method=method), expected, 0, 1e-4, method)


# --- Winograd transforms ------------------------------------------------------------------


@pytest.mark.precision_winograd
@pytest.mark.parametrize("m", [2, 4])
def test_winograd_transforms_compute_1d_correlation(m):
    AT, G, BT = winograd_transforms(m, torch.float64)
    assert (AT.shape, G.shape, BT.shape) == ((m, m + 2), (m + 2, 3), (m + 2, m + 2))
    for seed in range(5):
        d, g = randn((m + 2,), seed), randn((3,), 100 + seed)
        expected = torch.stack([(d[i : i + 3] * g).sum() for i in range(m)])
        assert_close(AT @ ((G @ g) * (BT @ d)), expected, 1e-13, 1e-13, f"F({m}, 3) 1-D")
        # nested: the 2-D tile formula
        d2, g2 = randn((m + 2, m + 2), seed), randn((3, 3), 100 + seed)
        y2 = AT @ ((G @ g2 @ G.T) * (BT @ d2 @ BT.T)) @ AT.T
        expected2 = F.conv2d(d2[None, None], g2[None, None])[0, 0]
        assert_close(y2, expected2, 1e-12, 1e-12, f"F({m}x{m}, 3x3) tile")


@pytest.mark.precision_winograd
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_winograd_transforms_dtype(dtype):
    for m in (2, 4):
        exact = winograd_transforms(m)
        for T, T64 in zip(winograd_transforms(m, dtype), exact, strict=True):
            assert T.dtype == dtype
            assert torch.equal(T, T64.to(dtype))


# --- every method against torch (hypothesis) ----------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", with_marks(["naive", "im2col", "torch"]))
@given(case=conv_cases(), seed=seeds)
def test_direct_methods_match_torch(method, dtype, case, seed):
    check_against_torch(method, case, seed, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", with_marks(["winograd", "winograd4"]))
@given(case=conv_cases(kernel_sizes=(3, 3), max_stride=1, max_size=13), seed=seeds)
def test_winograd_matches_torch(method, dtype, case, seed):
    # any size, odd ones included (tiles padded and cropped), padding by zero-padding x
    check_against_torch(method, case, seed, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.precision_fft
@given(case=conv_cases(kernel_sizes=(1, 7), max_stride=1, max_size=13), seed=seeds)
def test_fft_matches_torch(dtype, case, seed):
    check_against_torch("fft", case, seed, dtype)


@pytest.mark.precision_im2col
@given(case=conv_cases(max_size=7), seed=seeds)
def test_naive_im2col_and_torch_agree_with_each_other(case, seed):
    x, k, b = case.tensors(seed, torch.float32)
    kwargs = dict(stride=case.stride, padding=case.padding)
    naive = conv2d(x, k, b, method="naive", **kwargs)
    im2col = conv2d(x, k, b, method="im2col", **kwargs)
    torch_ = conv2d(x, k, b, method="torch", **kwargs)
    assert_close(im2col, naive, 1e-5, 2e-5, "im2col against naive")
    assert_close(torch_, naive, 1e-5, 2e-5, "torch against naive")


# --- the exercise functions called directly (the signatures students implement) ------------


@pytest.mark.precision_im2col
@given(case=conv_cases(), seed=seeds)
def test_exercise_conv2d_im2col(case, seed):
    x, k, b = case.tensors(seed)
    y = conv2d_im2col(x, k, b, stride=case.stride, padding=case.padding)
    assert_close(y, reference(x, k, b, case.stride, case.padding), 1e-12, 1e-12, "im2col")


@pytest.mark.precision_winograd
@pytest.mark.parametrize("m", [2, 4])
@given(case=conv_cases(kernel_sizes=(3, 3), max_stride=1, max_padding=0, max_size=13), seed=seeds)
def test_exercise_conv2d_winograd(m, case, seed):
    x, k, b = case.tensors(seed)
    assert_close(conv2d_winograd(x, k, b, m=m), reference(x, k, b), 1e-10, 1e-10, f"m={m}")


@pytest.mark.precision_fft
@given(case=conv_cases(kernel_sizes=(1, 7), max_stride=1, max_padding=0, max_size=13), seed=seeds)
def test_exercise_conv2d_fft(case, seed):
    x, k, b = case.tensors(seed)
    assert_close(conv2d_fft(x, k, b), reference(x, k, b), 1e-10, 1e-10, "fft")


@pytest.mark.precision_fft
def test_fft_large_kernel_on_large_image():
    x, k = randn((1, 2, 40, 33), 1), randn((3, 2, 17, 11), 2)
    assert_close(conv2d(x, k, method="fft"), reference(x, k), 1e-10, 1e-10, "fft 17x11")


# --- forms, dtypes ------------------------------------------------------------------------


@pytest.mark.parametrize("method", with_marks(METHODS))
@pytest.mark.parametrize(
    "bias",
    [None, 0.5, torch.tensor(0.5, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)],
    ids=["none", "float", "0-d", "(1,)"],
)
def test_single_channel_form(method, bias):
    x, k = randn((7, 6), 3), randn((3, 3), 4)
    y = conv2d(x, k, bias, method=method, padding=1)
    b = None if bias is None else torch.tensor([0.5], dtype=torch.float64)
    expected = F.conv2d(x[None, None], k[None, None], b, padding=1)[0, 0]
    assert y.shape == (7, 6)
    assert_close(y, expected, 1e-10, 1e-10, f"single-channel {method}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("method", with_marks(METHODS))
def test_output_keeps_dtype(method, dtype):
    x, k, b = randn((2, 3, 9, 8), 5, dtype), randn((4, 3, 3, 3), 6, dtype), randn((4,), 7, dtype)
    y = conv2d(x, k, b, method=method, padding=1)
    assert y.dtype == dtype and y.shape == (2, 4, 9, 8)
    error = relative_error(y, reference(x, k, b, padding=1))
    assert error < HALF_TOL.get(dtype, 1e-5), f"{method} in {dtype}: relative error {error:.2e}"


@pytest.mark.parametrize("method", with_marks(["naive", "torch", "im2col"]))
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
@given(case=conv_cases(max_size=6), seed=seeds)
def test_integer_inputs_wrap_around(method, dtype, case, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-128, 128, (case.n, case.c, case.h, case.w), generator=g)
    k = torch.randint(-128, 128, (case.o, case.c, case.kh, case.kw), generator=g)
    b = torch.randint(-128, 128, (case.o,), generator=g) if case.bias else None
    kwargs = dict(stride=case.stride, padding=case.padding)
    exact = reference(x, k, b, **kwargs).round().long()  # exact: |y| < 2**53
    bits = torch.iinfo(dtype).bits
    half = 2 ** (bits - 1)
    wrapped = exact if bits == 64 else (exact + half) % (2 * half) - half
    y = conv2d(
        x.to(dtype), k.to(dtype), None if b is None else b.to(dtype), method=method, **kwargs
    )
    assert y.dtype == dtype
    assert torch.equal(y.long(), wrapped), f"{method} {dtype}: not exact modulo 2**{bits}"


# --- bad input ----------------------------------------------------------------------------

x4, k4, b4 = torch.zeros(2, 3, 6, 6), torch.zeros(4, 3, 3, 3), torch.zeros(4)
x2, k2 = torch.zeros(5, 5), torch.zeros(3, 3)
NAN_X = torch.full((1, 1, 5, 5), float("nan"))
INF_K = torch.full((1, 1, 3, 3), float("inf"))

BAD_CALLS = [
    # (id, args, kwargs, exception, fragments the message must contain)
    ("x-not-tensor", ([[1.0]], k2), {}, TypeError, ["x: got list", "expected a torch.Tensor"]),
    ("k-not-tensor", (x2, 3.0), {}, TypeError, ["k: got float 3.0", "expected a torch.Tensor"]),
    (
        "x-3d",
        (torch.zeros(3, 5, 5), k2),
        {},
        ValueError,
        ["x: got", "(3-D)", "expected 2-D or 4-D"],
    ),
    ("k-ndim", (x4, k2), {}, ValueError, ["k: got", "(2-D)", "expected 4-D like x"]),
    ("k-ndim-single", (x2, k4), {}, ValueError, ["k: got", "(4-D)", "expected 2-D like x"]),
    (
        "channels",
        (x4, torch.zeros(4, 2, 3, 3)),
        {},
        ValueError,
        ["k: got", "(4, 2, 3, 3)", "2 input channels", "expected 3 input channels"],
    ),
    (
        "bias-shape",
        (x4, k4, torch.zeros(3)),
        {},
        ValueError,
        ["b: got", "(3,)", "expected shape (4,)"],
    ),
    ("bias-single", (x2, k2, torch.zeros(2)), {}, ValueError, ["b: got", "(2,)", "shape (1,)"]),
    ("bias-type", (x4, k4, [0.0] * 4), {}, TypeError, ["b: got list", "expected None or a tensor"]),
    ("bias-number-batched", (x4, k4, 1.0), {}, TypeError, ["b: got float 1.0", "shape (4,)"]),
    (
        "kernel-too-large",
        (x2, torch.zeros(6, 4)),
        {},
        ValueError,
        ["k: got kernel of size 6x4", "expected at most the padded input size 5x5"],
    ),
    (
        "kernel-too-large-padded",
        (x2, torch.zeros(8, 3)),
        {"padding": 1},
        ValueError,
        ["k: got kernel of size 8x3", "7x7", "padding=1"],
    ),
    (
        "stride-0",
        (x2, k2),
        {"stride": 0},
        ValueError,
        ["stride: got 0", "expected an int in [1, inf]"],
    ),
    (
        "stride-float",
        (x2, k2),
        {"stride": 1.5},
        TypeError,
        ["stride: got float 1.5", "expected an int"],
    ),
    ("padding-neg", (x2, k2), {"padding": -1}, ValueError, ["padding: got -1", "[0, inf]"]),
    ("method", (x2, k2), {"method": "fast"}, ValueError, ["method: got 'fast'", "'im2col'"]),
    (
        "dtype-mismatch",
        (x2, k2.double()),
        {},
        TypeError,
        ["k: got dtype torch.float64", "expected the dtype of x (torch.float32)"],
    ),
    (
        "bias-dtype",
        (x4, k4, b4.double()),
        {},
        TypeError,
        ["b: got dtype torch.float64", "expected the dtype of x"],
    ),
    (
        "complex",
        (x2.to(torch.complex64), k2.to(torch.complex64)),
        {},
        TypeError,
        ["x: got dtype torch.complex64", "expected one of float16"],
    ),
    (
        "int-winograd",
        (x2.long(), k2.long()),
        {"method": "winograd"},
        TypeError,
        ["x: got dtype torch.int64", "for method 'winograd'"],
    ),
    (
        "int-fft",
        (x2.to(torch.int32), k2.to(torch.int32)),
        {"method": "fft"},
        TypeError,
        ["x: got dtype torch.int32", "for method 'fft'"],
    ),
    ("float-bias-int-x", (x2.long(), k2.long(), 0.5), {}, TypeError, ["b: got float 0.5", "int"]),
    (
        "winograd-stride",
        (x2, k2),
        {"method": "winograd", "stride": 2},
        ValueError,
        ["stride: got 2", "expected 1 for method 'winograd'"],
    ),
    (
        "fft-stride",
        (x2, k2),
        {"method": "fft", "stride": 3},
        ValueError,
        ["stride: got 3", "expected 1 for method 'fft'"],
    ),
    (
        "winograd-kernel",
        (x2, torch.zeros(2, 3)),
        {"method": "winograd4"},
        ValueError,
        ["k: got kernel of size 2x3", "expected 3x3 for method 'winograd4'"],
    ),
    (
        "nan-winograd",
        (NAN_X, INF_K.nan_to_num(posinf=1.0)),
        {"method": "winograd"},
        ValueError,
        ["x: got", "25 NaN or inf entries", "expected finite values"],
    ),
    (
        "inf-fft",
        (NAN_X.nan_to_num(), INF_K),
        {"method": "fft"},
        ValueError,
        ["k: got", "9 NaN or inf entries", "expected finite values"],
    ),
    (
        "nan-bias-fft",
        (NAN_X.nan_to_num(), k2[None, None], torch.tensor([float("nan")])),
        {"method": "fft"},
        ValueError,
        ["b: got", "1 NaN or inf entries"],
    ),
    ("empty", (torch.zeros(0, 3, 5, 5), k4), {}, ValueError, ["x: got", "(0, 3, 5, 5)", "size 0"]),
]


@pytest.mark.parametrize(
    "args, kwargs, error, fragments",
    [pytest.param(*case[1:], id=case[0]) for case in BAD_CALLS],
)
def test_bad_input_is_reported(args, kwargs, error, fragments):
    with pytest.raises(error) as info:
        conv2d(*args, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in message {message!r}"


@pytest.mark.parametrize("method", ["naive", "torch", "im2col"])
def test_nan_propagates_in_direct_methods(method):
    # the direct methods take NaN/inf and propagate them locally, like F.conv2d
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 0] = float("nan")
    y = conv2d(x, torch.ones(1, 1, 2, 2), method=method)
    assert torch.isnan(y[0, 0, 0, 0]) and int(torch.isnan(y).sum()) == 1


@pytest.mark.parametrize(
    "m, dtype, error, fragment",
    [
        (3, torch.float32, ValueError, "m: got 3, expected 2 or 4"),
        (2.0, torch.float32, TypeError, "m: got float 2.0, expected an int"),
        (2, torch.int32, TypeError, "dtype: got dtype"),
        (2, "float32", TypeError, "dtype: got str 'float32'"),
    ],
)
def test_winograd_transforms_bad_input(m, dtype, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        winograd_transforms(m, dtype)


#: what each method must run, written out by hand (not derived from METHODS): the kernel
#: the dispatcher calls and the arguments it must pass (Winograd: the output tile size m)
DISPATCH = {
    "naive": ("conv2d_naive", {}),
    "im2col": ("conv2d_im2col", {}),
    "winograd": ("conv2d_winograd", {"m": 2}),
    "winograd4": ("conv2d_winograd", {"m": 4}),
    "fft": ("conv2d_fft", {}),
    "torch": (None, {}),  # F.conv2d itself: none of the course kernels runs
}


def test_every_method_is_dispatched(monkeypatch):
    """Each method runs its own kernel with its own parameters (winograd4 is F(4x4, 3x3))."""
    import dnnkernels.conv2d as module

    assert set(METHODS) == set(DISPATCH), f"METHODS {METHODS} != the methods tested here"
    kernels = {kernel for kernel, _ in DISPATCH.values() if kernel}
    calls = spy_on(monkeypatch, module, kernels)
    x, k = randn((1, 1, 6, 6), 8), randn((1, 1, 3, 3), 9)
    for method, (kernel, params) in DISPATCH.items():
        calls.clear()
        y = conv2d(x, k, method=method)
        check_dispatch(calls, method, kernel, params)
        assert_close(y, reference(x, k), 1e-10, 1e-10, method)


@pytest.mark.precision_im2col
@given(st.data())
def test_single_and_batched_forms_agree(data):
    case = data.draw(conv_cases(max_batch=1, max_channels=1, max_out=1, max_size=7))
    x, k, b = case.tensors(data.draw(seeds))
    kwargs = dict(stride=case.stride, padding=case.padding)
    batched = conv2d(x, k, b, method="im2col", **kwargs)[0, 0]
    single = conv2d(x[0, 0], k[0, 0], b, method="im2col", **kwargs)
    assert torch.equal(single, batched)


def test_fast_fft_size_is_the_smallest_5_smooth_length():
    from dnnkernels.conv2d import fast_fft_size

    def smooth(n):
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in range(1, 300):
        L = fast_fft_size(n)
        assert L >= n and smooth(L), f"fast_fft_size({n}) = {L} is not a 5-smooth length >= {n}"
        assert all(not smooth(j) for j in range(n, L)), (
            f"fast_fft_size({n}) = {L} skips a smaller one"
        )
