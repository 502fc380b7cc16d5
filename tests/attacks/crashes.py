"""Kernels that never return, exhaust memory, call ``sys.exit`` or ``os._exit``."""

from attacks import deserved, replace_answer

STUDENT = "attack_crashes"
DESERVED = deserved(
    precision_im2col=0, precision_winograd=0, precision_fft=0, precision_matmul_log_approx=0
)

HANG = """
def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    while True:
        pass
"""

MEMORY_BOMB = """
def conv2d_winograd(x, k, b=None, m=2):
    hoard = []
    while True:  # 1 GiB more each time, until the memory limit stops it (address space:
        # the limit is the same for touched pages, only slower to reach on a loaded machine)
        hoard.append(torch.empty(2**28))
"""

SYS_EXIT = """
import sys


def conv2d_fft(x, k, b=None):
    sys.exit(0)
"""

OS_EXIT = """
import os


def matmul_log_approx(A, B, frac_bits=4):
    os._exit(0)
"""


def build(ctx):
    nb = replace_answer(ctx.solution, "precision_im2col", HANG)
    nb = replace_answer(nb, "precision_winograd", MEMORY_BOMB)
    nb = replace_answer(nb, "precision_fft", SYS_EXIT)
    return replace_answer(nb, "precision_matmul_log_approx", OS_EXIT)
