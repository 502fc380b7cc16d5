"""Shortcuts hidden from the recording: the library convolution with torch's modes switched
off (the result returned as is, or cloned inside the recording), numpy doing the work, and
``A @ B`` in numpy. ``matmul_svd`` and ``log_approx`` are the solution's."""

from attacks import deserved, replace_answer

STUDENT = "attack_unrecorded"
DESERVED = deserved(
    precision_im2col=0, precision_winograd=0, precision_fft=0, precision_matmul_log=0
)

OFF = """
from torch.utils._python_dispatch import _disable_current_modes


def _unrecorded(function, *args, **kwargs):
    with _disable_current_modes(), torch._C.DisableTorchFunction():
        return function(*args, **kwargs)
"""

IM2COL = (
    OFF
    + """

def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    return _unrecorded(F.conv2d, x, k, b, stride=stride, padding=padding)
"""
)

WINOGRAD = (
    OFF
    + """

def conv2d_winograd(x, k, b=None, m=2):
    return _unrecorded(F.conv2d, x, k, b).clone()
"""
)

FFT = """
import numpy as np


def conv2d_fft(x, k, b=None):
    windows = np.lib.stride_tricks.sliding_window_view(x.numpy(), k.shape[2:], axis=(2, 3))
    y = np.einsum("nchwuv,ocuv->nohw", windows, k.numpy())
    if b is not None:
        y = y + b.numpy()[None, :, None, None]
    return torch.from_numpy(np.ascontiguousarray(y)).to(x.dtype)
"""

LOG = """
def matmul_log(A, B):
    return torch.from_numpy(A.numpy() @ B.numpy())
"""


def build(ctx):
    nb = replace_answer(ctx.solution, "precision_im2col", IM2COL)
    nb = replace_answer(nb, "precision_winograd", WINOGRAD)
    nb = replace_answer(nb, "precision_fft", FFT)
    return replace_answer(nb, "precision_matmul_log", LOG)
