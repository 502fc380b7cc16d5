"""The hidden checks against plausible student bugs, run in-process (no sandbox, no nbgrader).

Each hidden check (``autograder/hidden/test_<assignment>.py``) takes a ``student`` object
with ``call(name, *args, **kwargs)`` and ``adapter(name, *args, **kwargs)``. Here
:class:`LocalStudent` answers them with plain Python functions, passing every value through
the runner's wire format (``autograder.protocol``) both ways and running the runner's own
adapters, as the sandboxed runner does. That makes it cheap to check, for every bug of
:data:`BUGS` -- the reference of ``src/`` with one plausible mistake patched into a copy of
its source --, which checks catch it, and that the reference itself passes every check.

The last tests scan what a student is shown (check titles and failure messages) for the
numbers a check sends to the student's code: feedback names the kind of case that failed,
never its values.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import re
import textwrap
import threading
import time
from dataclasses import dataclass, field

import pytest
import torch
from helpers import ACCUMULATE_LOOP

from autograder import protocol, runner
from autograder.paths import REPO
from autograder.student import CheckFailed, StudentError
from dnnkernels import accumulator, compress, conv2d, energy, lowrank, matmul
from dnnkernels.tasks import ASSIGNMENTS, TASKS

HIDDEN = REPO / "autograder" / "hidden"
MODULES = {
    "conv2d": conv2d,
    "matmul": matmul,
    "lowrank": lowrank,
    "compress": compress,
    "accumulator": accumulator,
    "energy": energy,
}


# ---------------------------------------------------------------------------- the checks


@functools.cache
def hidden_module(assignment: str):
    path = HIDDEN / f"test_{assignment}.py"
    spec = importlib.util.spec_from_file_location(f"_hidden_checks_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Check:
    name: str
    task: str
    points: float
    function: object = field(repr=False)

    @property
    def title(self) -> str:
        return (self.function.__doc__ or "").strip().splitlines()[0].rstrip(".")


def checks_of(task_id: str) -> list[Check]:
    """The hidden checks of one task, in file order, with their markers."""
    module = hidden_module(TASKS[task_id].assignment)
    found = []
    for name, function in vars(module).items():
        if not (name.startswith("test_") and callable(function)):
            continue
        marks = getattr(function, "pytestmark", [])
        tasks = [m.name for m in marks if m.name in TASKS]
        points = [float(m.args[0]) for m in marks if m.name == "points"]
        if tasks == [task_id]:
            found.append(Check(name, task_id, points[0] if points else 0.0, function))
    return found


ALL_CHECKS = [c for task in TASKS for c in checks_of(task)]


# ---------------------------------------------------------------------------- the student


def _roundtrip(value):
    blobs: list[bytes] = []
    return protocol.decode(protocol.encode(value, blobs), blobs)


def as_cell(function, replacements=(), cell: str = "answer", extra_globals=None):
    """``function`` recompiled from its source as if defined in a notebook cell.

    ``replacements``: ``(old, new)`` pairs applied to the source (each must occur), which
    is how a bug is patched into a copy of the reference; the code object's file name is
    ``<cell ...>`` (what the runner gives the student's cells).
    """
    source = textwrap.dedent(inspect.getsource(function))
    for old, new in replacements:
        assert old in source, f"{function.__name__}: {old!r} is not in the reference any more"
        source = source.replace(old, new)
    namespace = dict(vars(inspect.getmodule(function)))
    namespace.update(extra_globals or {})
    exec(compile(source, f"<cell {cell}>", "exec"), namespace)
    return namespace[function.__name__]


def reference_namespace() -> dict:
    """What a student's namespace holds after running the solution's answer cells."""
    namespace = {}
    for task in TASKS.values():
        namespace[task.name] = as_cell(
            getattr(MODULES[task.module], task.name), cell=task.answer_cell_id
        )
    return namespace


def _scalars(value, found: set[float]) -> None:
    """Numbers sent to the student's code: scalars, and the sizes of tensors."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        found.add(float(value))
    elif isinstance(value, torch.Tensor):
        found.update(float(d) for d in value.shape)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _scalars(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _scalars(item, found)


class LocalStudent:
    """The ``student`` fixture of the hidden checks, answered in this process."""

    def __init__(self, **overrides) -> None:
        self.namespace = {**reference_namespace(), **overrides}
        self.sent: set[float] = set()

    def _run(self, function, args, kwargs):
        _scalars((args, kwargs), self.sent)
        args, kwargs = _roundtrip(tuple(args)), _roundtrip(dict(kwargs))
        try:
            value = function(*args, **kwargs)
        except runner.MissingName as exc:
            raise StudentError(f"`{exc.args[0]}` is not defined") from None
        except Exception as exc:  # noqa: BLE001 - reported like the runner does
            raise StudentError(f"raised {type(exc).__name__}: {exc}") from None
        try:
            return _roundtrip(value)
        except protocol.ProtocolError as exc:
            raise StudentError(f"returned something unusable ({exc})") from None

    def call(self, name, *args, **kwargs):
        function = self.namespace.get(name)
        if not callable(function):
            raise StudentError(f"`{name}` is not defined after running your answer cells")
        return self._run(function, args, kwargs)

    def adapter(self, name, *args, **kwargs):
        return self._run(functools.partial(runner.ADAPTERS[name], self.namespace), args, kwargs)

    def timed_call(self, name, *args, **kwargs):
        """``call`` and its CPU seconds (this process, every thread, as the sandbox's)."""
        before = time.process_time()
        value = self.call(name, *args, **kwargs)
        return value, time.process_time() - before


def run_checks(checks, student) -> dict[str, str | None]:
    """check name -> None (passed) or the message a student would see."""
    outcome = {}
    for check in checks:
        try:
            check.function(student)
        except CheckFailed as exc:
            outcome[check.name] = str(exc)
        else:
            outcome[check.name] = None
    return outcome


# ---------------------------------------------------------------------------- the bugs


class SVDLinearSApart(compress.SVDLinear):
    """S kept as a third parameter: the products are right, the contract is not."""

    def __init__(self, linear, rank):
        torch.nn.Module.__init__(self)
        U, S, Vh = matmul.truncated_svd(linear.weight.detach(), rank)
        self.V = torch.nn.Parameter(Vh.T.contiguous())
        self.S = torch.nn.Parameter(S.clone())
        self.Ut = torch.nn.Parameter(U.T.contiguous())
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach())

    def forward(self, x):
        y = ((x @ self.V) * self.S) @ self.Ut
        return y if self.bias is None else y + self.bias


def _half_unsafe_svd(M, rank=None):
    """truncated_svd without the float32 detour for float16 / bfloat16 (LAPACK has none)."""
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    r = min(M.shape) if rank is None else rank
    return U[:, :r], S[:r], Vh[:r]


def _rank_for_ratio_in_floats(in_features, out_features, ratio):
    return math.floor(
        (ratio * (in_features * out_features + out_features) - out_features)
        / (in_features + out_features)
    )


def _accumulate_row_loop(filename: str = "<cell bit_width_accumulate_answer>"):
    """``accumulate`` as a correct Python loop over the accumulations."""
    scope = {"torch": torch, "math": math}
    exec(compile(ACCUMULATE_LOOP, filename, "exec"), scope)
    return scope["_loop"]


def _in_a_thread(function):
    def accumulate(*args, **kwargs):
        box = {}
        worker = threading.Thread(target=lambda: box.setdefault("v", function(*args, **kwargs)))
        worker.start()
        worker.join()
        return box["v"]

    return accumulate


@dataclass(frozen=True)
class Bug:
    """A plausible student mistake: the reference of ``task`` with ``replacements``."""

    task: str
    replacements: tuple = ()
    function: object = None  # or a whole replacement (class or function)
    extra_globals: dict = field(default_factory=dict)
    #: the checks it must fail (all others of the task must pass)
    fails: tuple = ()

    def student(self) -> LocalStudent:
        task = TASKS[self.task]
        if self.function is not None:
            implementation = self.function
        else:
            implementation = as_cell(
                getattr(MODULES[task.module], task.name),
                self.replacements,
                task.answer_cell_id,
                self.extra_globals,
            )
        return LocalStudent(**{task.name: implementation})


BUGS = {
    # integer products in float64, cast back: int32 sums that must wrap come out wrong
    "im2col_float64_then_cast": Bug(
        "precision_im2col",
        (
            (
                "y = k.reshape(O, C * kh * kw) @ patches",
                "y = (k.reshape(O, C * kh * kw).double() @ patches.double()).to(x.dtype)",
            ),
        ),
        fails=("test_im2col_integer_wraparound",),
    ),
    # transforms as float64 tensors, whatever the input dtype
    "winograd_float64_transforms": Bug(
        "precision_winograd",
        (("winograd_transforms(m, x.dtype)", "winograd_transforms(m)"),),
        fails=("test_winograd_low_precision",),
    ),
    # FFT in the input dtype: torch has no half-precision FFT for these sizes
    "fft_in_input_dtype": Bug(
        "precision_fft",
        (
            (
                "work = torch.float64 if x.dtype == torch.float64 else torch.float32",
                "work = x.dtype",
            ),
        ),
        fails=("test_fft_half_precision",),
    ),
    # SVD called in the input dtype (no float32 detour for bfloat16)
    "matmul_svd_half_svd": Bug(
        "precision_matmul_svd",
        extra_globals={"truncated_svd": _half_unsafe_svd},
        fails=("test_matmul_svd_both_factors",),
    ),
    # a block of zero rows when one row has more than 2**20 products
    "matmul_log_zero_row_block": Bug(
        "precision_matmul_log",
        (("rows = max(1, (1 << 20) // (K * N))", "rows = (1 << 20) // (K * N)"),),
        fails=("test_matmul_log_blocks",),
    ),
    "matmul_log_approx_zero_row_block": Bug(
        "precision_matmul_log_approx",
        (("rows = max(1, (1 << 20) // (K * N))", "rows = (1 << 20) // (K * N)"),),
        fails=("test_matmul_log_approx_bits_and_zeros",),
    ),
    # the tail energy as total - cumsum: cancels to 0 for tiny singular values
    "errors_by_subtraction": Bug(
        "svd_rank_errors",
        (
            (
                "tail = torch.flip(torch.cumsum(torch.flip(energy, dims=(0,)), dim=0), dims=(0,))",
                "tail = energy.sum() - torch.cat([energy.new_zeros(1), energy.cumsum(0)[:-1]])",
            ),
        ),
        fails=("test_errors_tiny_singular_values",),
    ),
    # singular values of a float32 matrix computed in float32
    "errors_svd_in_float32": Bug(
        "svd_rank_errors",
        (
            (
                "s = torch.linalg.svdvals(M.to(torch.float64))",
                "s = torch.linalg.svdvals(M).to(torch.float64)",
            ),
        ),
        fails=("test_errors_tiny_singular_values",),
    ),
    # only the right-first order counted
    "flops_one_order": Bug(
        "svd_rank_flops",
        (("return min(right_first, left_first), dense", "return right_first, dense"),),
        fails=("test_flops_rectangular",),
    ),
    # S as a separate parameter (the contract folds it into SUt)
    "svd_linear_s_apart": Bug(
        "mnist_svd_linear", function=SVDLinearSApart, fails=("test_svd_linear_parameters",)
    ),
    # the answer computed in floats: wrong where the nearest float lies just below a boundary
    "rank_for_ratio_in_floats": Bug(
        "mnist_rank_for_ratio",
        function=_rank_for_ratio_in_floats,
        fails=("test_rank_for_ratio_boundaries",),
    ),
    # overflow flags of wrap-around from the final sum only (a partial sum that comes back)
    "accumulate_wrap_flags_from_total": Bug(
        "bit_width_accumulate",
        (
            (
                "return torch.remainder(total - lo, 2**bits) + lo, overflow",
                "return torch.remainder(total - lo, 2**bits) + lo, (total < lo) | (total > hi)",
            ),
        ),
        fails=(
            "test_accumulate_vectorized",
            "test_accumulate_wrap",
            "test_accumulate_shapes_and_extremes",
        ),
    ),
    # the loop over the accumulations the exercise forbids, plainly and in the ways that
    # evaded the old line-counting check (a worker thread, code compiled under another
    # file name): CPU time measured from outside sees them all
    "accumulate_row_loop": Bug(
        "bit_width_accumulate",
        function=_accumulate_row_loop(),
        fails=("test_accumulate_vectorized",),
    ),
    "accumulate_row_loop_in_a_thread": Bug(
        "bit_width_accumulate",
        function=_in_a_thread(_accumulate_row_loop()),
        fails=("test_accumulate_vectorized",),
    ),
    "accumulate_row_loop_other_file_name": Bug(
        "bit_width_accumulate",
        function=_accumulate_row_loop("<string>"),
        fails=("test_accumulate_vectorized",),
    ),
    # K = 0 not handled (prefix[..., -1] of an empty prefix)
    "accumulate_no_products": Bug(
        "bit_width_accumulate",
        (("if products.shape[-1] == 0 or bits >= 63:", "if bits >= 63:"),),
        fails=("test_accumulate_shapes_and_extremes",),
    ),
    # the range ends counted as overflow
    "accumulate_range_ends": Bug(
        "bit_width_accumulate",
        (
            (
                "overflow = (low_prefix < lo) | (high_prefix > hi)",
                "overflow = (low_prefix <= lo) | (high_prefix >= hi)",
            ),
        ),
        fails=("test_accumulate_vectorized", "test_accumulate_shapes_and_extremes"),
    ),
    # -lo instead of -lo - 1: one bit too many when lo is a negative power of two
    "min_bits_negative_power": Bug(
        "bit_width_min_bits",
        (("max(-lo - 1, 0).bit_length()", "max(-lo, 0).bit_length()"),),
        fails=("test_min_bits_ranges", "test_min_bits_powers_of_two"),
    ),
    # integer division: right only for multiplier widths that are multiples of 8
    "energy_floor_division": Bug(
        "bit_width_energy",
        (("s_mul = 64 * (bits_mul / 8) ** 2", "s_mul = 64 * (bits_mul // 8) ** 2"),),
        fails=("test_energy_other_widths",),
    ),
}


# ---------------------------------------------------------------------------- tests


def test_points_add_up_to_each_task():
    """Every task has hidden checks, and their points add up to the task's points."""
    for task in TASKS.values():
        checks = checks_of(task.id)
        assert checks, task.id
        assert sum(c.points for c in checks) == task.points, task.id
    names = {
        name
        for assignment in ASSIGNMENTS
        for name in vars(hidden_module(assignment))
        if name.startswith("test_")
    }
    assert names == {c.name for c in ALL_CHECKS}, "a hidden check without exactly one task"


@pytest.fixture(scope="module")
def reference():
    return LocalStudent()


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.name)
def test_reference_passes(check, reference):
    """The reference solution earns every point of every hidden check."""
    check.function(reference)


