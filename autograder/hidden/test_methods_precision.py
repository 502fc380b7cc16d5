"""Method checks of the precision assignment (never released to students).

Run after ``test_precision.py`` (``autograder.hidden.hidden_files``). Every call of the
kernels in the value checks was recorded in the runner (``runner.record_call``); each check
here makes one more call of its own, on inputs large enough to tell the method from a
shortcut, and :mod:`autograder.methods` judges every recorded call: a library
convolution, a matrix product in ``matmul_log``, a product that is not factored, or work
done outside the recording voids the task's points. The checks carry no points.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.checking import CheckFailed, expect_close, randn, truncated
from autograder.methods import check_method, require_work

F64 = dict(rtol=1e-8, atol=1e-8)


def judged(student, name, expected, *args, **kwargs):
    """The method check of ``name``: every recorded call judged, this one's work required."""
    value, call = check_method(student, name, *args, **kwargs)
    try:
        expect_close(value, expected, dtype=torch.float64, **F64)
    except CheckFailed as failure:
        raise CheckFailed(
            f"the method could not be judged, the result is wrong ({failure})"
        ) from None
    require_work(call)


def conv_case(seed, c=4, size=34, o=8):
    x = randn(2, c, size, size, seed=seed)
    k = randn(o, c, 3, 3, seed=seed + 1)
    b = randn(o, seed=seed + 2)
    return x, k, b


@pytest.mark.precision_im2col
@pytest.mark.points(0)
def test_im2col_method(student):
    """im2col: the method (patch matrix and a matrix product, no library convolution)"""
    x, k, b = conv_case(7901, size=32)
    expected = F.conv2d(x, k, b, padding=1)
    judged(student, "conv2d_im2col", expected, x, k, b, stride=1, padding=1)


@pytest.mark.precision_winograd
@pytest.mark.points(0)
def test_winograd_method(student):
    """Winograd: the method (tile transforms, no library convolution), both tile sizes"""
    for m, seed in [(2, 7911), (4, 7921)]:
        x, k, b = conv_case(seed)
        judged(student, "conv2d_winograd", F.conv2d(x, k, b), x, k, b, m=m)


@pytest.mark.precision_fft
@pytest.mark.points(0)
def test_fft_method(student):
    """FFT conv2d: the method (FFTs and a product of spectra, no library convolution)"""
    x, k, b = conv_case(7931)
    judged(student, "conv2d_fft", F.conv2d(x, k, b), x, k, b)


@pytest.mark.precision_matmul_svd
@pytest.mark.points(0)
def test_matmul_svd_method(student):
    """matmul_svd: the FLOPs of the factored product, not of a rebuilt dense one"""
    A, B = randn(200, 160, seed=7941), randn(160, 120, seed=7942)
    for ranks, expected in [
        ((3, None), truncated(A, 3) @ B),
        ((None, 4), A @ truncated(B, 4)),
        ((3, 5), truncated(A, 3) @ truncated(B, 5)),
    ]:
        judged(student, "matmul_svd", expected, A, B, rank_A=ranks[0], rank_B=ranks[1])


@pytest.mark.precision_matmul_log
@pytest.mark.points(0)
def test_matmul_log_method(student):
    """matmul_log: the method (logs, powers of two and a sum; no matrix product)"""
    A, B = randn(40, 30, seed=7951), randn(30, 50, seed=7952)
    judged(student, "matmul_log", A @ B, A, B)
