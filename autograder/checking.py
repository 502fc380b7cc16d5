"""Helpers of the hidden checks: seeded inputs and comparisons with student-readable failures.

Every comparison runs in the trusted pytest process on values that came back from the
runner as plain arrays (``protocol.decode``); the expected values are computed here with
torch in float64 (or exact integer / rational arithmetic), never with the student's code
and never with the reference kernels of ``dnnkernels``.

Failure messages say what is wrong (type, shape, dtype, how many entries are off and the
largest error against the tolerance) but never show input or expected values.
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


def randint(low: int, high: int, *shape: int, seed: int) -> torch.Tensor:
    """int64 tensor uniform in ``[low, high)`` from a private generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, generator=gen, dtype=torch.int64)


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} (expected a torch.Tensor)"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def expect_tensor(
    value: object, shape: tuple[int, ...], dtype: torch.dtype | None = None, what: str = "output"
) -> torch.Tensor:
    """``value`` must be a tensor of ``shape`` (and ``dtype`` when given)."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what}: expected a torch.Tensor, got {_kind(value)}")
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {tuple(value.shape)}")
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
        raise CheckFailed(f"{what}: {bad} of {a.numel()} entries are NaN or inf")
    if a.numel() == 0:
        return
    err = (a - e).abs()
    tol = atol + rtol * e.abs()
    off = err > tol
    if bool(off.any()):
        worst = int(torch.argmax(err - tol))
        raise CheckFailed(
            f"{what}: {int(off.sum())} of {a.numel()} entries are off; largest error "
            f"{float(err.flatten()[worst]):.2e} where the tolerance is "
            f"{float(tol.flatten()[worst]):.1e} (atol {atol:.0e} + rtol {rtol:.0e} x |expected|)"
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
        raise CheckFailed(f"{what}: {off} of {actual.numel()} entries differ from the exact result")


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
