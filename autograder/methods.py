"""Method checks: what a student's function did, judged in the trusted process.

The runner records every call of the functions in :data:`autograder.student.RECORDED_CALLS`
(and the forward pass of the ``svd_linear`` adapter) with torch's own modes
(``runner.record_call``: a ``TorchDispatchMode`` for the aten operations, a
``TorchFunctionMode`` for the Python-level functions, ``FlopCounterMode`` for the FLOPs) and
sends the record back as plain data. This module validates the record (it comes from the
student's process) and decides:

- **library shortcuts**: no library convolution (``aten.convolution`` and its kin, whatever
  Python name reached it) in the convolution exercises; no matrix product at all in
  ``matmul_log``; ``matmul_svd`` and ``SVDLinear.forward`` must not spend the FLOPs of the
  dense product of the rebuilt matrices;
- **computed outside the recording**: the result must come out of recorded torch
  operations, and at most a few constants' worth of values may enter them from outside
  (values computed with the recording switched off, with numpy, or through lists);
- **too little work for the result** (the method checks' own calls, whose results are
  checked): at least the multiplications (or exponentials, FFTs, FLOPs) that a correct
  method needs for that size, so that a forged or emptied record fails.

A violation raises :class:`MethodViolation`: the conftest then voids every point of the
task (values computed by the library are not the exercise). Messages name what was found
and what the exercise asks for, never the hidden inputs.
"""

from __future__ import annotations

import re

from autograder.student import CheckFailed, Recorded

#: aten operations that are a library convolution (``_convert_...`` is not one)
CONVOLUTION = re.compile(r"conv(?!ert)")
#: aten operations that are a matrix product (or contain one)
MATRIX_PRODUCT = re.compile(r"mm|mv$|dot$|matmul|linear|tensordot|einsum|inner$|" + r"conv(?!ert)")
MULTIPLY = ("aten.mul", "aten.mul_", "aten.addcmul", "aten.addcmul_", "aten.multiply")
EXPONENTIAL = ("aten.exp", "aten.exp_", "aten.exp2", "aten.exp2_", "aten.pow", "aten.pow_")
EXPONENTIAL += ("aten.float_power", "aten.expm1", "aten.ldexp")
LOGARITHM = ("aten.log", "aten.log2", "aten.log10", "aten.log1p", "aten.frexp", "aten.log_")
LOGARITHM += ("aten.log2_", "aten.log10_")
#: elements of outside values tolerated in one call (the constants of a cell, e.g.
#: Winograd transforms), or half the result's size when that is larger
CONSTANTS = 4096
#: a factored product may cost up to this many times the costlier honest order
SLACK = 2.0

CONV_TASKS = {
    "conv2d_im2col": "the im2col patch matrix and one matrix product",
    "conv2d_winograd": "Winograd's transforms and the element-wise products of the tiles",
    "conv2d_fft": "real FFTs and the product of their spectra",
}


class MethodViolation(CheckFailed):
    """The function took a forbidden shortcut: none of its task's points count."""


# ---------------------------------------------------------------------------- records


def validate(record: object, name: str) -> dict:
    """The runner's record, checked for shape (it comes from the student's process)."""
    damaged = MethodViolation(
        f"`{name}`: the recording of its torch operations came back damaged or missing "
        "(code that switches off or replaces the grader's recording earns no points)"
    )
    if not isinstance(record, dict):
        raise damaged
    for key in ("ops", "elements", "functions"):
        table = record.get(key)
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in table.items()
        ):
            raise damaged
    for key in ("flops", "unknown", "left"):
        if type(record.get(key)) is not int or record[key] < 0:
            raise damaged
    for key in ("origin", "intact"):
        if type(record.get(key)) is not bool:
            raise damaged
    if not record["intact"]:
        raise MethodViolation(
            f"`{name}` switched off or replaced the grader's recording of its torch "
            "operations: the method cannot be checked, so the task earns no points"
        )
    return record


def _found(record: dict, pattern: re.Pattern) -> list[str]:
    ops = [op for op in record["ops"] if pattern.search(op.removeprefix("aten."))]
    functions = [f for f in record["functions"] if pattern.search(f.rpartition(".")[2])]
    return sorted(set(functions) | set(ops))


def _elements(record: dict, names) -> int:
    return sum(record["elements"].get(n, 0) for n in names)


def _numel(value) -> int:
    values = value if isinstance(value, (tuple, list)) else (value,)
    return sum(int(v.numel()) for v in values if hasattr(v, "numel"))


