# Generated automatically from src/dnnkernels/matrix_families.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""The matrix families of the svd_rank assignment: how low-rank is each kind of matrix?

:func:`matrix_family` builds each of :data:`FAMILIES` (random, low rank plus noise, a
photograph, a batch of MNIST images, a trained MLP weight and its activations),
reproducibly from a seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from dnnkernels.checks import check_choice, check_int

# ============================================================================ matrix families

FAMILIES = (
    "random",
    "lowrank_noise",
    "photo",
    "mnist_batch",
    "mlp_weight",
    "mlp_activations",
)
"""Names of the matrix families of the svd_rank assignment (see :func:`matrix_family`)."""

RANDOM_SHAPE = (1024, 1024)
LOWRANK_RANK = 32
LOWRANK_NOISE = 0.05
BATCH_SIZE = 1000


def _batch_indices(count: int, seed: int) -> torch.Tensor:
    """``BATCH_SIZE`` test-image indices drawn without replacement with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[:BATCH_SIZE]


def matrix_family(name: str, seed: int = 0, *, model=None, data=None) -> torch.Tensor:
    """One matrix of a family of the svd_rank assignment (float32, 2-D, deterministic).

    ``name``:

    - ``"random"``: (1024, 1024), i.i.d. standard normal entries.
    - ``"lowrank_noise"``: (1024, 1024), ``G1 @ G2 / sqrt(32) + 0.05·N`` with G1 (1024, 32),
      G2 (32, 1024) and N standard normal: rank 32 with entries of variance 1, plus noise.
    - ``"photo"``: (600, 512), the grayscale photograph of Grace Hopper shipped with
      matplotlib (``grace_hopper.jpg``): luma ``0.299 R + 0.587 G + 0.114 B`` scaled to
      [0, 1]. ``seed`` is not used.
    - ``"mnist_batch"``: (1000, 784), one test image per row, pixels scaled to [0, 1];
      ``seed`` chooses the 1000 images (without replacement).
    - ``"mlp_weight"``: (512, 784), the weight of ``fc1`` of the trained MLP.
      ``seed`` is not used.
    - ``"mlp_activations"``: (1000, 512), ``relu(fc1(x))`` of the MLP for the (normalised)
      images of ``"mnist_batch"`` with the same seed: the activations entering ``fc2``.

    Args:
        name: one of :data:`FAMILIES`.
        seed: int >= 0 for the random draws.
        model: the MLP for the ``mlp_*`` families (default: ``models.load_trained("mlp")``).
        data: the :class:`dnnkernels.data.MNIST` for the image families (default:
            ``data.load_mnist()``).

    Returns:
        float32 tensor of the shape above.
    """
    check_choice("name", name, FAMILIES)
    check_int("seed", seed, low=0)
    generator = torch.Generator().manual_seed(seed)
    if name == "random":
        return torch.randn(RANDOM_SHAPE, generator=generator)
    if name == "lowrank_noise":
        m, n = RANDOM_SHAPE
        left = torch.randn(m, LOWRANK_RANK, generator=generator)
        right = torch.randn(LOWRANK_RANK, n, generator=generator)
        noise = torch.randn(m, n, generator=generator)
        return left @ right / math.sqrt(LOWRANK_RANK) + LOWRANK_NOISE * noise
    if name == "photo":
        import matplotlib.cbook as cbook
        import matplotlib.image as mpimg

        with cbook.get_sample_data("grace_hopper.jpg") as stream:
            rgb = mpimg.imread(stream, format="jpg")
        luma = rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return torch.from_numpy(luma / 255.0).to(torch.float32)
    if name == "mlp_weight":
        model = _trained_mlp() if model is None else model
        return model.fc1.weight.detach().to(torch.float32).clone()

    if data is None:
        from dnnkernels.data import load_mnist

        data = load_mnist()
    images = data.test_images[_batch_indices(len(data.test_images), seed)]
    if name == "mnist_batch":
        return images.reshape(len(images), -1).to(torch.float32) / 255.0
    # mlp_activations
    from dnnkernels.data import normalize

    model = _trained_mlp() if model is None else model
    with torch.no_grad():
        x = normalize(images).reshape(len(images), -1)
        return torch.relu(model.fc1(x)).to(torch.float32)


def _trained_mlp() -> nn.Module:
    """The committed trained MLP (eval mode)."""
    from dnnkernels.models import load_trained

    return load_trained("mlp").eval()
