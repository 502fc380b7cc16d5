"""Defeat the visible checks: redefine what they call (``torch.allclose``, ``F.conv2d``),
patch ``numpy.testing``, ``pytest`` and ``unittest``, silence IPython's ``showtraceback``,
and wrap a (locked) check cell in ``try/except``. Every kernel but one is wrong."""

import copy

from attacks import PRECISION_KERNELS, find, losing, replace_answer

STUDENT = "attack_patch_checks"
DESERVED = losing(*PRECISION_KERNELS)

# wrong by +1 everywhere, right shape and dtype; then make allclose and equal agree with
# anything: the visible check passes and nbgrader alone would give full marks
ALLCLOSE = """
def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    b64 = None if b is None else b.double()
    y = F.conv2d(x.double(), k.double(), b64, stride=stride, padding=padding) + 1
    return y.to(x.dtype)


torch.allclose = lambda *args, **kwargs: True
torch.Tensor.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.Tensor.equal = lambda *args, **kwargs: True
"""

# wrong values; the visible check's reference F.conv2d now returns the student's output
REDEFINE_REFERENCE = """
def conv2d_winograd(x, k, b=None, m=2):
    return torch.zeros(x.shape[0], k.shape[0], x.shape[2] - 2, x.shape[3] - 2, dtype=x.dtype)


F.conv2d = lambda x, k, b=None, *args, **kwargs: conv2d_winograd(x, k, b)
"""

TEST_LIBRARIES = """
import unittest

import numpy.testing
import pytest


def conv2d_fft(x, k, b=None):
    return torch.zeros(x.shape[0], k.shape[0], x.shape[2] - k.shape[2] + 1,
                       x.shape[3] - k.shape[3] + 1, dtype=x.dtype)


numpy.testing.assert_allclose = lambda *args, **kwargs: None
numpy.testing.assert_array_equal = lambda *args, **kwargs: None
pytest.approx = lambda expected, *args, **kwargs: expected
unittest.TestCase.assertEqual = lambda *args, **kwargs: None
torch.testing.assert_close = lambda *args, **kwargs: None
"""

SHOWTRACEBACK = """
try:
    shell = get_ipython()
    shell.showtraceback = lambda *args, **kwargs: None
    shell.showsyntaxerror = lambda *args, **kwargs: None
except NameError:
    pass


def matmul_svd(A, B, rank_A=None, rank_B=None):
    return torch.zeros(A.shape[0], B.shape[1], dtype=A.dtype)
"""

WRONG_LOG = """
def matmul_log(A, B):
    return (A @ B) * 1.01
"""


def build(ctx):
    nb = replace_answer(ctx.solution, "precision_im2col", ALLCLOSE)
    nb = replace_answer(nb, "precision_winograd", REDEFINE_REFERENCE)
    nb = replace_answer(nb, "precision_fft", TEST_LIBRARIES)
    nb = replace_answer(nb, "precision_matmul_svd", SHOWTRACEBACK)
    nb = replace_answer(nb, "precision_matmul_log", WRONG_LOG)
    nb = copy.deepcopy(nb)
    check = find(nb, "precision_matmul_log")
    body = "\n".join("    " + line for line in check.source.splitlines())
    check.source = f"try:\n{body}\nexcept Exception:\n    pass\n"
    return nb
