"""Helpers of the hidden checks: seeded inputs and comparisons with student-readable failures.

Every comparison runs in the trusted pytest process on values that came back from the
runner as plain arrays (``protocol.decode``); the expected values are computed here with
torch in float64 (or exact integer / rational arithmetic), never with the student's code
and never with the reference kernels of ``dnnkernels``.

Failure messages say what is wrong (type, which dimension of the shape, dtype, the share of
entries that are off and how far the largest error exceeds its tolerance) but never show
input or expected values, nor sizes (a shape or an entry count would tell the hidden input's
size). The ``what`` label a check passes names the *kind* of case ("a width that is not a
multiple of 8"), never its values: ``tests/test_hidden_bugs.py`` scans every message for
the numbers the check sent to the student's code.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from autograder.student import CheckFailed

__all__ = [
    "CheckFailed",
    "randn",
    "randint",
    "expect_tensor",
    "expect_close",
    "expect_equal",
    "expect_int",
    "expect_float",
]


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Standard normal tensor from a private generator (same values every run)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def truncated(M: torch.Tensor, r: int) -> torch.Tensor:
    """The best rank-``r`` approximation of ``M`` (Eckart-Young: the SVD cut at r), float64."""
    U, S, Vh = torch.linalg.svd(M.double(), full_matrices=False)
    return (U[:, :r] * S[:r]) @ Vh[:r]


def randint(low: int, high: int, *shape: int, seed: int) -> torch.Tensor:
    """int64 tensor uniform in ``[low, high)`` from a private generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, generator=gen, dtype=torch.int64)


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return "a numpy array (expected a torch.Tensor)"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _share(off: int, total: int) -> str:
    """How many entries are off, as a share of the output (its size is the hidden input's)."""
    if off == total:
        return "all entries are off" if total > 1 else "the entry is off"
    share = 100 * off / total
    if share < 1:
        return "under 1 % of the entries are off"
    return f"{share:.0f} % of the entries are off"


def _shape_problem(got: tuple[int, ...], wanted: tuple[int, ...]) -> str:
    """How a shape is wrong, without the expected sizes (they are the hidden input's)."""
    if len(got) != len(wanted):
        return f"{len(got)} dimensions where {len(wanted)} were expected"
    axes = [i for i, (g, w) in enumerate(zip(got, wanted, strict=True)) if g != w]
    sizes = ", ".join(
        f"dimension {i} too {'large' if got[i] > wanted[i] else 'small'}" for i in axes
    )
    return f"the wrong shape ({sizes})"


def expect_tensor(
    value: object, shape: tuple[int, ...], dtype: torch.dtype | None = None, what: str = "output"
) -> torch.Tensor:
    """``value`` must be a tensor of ``shape`` (and ``dtype`` when given).

    The message names the dimensions that are wrong, never the expected sizes.
    """
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what}: expected a torch.Tensor, got {_kind(value)}")
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what}: {_shape_problem(tuple(value.shape), tuple(shape))}")
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(f"{what}: expected dtype {dtype}, got {value.dtype}")
    return value


def expect_close(
    actual: object,
    expected: torch.Tensor,
    *,
    rtol: float,
    atol: float,
    dtype: torch.dtype | None = None,
    what: str = "output",
) -> None:
    """``|actual - expected| <= atol + rtol * |expected|`` entrywise (compared in float64)."""
    actual = expect_tensor(actual, tuple(expected.shape), dtype, what)
    if actual.is_complex() or actual.dtype == torch.bool:
        raise CheckFailed(f"{what}: expected real values, got dtype {actual.dtype}")
    a = actual.to(torch.float64)
    e = expected.to(torch.float64)
    finite = torch.isfinite(a)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        share = _share(bad, a.numel()).replace("are off", "are NaN or inf")
        raise CheckFailed(f"{what}: {share.replace('is off', 'is NaN or inf')}")
    if a.numel() == 0:
        return
    err = (a - e).abs()
    tol = atol + rtol * e.abs()
    off = err > tol
    if bool(off.any()):
        # the ratio of error to tolerance, not the tolerance itself (atol + rtol |expected|
        # would give away the expected value)
        excess = float((err[off] / tol[off]).max())
        raise CheckFailed(
            f"{what}: {_share(int(off.sum()), a.numel())}; the largest error is "
            f"{excess:.1e} times its tolerance (atol {atol:.0e} + rtol {rtol:.0e} x |expected|)"
        )


def expect_equal(
    actual: object,
    expected: torch.Tensor,
    *,
    what: str = "output",
    dtype: torch.dtype | None = None,
) -> None:
    """Exactly equal tensors (integer and bool results), shape and dtype included."""
    actual = expect_tensor(actual, tuple(expected.shape), dtype or expected.dtype, what)
    if not torch.equal(actual, expected):
        off = int((actual != expected).sum())
        share = _share(off, actual.numel())
        raise CheckFailed(f"{what}: {share} (they differ from the exact result)")


def expect_int(actual: object, expected: int, what: str = "result") -> None:
    """A Python ``int`` (not bool) equal to ``expected``."""
    if isinstance(actual, bool) or not isinstance(actual, int):
        raise CheckFailed(f"{what}: expected a Python int, got {_kind(actual)}")
    if actual != expected:
        direction = "too large" if actual > expected else "too small"
        raise CheckFailed(f"{what}: wrong value ({direction})")


def expect_float(actual: object, expected: float, *, rtol: float, what: str = "result") -> None:
    """A Python ``float`` (an int is accepted) within ``rtol`` of ``expected``."""
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        raise CheckFailed(f"{what}: expected a Python float, got {_kind(actual)}")
    if not math.isfinite(actual) or abs(actual - expected) > rtol * abs(expected) + 1e-300:
        raise CheckFailed(
            f"{what}: wrong value (relative error "
            f"{abs(actual - expected) / max(abs(expected), 1e-300):.1e}, tolerance {rtol:.0e})"
        )
