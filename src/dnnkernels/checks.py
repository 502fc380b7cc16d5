"""Argument checks shared by every module.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind,
wrong value) with a message of the form ``"<argument>: got <what>, expected <what>"``,
so a student or a grader sees at once which argument is wrong and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def describe(value: object) -> str:
    """Short description of a value for error messages (shape and dtype for tensors)."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_tensor(
    name: str,
    value: object,
    ndim: int | Sequence[int] | None = None,
    dtypes: Iterable[torch.dtype] | None = None,
    finite: bool = False,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with an allowed number of dimensions and dtype.

    Args:
        name: the argument name, used in the message.
        value: the object to check.
        ndim: allowed ``value.ndim`` (one int or several), or None for any.
        dtypes: allowed dtypes, or None for any.
        finite: if True, NaN and inf entries are rejected.

    Returns:
        ``value`` itself, so that a check can be written inline.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: got {describe(value)}, expected a torch.Tensor")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            wanted = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name}: got {describe(value)} ({value.ndim}-D), expected {wanted}")
    if dtypes is not None:
        allowed_dtypes = tuple(dtypes)
        if value.dtype not in allowed_dtypes:
            names = ", ".join(str(d) for d in allowed_dtypes)
            raise TypeError(f"{name}: got dtype {value.dtype}, expected one of {names}")
    if finite and (value.is_floating_point() or value.is_complex()):
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"{name}: got {describe(value)} with {bad} NaN or inf entries, "
                "expected finite values"
            )
    return value


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an int (not a bool) with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: got {describe(value)}, expected an int")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name}: got {value}, expected an int in [{lo}, {hi}]")
    return value


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of the allowed strings."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"{name}: got {value!r}, expected one of {', '.join(map(repr, options))}")
    return value  # type: ignore[return-value]