@pytest.mark.parametrize("name", sorted(BUGS))
def test_bug_is_caught(name):
    """Each bug fails exactly the checks meant for it; the task's other checks still pass."""
    bug = BUGS[name]
    outcome = run_checks(checks_of(bug.task), bug.student())
    failed = {check for check, message in outcome.items() if message is not None}
    assert failed == set(bug.fails), outcome
    lost = sum(c.points for c in checks_of(bug.task) if c.name in failed)
    assert 0 < lost < TASKS[bug.task].points or len(bug.fails) == len(checks_of(bug.task))


def test_energy_feedback_names_the_kind_of_width():
    """The byte-width bug fails the check of other widths, whose message says so."""
    _, other = checks_of("bit_width_energy")
    outcome = run_checks([other], BUGS["energy_floor_division"].student())
    assert "a multiplier width that is not a multiple of 8" in outcome[other.name]


# ------------------------------------------------- feedback shows no hidden input


def _perturb(value):
    """A wrong answer of the same kind: numbers moved, flags flipped."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 1.0
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            return ~value
        return value + 1
    if isinstance(value, tuple):
        return tuple(_perturb(v) for v in value)
    if isinstance(value, dict):
        return {k: _perturb(v) if k == "y" else v for k, v in value.items()}
    return value


def _misshape(value):
    """A wrong answer of the wrong shape (one entry too few) or type."""
    if isinstance(value, torch.Tensor):
        return value[..., :-1] if value.ndim else value.reshape(1)
    if isinstance(value, tuple):
        return tuple(_misshape(v) for v in value)
    if isinstance(value, (int, float)):
        return [value]
    return value


def _wrong_student(wrong) -> LocalStudent:
    """Every function of the reference, its result made wrong by ``wrong``."""
    student = LocalStudent()
    for task in TASKS.values():
        original = student.namespace[task.name]
        if isinstance(original, type):

            class Wrong(original):
                def forward(self, x):
                    return wrong(super().forward(x))

            student.namespace[task.name] = Wrong
        else:
            # defined as in a cell, so that the line-count adapter counts it as the student's
            cell = {"_original": original, "_wrong": wrong}
            source = (
                f"def {task.name}(*args, **kwargs):\n"
                "    return _wrong(_original(*args, **kwargs))\n"
            )
            exec(compile(source, f"<cell {task.answer_cell_id}>", "exec"), cell)
            student.namespace[task.name] = cell[task.name]
    return student


#: words that hold digits without being a hidden input
_VOCABULARY = re.compile(
    r"\b(?:b?float\d+|u?int\d+|complex\d+|F\(\dx\d, \dx\d\)|\dx\d|log2|2\*\*bits"
    r"|multiples? of 8|dimension \d|\d+ dimensions)"
)
_NUMBERS = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def numbers_shown(text: str) -> set[float]:
    return {float(n) for n in _NUMBERS.findall(_VOCABULARY.sub(" ", text))}


@pytest.mark.parametrize("wrong", [_perturb, _misshape], ids=["wrong values", "wrong shapes"])
def test_feedback_reveals_no_hidden_input(wrong):
    """No number a check sends to the student's code appears in its title or message."""
    leaks, failed = [], 0
    for check in ALL_CHECKS:
        student = _wrong_student(wrong)
        outcome = run_checks([check], student)
        message = outcome[check.name] or ""
        failed += outcome[check.name] is not None
        sent = student.sent - {0.0, 1.0}
        for where, text in (("title", check.title), ("message", message)):
            shown = numbers_shown(text) & sent
            if shown:
                leaks.append(f"{check.name} {where} shows {sorted(shown)}: {text}")
    assert not leaks, "\n".join(leaks)
    # (only the checks of structure, such as SVDLinear's parameters, pass a wrong value)
    assert failed >= len(ALL_CHECKS) - 1


def test_student_exceptions_are_shown_without_numbers():
    """A student's exception names the hidden input's sizes: they are masked in feedback."""
    spec = importlib.util.spec_from_file_location("_hidden_conftest", HIDDEN / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    def broken(A, B):
        return A @ B.T

    student = LocalStudent(matmul_log=broken)
    check = checks_of("precision_matmul_log")[0]
    with pytest.raises(StudentError) as excinfo:
        check.function(student)
    message, grader_error = conftest._message(excinfo)
    assert not grader_error and message.startswith("raised RuntimeError")
    assert "#x#" in message and not numbers_shown(message) & student.sent, message
    assert conftest.mask_numbers("index 12 is out of bounds for dim 1 of int64") == (
        "index # is out of bounds for dim # of int64"
    )
