# Generated automatically from src/dnnkernels/precision.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Reconstruction error of every conv2d and matmul method at every numerical precision.

Each method of :func:`dnnkernels.conv2d.conv2d` and :func:`dnnkernels.matmul.matmul` is run
at a *precision* among :data:`PRECISIONS` (float16, bfloat16, float32, float64, int8, int16,
int32) and compared with the float64 direct result (``F.conv2d`` / ``A @ B`` in float64 on
the float64 inputs) by :func:`reconstruction_error`. :func:`precision_table` does it for all
methods x precisions and returns tidy rows; :mod:`dnnkernels.precision_report` plots and
tabulates them: ``python -m dnnkernels.precision --out build/precision`` writes
``table.csv``, ``table.md``, ``conv2d.png`` and ``matmul.png``. The number formats
themselves (float emulation, integer wrap-around) are :mod:`dnnkernels.formats`.

What "method at precision" means (:func:`run_method`)
-----------------------------------------------------
**Float formats** (float16, bfloat16, float32, float64). The float64 inputs are rounded to
the format (round to nearest even) and the method runs on them. For float64 the method runs
as it is. For float32, float16 and bfloat16 it runs under :class:`FormatMode`, which holds
*every* floating intermediate in the format: the result of each torch operation is rounded
to the format (real results are converted to the format's dtype; complex results are kept
as complex64 with real and imaginary parts rounded to the format, since torch has no
complex bfloat16 and little complex32 support). An operation that torch cannot run on the
format on the CPU (for float16/bfloat16: ``torch.fft.*`` and ``torch.linalg.svd``) is run in
float32 on the float32 values of its operands and its result is rounded to the format; the
names of these operations are reported (column ``emulated``). So an op is one rounding:
e.g. one GEMM or FFT accumulates internally in float32 and rounds its output, like
mixed-precision hardware. A method that converts to a wider type internally (the FFT
method computes in float32 for half inputs) is overruled: its intermediates are rounded to
the format too.

One exception: ``"log_approx"`` models fixed-point hardware (exponents with ``frac_bits``
fraction bits, integer shift-accumulate, one LUT multiply); its arithmetic is defined by its
own format, so it runs as written on the rounded inputs and only its result is rounded.

**Integer formats** (int8, int16, int32: ``bits`` = 8, 16, 32). The inputs are integers
(see "Inputs" below) that fit the format. Arithmetic is ``bits`` wide with two's complement
wrap-around, like an integer multiply-accumulate unit without saturation. Wrap-around,
``wrap(v) = ((v + 2**(bits-1)) mod 2**bits) - 2**(bits-1)``, is a ring homomorphism from
the integers to the integers modulo ``2**bits``, so any computation made only of integer
additions and multiplications gives in ``bits``-bit wrap-around arithmetic exactly
``wrap(exact result)``, no matter where the wrapping happens. Per method:

