"""Library shortcuts: the three convolutions return ``F.conv2d(...)`` (by three different
names), ``matmul_log`` returns ``A @ B``. Right values everywhere; none of it is the
exercise, so those four tasks earn nothing (the method checks, autograder/methods.py)."""

from attacks import deserved, replace_answer

STUDENT = "attack_shortcuts"
DESERVED = deserved(
    precision_im2col=0, precision_winograd=0, precision_fft=0, precision_matmul_log=0
)

IM2COL = """
def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    return F.conv2d(x, k, b, stride=stride, padding=padding)
"""

# the same convolution through a module and through the aten operator itself
WINOGRAD = """
def conv2d_winograd(x, k, b=None, m=2):
    layer = torch.nn.Conv2d(k.shape[1], k.shape[0], 3, bias=b is not None, dtype=x.dtype)
    with torch.no_grad():
        layer.weight.copy_(k)
        if b is not None:
            layer.bias.copy_(b)
        return layer(x)
"""

FFT = """
def conv2d_fft(x, k, b=None):
    return torch.ops.aten.convolution(x, k, b, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
"""

LOG = """
def matmul_log(A, B):
    return A @ B
"""


def build(ctx):
    nb = replace_answer(ctx.solution, "precision_im2col", IM2COL)
    nb = replace_answer(nb, "precision_winograd", WINOGRAD)
    nb = replace_answer(nb, "precision_fft", FFT)
    return replace_answer(nb, "precision_matmul_log", LOG)
