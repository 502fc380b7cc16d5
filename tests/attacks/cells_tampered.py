"""Graded cells deleted, duplicated, retyped or with changed points."""

import copy

import nbformat

from attacks import deserved, find, index

STUDENT = "attack_cells_tampered"
# im2col's check cell is deleted but its kernel is right: the hidden checks still give 4;
# fft's first answer cell (the one that counts) is wrong; winograd's answer cell is now
# markdown, so the released stub stands in for it
DESERVED = deserved(precision_winograd=0, precision_fft=0)

WRONG_FFT = """
import torch


def conv2d_fft(x, k, b=None):
    return torch.zeros(x.shape[0], k.shape[0], x.shape[2] - k.shape[2] + 1,
                       x.shape[3] - k.shape[3] + 1, dtype=x.dtype)
"""

WRONG_APPROX = """
def matmul_log_approx(A, B, frac_bits=4):
    return A @ B * 0
"""


def build(ctx):
    nb = copy.deepcopy(ctx.solution)
    # deleted: the check cell of im2col
    del nb.cells[index(nb, "precision_im2col")]
    # duplicated: a wrong copy of fft's answer cell before the right one
    right = find(nb, "precision_fft_answer")
    wrong = copy.deepcopy(right)
    wrong.source = WRONG_FFT
    wrong["id"] = "duplicate-fft"
    nb.cells.insert(index(nb, "precision_fft_answer"), wrong)
    # duplicated: a wrong copy of log_approx's answer cell after the right one
    second = copy.deepcopy(find(nb, "precision_matmul_log_approx_answer"))
    second.source = WRONG_APPROX
    second["id"] = "duplicate-approx"
    nb.cells.insert(index(nb, "precision_matmul_log_approx_answer") + 1, second)
    # retyped: winograd's answer cell becomes markdown (keeping its text)
    i = index(nb, "precision_winograd_answer")
    old = nb.cells[i]
    markdown = nbformat.v4.new_markdown_cell(old.source, id=old["id"], metadata=old.metadata)
    nb.cells[i] = markdown
    # retyped: the check cell of matmul_log becomes a raw cell
    i = index(nb, "precision_matmul_log")
    old = nb.cells[i]
    nb.cells[i] = nbformat.v4.new_raw_cell(old.source, id=old["id"], metadata=old.metadata)
    # more points: the check cell of matmul_svd claims 100
    find(nb, "precision_matmul_svd").metadata["nbgrader"]["points"] = 100
    return nb