- ``naive``, ``torch``, ``im2col`` (conv2d) and ``naive``, ``torch`` (matmul): run natively on
  tensors of the integer dtype (torch's integer arithmetic wraps), so the result is
  ``wrap(exact)``.
- ``winograd`` / ``winograd4``: Winograd with *scaled integer transforms*. The transforms
  ``AT, G, BT`` of F(m, 3) have fractions (``G`` has ``1/2`` for m=2; ``1/4, 1/6, 1/12,
  1/24`` for m=4); multiplied by the smallest integers ``s_A, s_G, s_B`` that make them
  integer (``s_G = 2`` and ``24``, ``s_A = s_B = 1``), the whole pipeline is integer and
  computes ``S * y`` with ``S = (s_A * s_G * s_B)**2`` (4 for m=2, 576 for m=4). The
  ``bits``-bit pipeline therefore yields ``wrap(S * y)``, which is divided by ``S`` and rounded
  to nearest (half to even) at the end: exact (an arithmetic shift by 2 bits) for m=2, and
  exact for both whenever ``S * y`` did not wrap. It is computed by running the method in
  float64 on the integer-valued inputs with the kernel multiplied by ``S`` (its filter
  transform is then the integer one); every intermediate is an integer below ``2**53`` in
  magnitude, so float64 is exact here (the harness checks that the result is integral and
  raises ``ValueError`` otherwise).
- ``fft``, ``svd``, ``log_approx``: transforms or factors that are not integer. The method runs
  in the nearest float type whose significand holds every value of the integer format -
  float32 (24 bits) for int8 and int16, float64 (53 bits) for int32 - on the integer
  values; its result is rounded to the nearest integer (half to even) and wrapped.
- ``log`` (matmul): the integer log-domain format stores each operand as a sign and an
  *integer* log2 magnitude ``e = round(log2|a|)`` (round to nearest; an integer is never
  exactly halfway in the log domain), i.e. the operand is ``sign(a) * 2**e`` (zeros stay
  zero). Products ``± 2**(e_a + e_b)`` are shifts of 1 added into the ``bits``-bit
  accumulator, so the result is ``wrap(sum_k ± 2**(e_a + e_b))``. It is computed by running
  the ``"log"`` method in float64 on the operands ``sign(a) * 2**e`` (exact: integer powers
  of two and integer sums below ``2**53``) and wrapping.

Inputs (:func:`draw_inputs`)
----------------------------
Drawn with a ``torch.Generator`` seeded with ``seed``, in float64, shapes from ``size``:
float formats use standard normal entries (mean 0, variance 1); integer formats use
integers uniform in ``[-int_high, int_high]`` (default 3, as in the original write-up; the
same inputs for int8, int16 and int32). conv2d uses ``x (N, C, H, W)``, ``k (O, C, 3, 3)``,
no bias, stride 1, no padding (3x3 so that Winograd applies); matmul uses ``A (M, K)``,
``B (K, N)``. Sizes are small so that the naive loops stay fast; they are in every row.

Errors (:func:`reconstruction_error`)
-------------------------------------
With ``d = approx - exact`` in float64 over the ``n`` output elements:
``mae = sum|d| / n`` and ``rel_fro = ||d||_F / ||exact||_F``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dnnkernels import conv2d as _conv2d_module
from dnnkernels import matmul as _matmul_module
from dnnkernels.checks import check_choice, check_int, check_tensor, describe
from dnnkernels.conv2d import WINOGRAD_M, conv2d
from dnnkernels.formats import (
    FormatMode,
    _exact_integers,
    _log_int_operand,
    _round_to_int,
    winograd_scale,
    wrap,
)
from dnnkernels.matmul import matmul
from dnnkernels.tasks import TASKS

__all__ = [
    "PRECISIONS",
    "FLOAT_PRECISIONS",
    "INT_PRECISIONS",
    "OPS",
    "METHODS",
    "DEFAULT_SIZES",
    "BITS",
    "DTYPES",
    "draw_inputs",
    "reference",
    "run_method",
    "reconstruction_error",
    "precision_table",
]

PRECISIONS = ("int8", "bfloat16", "float16", "int16", "float32", "int32", "float64")
"""All precisions, ordered by bits (bfloat16 before float16: it has the shorter significand)."""
FLOAT_PRECISIONS = ("bfloat16", "float16", "float32", "float64")
INT_PRECISIONS = ("int8", "int16", "int32")

DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
}
BITS = {
    name: torch.finfo(dt).bits if dt.is_floating_point else torch.iinfo(dt).bits
    for name, dt in DTYPES.items()
}

OPS = ("conv2d", "matmul")
METHODS: dict[str, tuple[str, ...]] = {
    "conv2d": tuple(_conv2d_module.METHODS),
    "matmul": tuple(_matmul_module.METHODS),
}
DEFAULT_SIZES: dict[str, tuple[int, ...]] = {
    "conv2d": (2, 16, 13, 13, 8),  # N, C, H, W, O (3x3 kernels); 13 is odd on purpose
    "matmul": (32, 128, 32),  # M, K, N
}
"""Input sizes: conv2d ``(N, C, H, W, O)`` with 3x3 kernels, matmul ``(M, K, N)``."""

# methods run natively on integer dtypes (their arithmetic is integer: wrap(exact))
_NATIVE_INT = {"conv2d": ("naive", "torch", "im2col"), "matmul": ("naive", "torch")}
# methods with non-integer transforms or factors: float, then round and wrap
_FLOAT_THEN_ROUND = {"conv2d": ("fft",), "matmul": ("svd", "log_approx")}
# float type holding every value of the integer format exactly
_INT_WORK_FLOAT = {"int8": torch.float32, "int16": torch.float32, "int32": torch.float64}
# methods whose arithmetic is their own (fixed point): not run under FormatMode
_OWN_ARITHMETIC = {("matmul", "log_approx")}


