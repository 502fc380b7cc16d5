"""Return values that claim to be right: ``__eq__`` always true, a Tensor subclass whose
``__torch_function__`` answers ``allclose``/``equal`` with True, an object array."""

from attacks import deserved, replace_answer

STUDENT = "attack_fake_results"
DESERVED = deserved(precision_im2col=0, precision_winograd=0, precision_fft=0)

ALWAYS_EQUAL = '''
class AlwaysEqual:
    """Equal to everything; every attribute, call and operation gives itself back."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __bool__(self):
        return True

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __float__(self):
        return 0.0

    def __sub__(self, other):
        return self

    __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __abs__ = __sub__
    __lt__ = __le__ = __gt__ = __ge__ = __eq__


def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    return AlwaysEqual()
'''

AGREEABLE_TENSOR = '''
class Agreeable(torch.Tensor):
    """A tensor for which allclose / equal / isclose always agree."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.Tensor.allclose, torch.equal, torch.Tensor.equal):
            return True
        if func in (torch.isclose, torch.Tensor.isclose):
            return torch.ones(args[0].shape, dtype=torch.bool)
        return super().__torch_function__(func, types, args, kwargs or {})


def conv2d_winograd(x, k, b=None, m=2):
    out = torch.zeros(x.shape[0], k.shape[0], x.shape[2] - 2, x.shape[3] - 2, dtype=x.dtype)
    return out.as_subclass(Agreeable)
'''

OBJECT_ARRAY = """
import numpy as np


def conv2d_fft(x, k, b=None):
    return np.array([AlwaysEqual() for _ in range(4)], dtype=object)
"""


def build(ctx):
    nb = replace_answer(ctx.solution, "precision_im2col", ALWAYS_EQUAL)
    nb = replace_answer(nb, "precision_winograd", AGREEABLE_TENSOR)
    nb = replace_answer(nb, "precision_fft", ALWAYS_EQUAL + OBJECT_ARRAY)
    return nb
