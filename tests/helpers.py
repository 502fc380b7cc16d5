"""Test helpers shared by the test files: closeness with a useful message, seeded tensors."""

from __future__ import annotations

import numpy as np
import torch


def _as_float64(value: object) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    return torch.as_tensor(value).detach().to("cpu", torch.float64)


def assert_close(
    actual: object, expected: object, rtol: float, atol: float, what: str = "result"
) -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` entry-wise (in float64).

    Tensors, numpy arrays and numbers are accepted. NaN matches NaN only. On failure the
    message names ``what``, both shapes and dtypes, the number of bad entries, the largest
    absolute difference (and where it is) and the largest relative difference.
    """
    a_dtype = getattr(actual, "dtype", type(actual).__name__)
    e_dtype = getattr(expected, "dtype", type(expected).__name__)
    a, e = _as_float64(actual), _as_float64(expected)
    shapes = (
        f"actual shape {tuple(a.shape)} ({a_dtype}), expected shape {tuple(e.shape)} ({e_dtype})"
    )
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shapes differ: {shapes}")
    if a.numel() == 0:
        return
    both_nan = torch.isnan(a) & torch.isnan(e)
    diff = torch.where(both_nan, 0.0, (a - e).abs())
    diff = torch.where(torch.isnan(diff), torch.inf, diff)  # NaN against a number, inf - inf
    same_inf = torch.isinf(a) & (a == e)
    diff = torch.where(same_inf, 0.0, diff)
    allowed = atol + rtol * e.abs().nan_to_num(posinf=0.0, neginf=0.0)
    bad = diff > allowed
    if bool(bad.any()):
        worst = int(diff.argmax())
        index = tuple(int(i) for i in np.unravel_index(worst, tuple(a.shape)))
        relative = (diff / e.abs().clamp_min(1e-300)).max().item()
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {a.numel()} entries differ beyond "
            f"rtol={rtol:g}, atol={atol:g}; {shapes}; largest abs difference "
            f"{diff.max().item():.3e} at {index} (actual {a.flatten()[worst].item():.17g}, "
            f"expected {e.flatten()[worst].item():.17g}); largest relative difference "
            f"{relative:.3e}"
        )


def relative_error(actual: object, expected: object) -> float:
    """Relative Frobenius error ``||actual - expected|| / ||expected||`` in float64."""
    a, e = _as_float64(actual), _as_float64(expected)
    return float((a - e).norm() / e.norm())


def randn(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Standard normal tensor from its own seeded generator (independent of global state)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


#: a correct ``accumulate`` as a Python loop over the accumulations (the loop the bit_width
#: exercise forbids), as the source of an answer cell defining ``_loop``; it needs ``math``
#: and ``torch`` in its namespace
ACCUMULATE_LOOP = """
def _loop(products, bits, mode="saturate"):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    shape = products.shape[:-1]
    sums, flags = [], []
    for row in products.reshape(math.prod(shape), products.shape[-1]).tolist():
        acc, over = 0, False
        for p in row:
            acc += p
            if acc < lo or acc > hi:
                over = True
                acc = min(max(acc, lo), hi) if mode == "saturate" else (acc - lo) % 2**bits + lo
        sums.append(acc)
        flags.append(over)
    return (
        torch.tensor(sums, dtype=torch.int64).reshape(shape),
        torch.tensor(flags, dtype=torch.bool).reshape(shape),
    )
"""


def spy_on(monkeypatch, module, names) -> list[tuple[str, dict]]:
    """Replace each function ``module.<name>`` by a spy that calls it through and records
    ``(name, its bound arguments)`` in the returned list (cleared by the caller)."""
    import inspect

    calls: list[tuple[str, dict]] = []
    for name in names:
        real = getattr(module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            bound = inspect.signature(_real).bind(*args, **kwargs)
            bound.apply_defaults()
            calls.append((_name, dict(bound.arguments)))
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return calls


def check_dispatch(calls: list, method: str, kernel: str | None, params: dict) -> None:
    """``calls`` (from :func:`spy_on`) ran exactly ``kernel`` with ``params`` among its
    arguments (``kernel`` None: no spied function ran)."""
    ran = [name for name, _ in calls]
    assert ran == ([kernel] if kernel else []), f"{method}: ran {ran}, expected {kernel}"
    for key, value in params.items():
        got = calls[0][1][key]
        assert got == value, f"{method}: {kernel} got {key}={got}, expected {value}"