# ---------------------------------------------------------------------------------------------
# Integer formats
# ---------------------------------------------------------------------------------------------


#: the likely cause of a NaN in the log-domain product of integer operands
_LOG_ZERO_HINT = (
    "the operands hold zeros, and log2(0) = -inf: a product with a zero factor must "
    "contribute 0 to the sum (e.g. -inf + x, then 2**(-inf) = 0, but 0 * inf or "
    "inf - inf is NaN)"
)


def _run_int(op: str, method: str, precision: str, inputs: dict, options: dict):
    dtype, bits = DTYPES[precision], BITS[precision]
    fn = conv2d if op == "conv2d" else matmul
    a, b = (inputs["x"], inputs["k"]) if op == "conv2d" else (inputs["A"], inputs["B"])
    if method in _NATIVE_INT[op]:
        y = fn(a.to(dtype), b.to(dtype), method=method, **options)
        return y, f"native {precision}, wrap-around"
    if method in _FLOAT_THEN_ROUND[op]:
        work = _INT_WORK_FLOAT[precision]
        y = fn(a.to(work), b.to(work), method=method, **options)
        y = wrap(_round_to_int(y, f"{method} result"), bits).to(dtype)
        name = str(work).removeprefix("torch.")
        return y, f"computed in {name}, rounded to nearest, wrapped to {bits} bits"
    if method in WINOGRAD_M:
        S = winograd_scale(WINOGRAD_M[method])
        ys = conv2d(a.to(torch.float64), b.to(torch.float64) * S, method=method, **options)
        ys = wrap(_exact_integers(ys, f"{S} * y of {method}"), bits)
        y = torch.round(ys.to(torch.float64) / S).to(torch.int64).to(dtype)
        return y, f"integer transforms (output scaled by {S}), {bits}-bit wrap, /{S} rounded"
    if op == "matmul" and method == "log":
        y = matmul(_log_int_operand(a), _log_int_operand(b), method="log", **options)
        y = wrap(_exact_integers(y, "log-domain sum", _LOG_ZERO_HINT), bits).to(dtype)
        return y, f"integer log2 magnitudes, {bits}-bit wrap-around accumulation"
    raise AssertionError(f"no integer definition for {op} method {method!r}")  # unreachable


# ---------------------------------------------------------------------------------------------
# Inputs, reference, one run, errors
# ---------------------------------------------------------------------------------------------


def _check_op(op: object) -> str:
    return check_choice("op", op, OPS)


def _check_size(op: str, size: object) -> tuple[int, ...]:
    n = len(DEFAULT_SIZES[op])
    wanted = "(N, C, H, W, O)" if op == "conv2d" else "(M, K, N)"
    if not isinstance(size, Sequence) or len(size) != n:
        raise ValueError(f"size: got {describe(size)}, expected {n} ints {wanted} for {op}")
    for i, s in enumerate(size):
        check_int(f"size[{i}]", s, low=3 if op == "conv2d" and i in (2, 3) else 1)
    return tuple(size)


def draw_inputs(
    op: str,
    kind: str = "float",
    size: Sequence[int] | None = None,
    seed: int = 0,
    int_high: int = 3,
) -> dict[str, torch.Tensor]:
    """Random float64 inputs of ``op``, drawn with ``torch.Generator().manual_seed(seed)``.

    Args:
        op: ``"conv2d"`` or ``"matmul"``.
        kind: ``"float"`` (standard normal entries) or ``"int"`` (integers uniform in
            ``[-int_high, int_high]``, stored as float64).
        size: conv2d ``(N, C, H, W, O)`` (kernels are ``3 x 3``, ``H, W >= 3``), matmul
            ``(M, K, N)``; default :data:`DEFAULT_SIZES`.
        seed: the generator seed (x / A are drawn first, then k / B).
        int_high: ``>= 1``, the largest integer magnitude.

    Returns:
        ``{"x": (N, C, H, W), "k": (O, C, 3, 3)}`` or ``{"A": (M, K), "B": (K, N)}``, float64.
    """
    op = _check_op(op)
    kind = check_choice("kind", kind, ("float", "int"))
    size = _check_size(op, DEFAULT_SIZES[op] if size is None else size)
    check_int("seed", seed)
    check_int("int_high", int_high, low=1)
    if op == "conv2d":
        N, C, H, W, O = size
        shapes = {"x": (N, C, H, W), "k": (O, C, 3, 3)}
    else:
        M, K, N = size
        shapes = {"A": (M, K), "B": (K, N)}
    gen = torch.Generator().manual_seed(seed)
    if kind == "float":
        return {n: torch.randn(s, generator=gen, dtype=torch.float64) for n, s in shapes.items()}
    return {
        n: torch.randint(-int_high, int_high + 1, s, generator=gen).to(torch.float64)
        for n, s in shapes.items()
    }


