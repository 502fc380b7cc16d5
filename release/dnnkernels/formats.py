# Generated automatically from src/dnnkernels/formats.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Float formats in software: every intermediate of a torch computation held in a format.

:class:`FormatMode` runs torch code so that each floating result is rounded to float16,
bfloat16 or float32 (operations torch cannot run in the format on the CPU are run in
float32 and rounded, and reported). The precision harness (:mod:`dnnkernels.precision`)
runs every method of conv2d and matmul under it.
"""

from __future__ import annotations

import re

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

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