def outside(record: dict, name: str, result_numel: int) -> None:
    """The result must come out of recorded torch operations, not from outside."""
    if not record["origin"]:
        raise MethodViolation(
            f"`{name}` returned a tensor that no recorded torch operation produced (computed "
            "with the grader's recording switched off, or outside torch): no points for this task"
        )
    allowed = max(CONSTANTS, result_numel // 2)
    if record["unknown"] + record["left"] > allowed:
        raise MethodViolation(
            f"`{name}` used more values computed outside its recorded torch operations than "
            "a few constants (numpy, Python lists, or the recording switched off): compute "
            "with torch operations on the tensors you are given; no points for this task"
        )


# ---------------------------------------------------------------------------- FLOPs


def factored_flops(m: int, k: int, n: int, rank_a, rank_b) -> tuple[int, int] | None:
    """(cheapest, costlier) FLOPs of the factored products of ``matmul_svd``'s docstring.

    None when neither matrix is factored (the plain product is the method).
    """
    if rank_a is None and rank_b is None:
        return None
    if rank_b is None:  # U_A @ (S_A * (Vh_A @ B))
        cost = 2 * rank_a * k * n + 2 * m * rank_a * n
        return cost, cost
    if rank_a is None:  # ((A @ U_B) * S_B) @ Vh_B
        cost = 2 * m * k * rank_b + 2 * m * rank_b * n
        return cost, cost
    r, s = rank_a, rank_b
    core = 2 * r * k * s
    left = 2 * m * r * s + 2 * m * s * n  # (U_A @ core) @ Vh_B
    right = 2 * r * s * n + 2 * m * r * n  # U_A @ (core @ Vh_B)
    return core + min(left, right), core + max(left, right)


def svd_linear_flops(rows: int, in_features: int, out_features: int, rank: int) -> int:
    """FLOPs of ``(x @ V) @ SUt`` for ``rows`` input rows."""
    return 2 * rows * rank * (in_features + out_features)


def _too_many_flops(record: dict, name: str, honest: int, dense: int, what: str) -> None:
    flops = record["flops"]
    if flops > SLACK * honest and flops >= 0.9 * dense:
        raise MethodViolation(
            f"`{name}` spent the FLOPs of a dense product ({flops / honest:.1f}x those of the "
            f"factored product): {what}; a product that is not factored earns no points "
            "for this task"
        )


def _matmul_svd_shapes(call: Recorded):
    A, B = call.args[0], call.args[1]
    ranks = list(call.args[2:4]) + [None, None]
    rank_a = call.kwargs.get("rank_A", ranks[0])
    rank_b = call.kwargs.get("rank_B", ranks[1])
    m, k = A.shape
    n = B.shape[1]
    return m, k, n, rank_a, rank_b


def _svd_linear_shapes(call: Recorded):
    weight, _, rank, x = call.args[:4]
    out_features, in_features = weight.shape
    rows = int(x.numel()) // in_features
    return rows, in_features, out_features, int(rank)


# ---------------------------------------------------------------------------- judging


def judge(call: Recorded) -> dict:
    """Raise :class:`MethodViolation` if one recorded call took a forbidden shortcut."""
    name = "SVDLinear" if call.name == "svd_linear" else call.name
    record = validate(call.record, name)
    if call.name in CONV_TASKS:
        found = _found(record, CONVOLUTION)
        if found:
            raise MethodViolation(
                f"`{name}` called a library convolution ({', '.join(found[:4])}): the "
                f"exercise asks for {CONV_TASKS[call.name]}, so none of its points count"
            )
    if call.name == "matmul_log":
        found = _found(record, MATRIX_PRODUCT)
        if found or record["flops"] > 0:
            raise MethodViolation(
                f"`matmul_log` computed a matrix product ({', '.join(found[:4]) or 'FLOPs'}): "
                "the exercise asks for every product as 2**(log2|a| + log2|b|) and a sum "
                "(no @, matmul, mm, bmm, einsum, dot, linear), so none of its points count"
            )
    if call.name == "matmul_svd":
        m, k, n, rank_a, rank_b = _matmul_svd_shapes(call)
        costs = factored_flops(m, k, n, rank_a, rank_b)
        if costs is not None:
            _too_many_flops(
                record,
                name,
                costs[1],
                2 * m * k * n,
                "multiply by the factors, never by a rebuilt (M, K) or (K, N) matrix",
            )
    if call.name == "svd_linear":
        rows, i, o, r = _svd_linear_shapes(call)
        _too_many_flops(
            record,
            name,
            svd_linear_flops(rows, i, o, r),
            2 * rows * i * o,
            "the forward pass is (x @ V) @ SUt, never x times a rebuilt weight",
        )
    value = call.value.get("y") if isinstance(call.value, dict) else call.value
    outside(record, name, _numel(value))
    return record


def judge_all(calls: list[Recorded]) -> None:
    """:func:`judge` every recorded call (the hidden checks' and the method check's own)."""
    for call in calls:
        judge(call)


def _short(name: str, what: str) -> MethodViolation:
    return MethodViolation(
        f"`{name}`: the recording shows less work than a correct result of this size needs "
        f"({what}): the grader's recording was bypassed, so no points for this task"
    )


def require_work(call: Recorded) -> None:
    """The method check's own call (its result checked): at least a correct method's work.

    Multiplications are counted as half the FLOPs of the matrix products plus the elements
    of element-wise multiplications; a correct method cannot do fewer.
    """
    record = validate(call.record, call.name)
    multiplies = record["flops"] // 2 + _elements(record, MULTIPLY)
    if call.name in CONV_TASKS:
        x, k = call.args[0], call.args[1]
        N, C, H, W = x.shape
        O, _, kh, kw = k.shape
        stride = call.kwargs.get("stride", 1)
        padding = call.kwargs.get("padding", 0)
        Ho = (H + 2 * padding - kh) // stride + 1
        Wo = (W + 2 * padding - kw) // stride + 1
        if call.name == "conv2d_im2col":
            needed = N * O * Ho * Wo * C * kh * kw
        elif call.name == "conv2d_winograd":
            needed = N * O * C * Ho * Wo  # a*a products per m*m outputs, a > m
        else:
            needed = N * O * C * H * (W // 2 + 1)  # the spectra's product, per frequency
            ffts = sum(v for op, v in record["elements"].items() if "fft" in op)
            if ffts < N * C * H * (W // 2 + 1):
                raise _short(call.name, "no FFT of the input")
        if multiplies < needed:
            raise _short(call.name, "fewer multiplications than the method needs")
    elif call.name == "matmul_log":
        A, B = call.args[0], call.args[1]
        (m, k), n = A.shape, B.shape[1]
        if _elements(record, EXPONENTIAL) < m * k * n:
            raise _short(call.name, "fewer powers of two than products")
        if _elements(record, LOGARITHM) < m * k + k * n:
            raise _short(call.name, "fewer logarithms than entries")
    elif call.name == "matmul_svd":
        m, k, n, rank_a, rank_b = _matmul_svd_shapes(call)
        cheapest, costlier = factored_flops(m, k, n, rank_a, rank_b)
        if record["flops"] < cheapest / SLACK:
            raise _short(call.name, "fewer FLOPs than the factored product")
        if record["flops"] > SLACK * costlier:
            raise MethodViolation(
                f"`matmul_svd` spent {record['flops'] / costlier:.1f}x the FLOPs of the "
                "factored product: multiply by the factors, never by a rebuilt matrix; a "
                "product that is not factored earns no points for this task"
            )
    elif call.name == "svd_linear":
        rows, i, o, r = _svd_linear_shapes(call)
        honest = svd_linear_flops(rows, i, o, r)
        if record["flops"] < honest / SLACK:
            raise _short("SVDLinear", "fewer FLOPs than the two thin products")
        if record["flops"] > SLACK * honest:
            raise MethodViolation(
                f"`SVDLinear.forward` spent {record['flops'] / honest:.1f}x the FLOPs of "
                "(x @ V) @ SUt: multiply by the two factors, never by the rebuilt weight; a "
                "layer that is not factored earns no points for this task"
            )


def check_method(student, name: str, *args, **kwargs):
    """The method check of one function: its own recorded call and every earlier one.

    Returns the value of the method check's own call (for the caller to compare; a wrong
    value fails the check without voiding the task, the value checks already cost it).
    """
    judge_all(student.recorded_calls(name))  # first: a failing call below must not hide them
    if name == "svd_linear":
        value = student.adapter(name, *args, **kwargs)
    else:
        value = student.call(name, *args, **kwargs)
    own = student.recorded_calls(name)[-1]
    judge(own)
    return value, own


#: what the other checks of a task say once its method check found a forbidden shortcut
VOIDED = "not counted: the method check of this task found a forbidden shortcut (see below)"


def apply_vetoes(records: list) -> None:
    """A method check that found a forbidden shortcut voids every point of its task."""
    vetoed = {r["task"] for r in records if r.get("veto")}
    for record in records:
        if record["task"] in vetoed and not record.get("veto"):
            if record["outcome"] == "passed":
                record.update(outcome="failed", message=VOIDED)
            record["earned"] = 0.0


__all__ = [
    "MethodViolation",
    "apply_vetoes",
    "check_method",
    "factored_flops",
    "judge",
    "judge_all",
    "require_work",
    "svd_linear_flops",
    "validate",
]