def _check_inputs(op: str, inputs: object) -> dict[str, torch.Tensor]:
    names = ("x", "k") if op == "conv2d" else ("A", "B")
    if not isinstance(inputs, Mapping) or set(inputs) != set(names):
        raise ValueError(
            f"inputs: got {describe(inputs)}, expected a dict with keys {names} for {op} "
            "(see draw_inputs)"
        )
    out = {}
    for n in names:
        t = check_tensor(f"inputs[{n!r}]", inputs[n], ndim=4 if op == "conv2d" else 2)
        out[n] = check_tensor(f"inputs[{n!r}]", t.to(torch.float64), finite=True)
    return out


def reference(op: str, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The float64 direct result: ``F.conv2d(x, k)`` or ``A @ B`` on the float64 inputs."""
    op = _check_op(op)
    t = _check_inputs(op, inputs)
    return F.conv2d(t["x"], t["k"]) if op == "conv2d" else t["A"] @ t["B"]


def _run(op: str, method: str, precision: str, inputs, options) -> tuple[torch.Tensor, str]:
    op = _check_op(op)
    method = check_choice("method", method, METHODS[op])
    precision = check_choice("precision", precision, PRECISIONS)
    t = _check_inputs(op, inputs)
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options: got {describe(options)}, expected a dict or None")
    options = dict(options or {})
    if op == "conv2d" and options:
        raise ValueError(
            f"options: got {sorted(options)}, expected none for conv2d (the harness compares "
            "with F.conv2d(x, k): stride 1, no padding, no bias)"
        )
    dtype = DTYPES[precision]
    if precision in INT_PRECISIONS:
        info = torch.iinfo(dtype)
        for n, v in t.items():
            if not bool((v == torch.round(v)).all()) or v.min() < info.min or v.max() > info.max:
                raise ValueError(
                    f"inputs[{n!r}]: got values in [{float(v.min()):g}, {float(v.max()):g}] "
                    f"(integral: {bool((v == torch.round(v)).all())}), expected integers in "
                    f"[{info.min}, {info.max}] for precision {precision!r}"
                )
        return _run_int(op, method, precision, t, options)

    fn = conv2d if op == "conv2d" else matmul
    a, b = (t["x"], t["k"]) if op == "conv2d" else (t["A"], t["B"])
    a, b = a.to(dtype), b.to(dtype)
    if dtype == torch.float64:
        return fn(a, b, method=method, **options), "native float64"
    if (op, method) in _OWN_ARITHMETIC:
        y = fn(a, b, method=method, **options).to(dtype)
        return y, f"inputs and result in {precision}, fixed-point arithmetic of the method"
    mode = FormatMode(dtype)
    with mode:
        y = fn(a, b, method=method, **options)
    y = y.to(dtype)
    if mode.emulated:
        ops = ", ".join(sorted(mode.emulated))
        return y, f"every op rounded to {precision}; in float32 then rounded: {ops}"
    return y, f"every op rounded to {precision}"


def run_method(
    op: str,
    method: str,
    precision: str,
    inputs: Mapping[str, torch.Tensor],
    options: Mapping[str, object] | None = None,
) -> torch.Tensor:
    """Run one method of ``op`` at one precision (definitions in the module docstring).

    Args:
        op: ``"conv2d"`` or ``"matmul"``.
        method: one of ``METHODS[op]``.
        precision: one of :data:`PRECISIONS`.
        inputs: ``{"x": (N, C, H, W), "k": (O, C, kh, kw)}`` or ``{"A": (M, K), "B": (K, N)}``
            (any real dtype, converted to float64; finite). For an integer precision the
            values must be integers within the range of the format.
        options: matmul only: keyword arguments of :func:`dnnkernels.matmul.matmul`
            (``rank_A``, ``rank_B``, ``frac_bits``). conv2d takes none: it runs with stride
            1, no padding and no bias, like the reference.

    Returns:
        The result in the precision's dtype: ``(N, O, H', W')`` or ``(M, N)``.

    Raises:
        ValueError: unknown op, method or precision (naming the argument), malformed
            inputs, integer inputs outside the format, options given for conv2d.
    """
    return _run(op, method, precision, inputs, options)[0]


def reconstruction_error(approx: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    """Mean absolute error and relative Frobenius error of ``approx`` against ``exact``.

    Both are converted to float64; with ``d = approx - exact`` over ``n`` elements::

        mae     = sum |d| / n
        rel_fro = ||d||_F / ||exact||_F      (0 if d == 0; inf if exact == 0 != d)

    Args:
        approx: any shape, any real dtype (inf/NaN propagate into the errors).
        exact: the same shape, finite.

    Returns:
        ``(mae, rel_fro)`` as Python floats.
    """
    approx = check_tensor("approx", approx)
    exact = check_tensor("exact", exact, finite=True)
    if approx.shape != exact.shape:
        raise ValueError(
            f"approx: got {describe(approx)}, expected the shape of exact {tuple(exact.shape)}"
        )
    if exact.numel() == 0:
        raise ValueError(f"exact: got {describe(exact)}, expected at least one element")
    e = exact.to(torch.float64)
    d = approx.to(torch.float64) - e
    mae = float(d.abs().mean())
    num, den = float(torch.linalg.vector_norm(d)), float(torch.linalg.vector_norm(e))
    if den == 0.0:
        rel = 0.0 if num == 0.0 else math.inf
    else:
        rel = num / den
    return mae, rel


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

COLUMNS = (
    "op", "method", "precision", "bits", "kind", "mae", "rel_fro", "n_elements", "shape",
    "computed",
)  # fmt: skip
"""Columns of the rows of :func:`precision_table`."""


def _select_methods(ops: tuple[str, ...], methods) -> dict[str, tuple[str, ...]]:
    if methods is None:
        return {op: METHODS[op] for op in ops}
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        raise TypeError(f"methods: got {describe(methods)}, expected a list of method names")
    methods = tuple(methods)
    known = sorted({m for op in ops for m in METHODS[op]})
    for m in methods:
        if m not in known:
            raise ValueError(
                f"methods: got {m!r}, expected names among {', '.join(map(repr, known))} "
                f"(methods of {', '.join(ops)})"
            )
    return {op: tuple(m for m in METHODS[op] if m in methods) for op in ops}


def _is_skipped_extra_credit(op: str, method: str, exc: NotImplementedError) -> bool:
    """Whether ``exc`` is the stub error of the optional exercise behind ``op``/``method``.

    The exercise of a method is the task whose function is ``<op>_<method>`` in the module
    ``op`` (``matmul_log_approx`` for matmul ``log_approx``); only an extra-credit task's
    own "not implemented" message counts.
    """
    for task in TASKS.values():
        if task.extra_credit and task.module == op and task.name == f"{op}_{method}":
            return str(exc) == task.not_implemented_message()
    return False


def precision_table(
    ops: Iterable[str] = OPS,
    methods: Iterable[str] | None = None,
    precisions: Iterable[str] = PRECISIONS,
    seed: int = 0,
    sizes: Mapping[str, Sequence[int]] | None = None,
    int_high: int = 3,
    options: Mapping[str, Mapping[str, object]] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Reconstruction error of every method at every precision, as tidy rows.

    For each op, float and integer inputs are drawn once (:func:`draw_inputs` with ``seed``,
    ``sizes[op]``, ``int_high``); each (method, precision) runs on them (:func:`run_method`)
    and is compared with the float64 direct result on the same float64 inputs.

    Args:
        ops: subset of :data:`OPS`.
        methods: method names (each op runs those of its methods that are listed), or None
            for all methods of each op; then a method of an optional (extra-credit) exercise
            that is not written yet (in the student build: its ``NotImplementedError``
            with the task's message, e.g. ``log_approx``) is left out of the rows. A method
            named in ``methods`` always runs (and raises if it is not written).
        precisions: subset of :data:`PRECISIONS` (the rows keep the order of
            :data:`PRECISIONS`).
        seed: random seed of the inputs.
        sizes: per op, the ``size`` of :func:`draw_inputs`; default :data:`DEFAULT_SIZES`.
        int_high: integer inputs are uniform in ``[-int_high, int_high]``.
        options: per matmul method name, the ``options`` of :func:`run_method` (e.g.
            ``{"log_approx": {"frac_bits": 6}, "svd": {"rank_A": 8}}``). Unless ``rank_A`` or
            ``rank_B`` is given, ``"svd"`` factors ``A`` at full rank (``rank_A = min(M, K)``),
            so its row shows the rounding error of the factored product, not a truncation
            error (with both ranks None the method is the plain ``A @ B``).
        progress: show a tqdm bar over the grid.

    Returns:
        One dict per (op, method, precision) with keys :data:`COLUMNS`: ``bits`` of the
        format, ``kind`` ``"float"``/``"int"``, ``mae`` and ``rel_fro`` (floats),
        ``n_elements`` and ``shape`` of the output, ``computed`` (how the run was done, e.g.
        which torch ops were emulated in float32).
    """
    if isinstance(ops, str):
        ops = (ops,)
    ops = tuple(_check_op(op) for op in ops)
    if not ops:
        raise ValueError("ops: got an empty selection, expected at least one of conv2d, matmul")
    if isinstance(precisions, str):
        precisions = (precisions,)
    chosen = {check_choice("precisions", p, PRECISIONS) for p in precisions}
    if not chosen:
        raise ValueError("precisions: got an empty selection, expected at least one precision")
    precisions = tuple(p for p in PRECISIONS if p in chosen)
    check_int("int_high", int_high, low=1)
    for p in precisions:
        if p in INT_PRECISIONS and int_high > torch.iinfo(DTYPES[p]).max:
            raise ValueError(
                f"int_high: got {int_high}, expected at most {torch.iinfo(DTYPES[p]).max} so "
                f"that the integer inputs fit {p} (the same inputs serve every integer format)"
            )
    per_op = _select_methods(ops, methods)
    if options is not None:
        if not isinstance(options, Mapping):
            raise TypeError(f"options: got {describe(options)}, expected a dict or None")
        for key in options:
            if key not in METHODS["matmul"]:
                raise ValueError(
                    f"options: got key {key!r}, expected matmul method names "
                    f"({', '.join(METHODS['matmul'])}); conv2d methods take no options"
                )
    sizes = dict(sizes or {})
    unknown = set(sizes) - set(ops)
    if unknown:
        raise ValueError(f"sizes: got keys {sorted(unknown)}, expected keys among {ops}")

    grid = [(op, m, p) for op in ops for m in per_op[op] for p in precisions]
    inputs, exact = {}, {}
    for op in ops:
        for kind in ("float", "int"):
            inputs[op, kind] = draw_inputs(op, kind, sizes.get(op), seed, int_high)
            exact[op, kind] = reference(op, inputs[op, kind])

    rows = []
    for op, method, precision in tqdm(grid, desc="precision grid", disable=not progress):
        kind = "int" if precision in INT_PRECISIONS else "float"
        opts = dict((options or {}).get(method, {}))
        if method == "svd" and "rank_A" not in opts and "rank_B" not in opts:
            opts["rank_A"] = min(inputs[op, kind]["A"].shape)
        try:
            y, how = _run(op, method, precision, inputs[op, kind], opts)
        except NotImplementedError as exc:
            if methods is not None or not _is_skipped_extra_credit(op, method, exc):
                raise
            continue  # an optional exercise the student has not written: no rows
        mae, rel = reconstruction_error(y, exact[op, kind])
        rows.append(
            {
                "op": op,
                "method": method,
                "precision": precision,
                "bits": BITS[precision],
                "kind": kind,
                "mae": mae,
                "rel_fro": rel,
                "n_elements": y.numel(),
                "shape": "x".join(map(str, y.shape)),
                "computed": how,
            }
        )
    return rows


if __name__ == "__main__":  # the study's command line, kept at its documented name
    from dnnkernels.precision_report import main

    main()
