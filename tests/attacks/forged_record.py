"""Replace the runner's recorder with one that reports an empty record (no operations, no
FLOPs, nothing from outside), then take the ``A @ B`` shortcut in ``matmul_log``. A forged
record shows less work than any correct result needs: every recorded task earns nothing
(a student who tampers with the measuring gets 0), only ``log_approx`` keeps its points."""

from attacks import PRECISION_KERNELS, losing, replace_answer

STUDENT = "attack_forged_record"
DESERVED = losing(*PRECISION_KERNELS)

FORGER = """
import sys

_EMPTY = {"ops": {}, "elements": {}, "functions": {}, "flops": 0, "unknown": 0, "left": 0,
          "origin": True, "intact": True}


def _forged(function, args, kwargs, known=()):
    return function(*args, **kwargs), dict(_EMPTY)


_frame = sys._getframe()
while _frame is not None:
    if "record_call" in _frame.f_globals:
        _frame.f_globals["record_call"] = _forged
    _frame = _frame.f_back


def matmul_log(A, B):
    return A @ B
"""


def build(ctx):
    return replace_answer(ctx.solution, "precision_matmul_log", FORGER)
