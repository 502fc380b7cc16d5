# Generated automatically from src/dnnkernels/formats.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Number formats in software: float formats held by every intermediate, integer wrap.

- Float formats: :class:`FormatMode` runs torch code so that each floating result is
  rounded to float16, bfloat16 or float32 (operations torch cannot run in the format on
  the CPU are run in float32 and rounded, and reported).
- Integer formats: :func:`wrap` (two's complement wrap-around to ``bits`` bits),
  :func:`winograd_scale` (the output scale of Winograd with integer transforms), and the
  checks that turn an exact float64 computation into integers, naming what went wrong
  (NaN or infinity, magnitudes of ``2**52`` or more, values that are not integers).

The precision harness (:mod:`dnnkernels.precision`) runs every method of conv2d and
matmul in these formats.
"""

from __future__ import annotations

import re

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from dnnkernels.checks import check_int, check_tensor, describe
from dnnkernels.conv2d import winograd_transforms

# "op not available for this dtype" as torch words it on the CPU
_UNSUPPORTED = re.compile(r"not implemented for|unsupported dtype", re.IGNORECASE)


class FormatMode(TorchFunctionMode):
    """A torch function mode that rounds the result of every torch operation to ``fmt``.

    Inside ``with FormatMode(torch.float16):`` each torch function or tensor method runs
    natively; then every floating result is rounded to ``fmt``: a real result is converted
    to ``fmt`` (a view whose values are already representable is returned unchanged, so
    writes through it still reach its base), a complex result is returned as complex64 with
    real and imaginary parts rounded to ``fmt``. In-place operations (``add_``,
    ``__setitem__``, ``out=``) round their target in place. Integer and bool results are
    untouched.

    An operation that raises "not implemented for 'Half'" / "Unsupported dtype" (torch has no
    CPU kernel for the format) is re-run in float32 on float32 copies of its ``fmt``
    operands and then rounded as above; its name is added to :attr:`emulated`.

    Args:
        fmt: torch.float16, torch.bfloat16 or torch.float32.
    """

    def __init__(self, fmt: torch.dtype):
        super().__init__()
        if fmt not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"fmt: got {fmt}, expected torch.float16, bfloat16 or float32")
        self.fmt = fmt
        self.emulated: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _func_name(func)
        try:
            out = func(*args, **kwargs)
        except RuntimeError as err:  # NotImplementedError is a RuntimeError too
            if (
                self.fmt == torch.float32
                or not _UNSUPPORTED.search(str(err))
                or not _holds_dtype((args, kwargs), self.fmt)
            ):
                raise
            out = self._run_in_float32(func, name, args, kwargs)
            self.emulated.add(name)
        if _is_inplace(name) and args and isinstance(args[0], torch.Tensor):
            self._round_inplace(args[0])
        if isinstance(kwargs.get("out"), torch.Tensor):
            self._round_inplace(kwargs["out"])
        return tree_map(self._round, out)

    def _run_in_float32(self, func, name, args, kwargs):
        def up(t):
            if isinstance(t, torch.Tensor) and t.dtype == self.fmt:
                return t.to(torch.float32)
            return t

        up_args, up_kwargs = tree_map(up, args), tree_map(up, kwargs)
        out = func(*up_args, **up_kwargs)
        if _is_inplace(name) and args and isinstance(args[0], torch.Tensor):
            args[0].copy_(up_args[0])  # the op wrote into the float32 copy of its target
            return args[0] if out is up_args[0] else out
        return out

    def _round(self, t):
        if not isinstance(t, torch.Tensor):
            return t
        if t.is_complex():
            parts = torch.view_as_real(t.resolve_conj().to(torch.complex64))
            rounded = parts.to(self.fmt).to(torch.float32)
            if t.dtype == torch.complex64 and torch.equal(rounded, parts):
                return t
            return torch.view_as_complex(rounded.contiguous())
        if t.is_floating_point() and t.dtype != self.fmt:
            rounded = t.to(self.fmt)
            if t._base is not None and torch.equal(rounded.to(t.dtype), t):
                return t  # a view of representable values: keep it a view
            return rounded
        return t

    def _round_inplace(self, t: torch.Tensor) -> None:
        if t.is_complex():
            parts = torch.view_as_real(t)
            parts.copy_(parts.to(self.fmt))
        elif t.is_floating_point() and t.dtype != self.fmt:
            t.copy_(t.to(self.fmt))


def _func_name(func) -> str:
    name = getattr(func, "__name__", repr(func))
    if name == "__get__":  # a property such as Tensor.real
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", name)
    return name


_INPLACE_OPS = "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split()
_INPLACE_DUNDERS = {"__setitem__"} | {f"__i{op}__" for op in _INPLACE_OPS}


def _is_inplace(name: str) -> bool:
    if name.startswith("__") and name.endswith("__"):
        return name in _INPLACE_DUNDERS
    return name.endswith("_")  # add_, copy_, scatter_add_, ...


def _holds_dtype(tree, dtype: torch.dtype) -> bool:
    found = []
    tree_map(lambda t: found.append(isinstance(t, torch.Tensor) and t.dtype == dtype), tree)
    return any(found)


# ---------------------------------------------------------------------------------------------
# Integer formats
# ---------------------------------------------------------------------------------------------

_EXACT_LIMIT = 2.0**52  # float64 integers below this are exact, with a margin


def wrap(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Two's complement wrap-around of integers to ``bits`` bits.

    Args:
        values: an integer tensor (any shape), or a float tensor of integral values; all
            below ``2**62`` in magnitude.
        bits: width, ``2 <= bits <= 62``.

    Returns:
        int64 tensor of the shape of ``values``:
        ``((v + 2**(bits-1)) mod 2**bits) - 2**(bits-1)``, in ``[-2**(bits-1), 2**(bits-1))``.
    """
    values = check_tensor("values", values, finite=True)
    check_int("bits", bits, low=2, high=62)
    if values.is_complex() or values.dtype == torch.bool:
        raise TypeError(f"values: got dtype {values.dtype}, expected an integer or float dtype")
    if values.is_floating_point() and not bool((values == torch.round(values)).all()):
        raise ValueError(f"values: got {describe(values)} with fractions, expected integers")
    if values.numel() and float(values.abs().max()) >= 2.0**62:
        raise ValueError("values: got magnitudes of 2**62 or more, expected less")
    half = 1 << (bits - 1)
    return torch.remainder(values.to(torch.int64) + half, 2 * half) - half


def _integer_scale(T: torch.Tensor, what: str) -> int:
    for s in range(1, 10_001):
        if float((s * T - torch.round(s * T)).abs().max()) < 1e-9:
            return s
    raise ValueError(f"{what}: no integer scale up to 10000 makes the transform integer")


def winograd_scale(m: int) -> int:
    """The factor ``S`` by which the integer Winograd F(m x m, 3 x 3) scales its output.

    ``s_A, s_G, s_B`` are the smallest positive integers such that ``s_A * AT``, ``s_G * G``
    and ``s_B * BT`` are integer matrices (``AT, G, BT = winograd_transforms(m)``); the 2-D
    transforms apply each matrix twice, so ``S = (s_A * s_G * s_B)**2`` (4 for m=2, 576 for
    m=4 with the Lavin & Gray matrices).
    """
    AT, G, BT = winograd_transforms(m, torch.float64)
    scale = 1
    for T, what in ((AT, "AT"), (G, "G"), (BT, "BT")):
        scale *= _integer_scale(T, f"winograd_transforms({m}) {what}")
    return scale**2


def _check_finite(y: torch.Tensor, what: str, hint: str = "") -> None:
    """Raise naming the real cause when the method's result holds NaN or infinities."""
    bad = ~torch.isfinite(y)
    if bool(bad.any()):
        raise ValueError(
            f"{what}: {int(bad.sum())} of {y.numel()} entries are NaN or infinite, expected "
            "finite values: the method produced them from finite integer inputs (zeros "
            "included)" + (f"; {hint}" if hint else "")
        )


def _exact_integers(y: torch.Tensor, what: str, hint: str = "") -> torch.Tensor:
    """float64 result that must be integral (exact integer arithmetic) -> int64.

    Raises:
        ValueError: NaN or infinite entries (``hint`` names the likely cause), magnitudes
            of ``2**52`` or more, or values that are not integers.
    """
    y = y.to(torch.float64)
    _check_finite(y, what, hint)
    rounded = torch.round(y)
    if float(rounded.abs().max()) >= _EXACT_LIMIT:
        raise ValueError(
            f"inputs: {what} reached magnitudes of 2**52 or more, expected the exact "
            "integer result to stay below 2**52 (use smaller int_high or sizes)"
        )
    err = float((y - rounded).abs().max())
    if err > 1e-3:
        raise ValueError(
            f"inputs: {what} is not integral (off by {err:.3g}), expected integer-valued "
            "inputs whose exact integer computation stays below 2**52"
        )
    return rounded.to(torch.int64)


def _round_to_int(y: torch.Tensor, what: str) -> torch.Tensor:
    """Round a float result to the nearest integer (half to even) -> int64."""
    y = y.to(torch.float64)
    _check_finite(y, what)
    y = torch.round(y)
    if float(y.abs().max()) >= 2.0**62:
        raise ValueError(f"inputs: {what} exceeds 2**62 in magnitude")
    return y.to(torch.int64)


def _log_int_operand(a: torch.Tensor) -> torch.Tensor:
    """``sign(a) * 2**round(log2|a|)`` (zeros stay zero), float64."""
    a = a.to(torch.float64)
    mag = torch.exp2(torch.round(torch.log2(a.abs())))
    return torch.where(a == 0, torch.zeros_like(a), torch.sign(a) * mag)
