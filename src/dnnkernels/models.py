"""The two networks of the course, their committed weights, and test accuracy.

- :class:`MLP`: 784-512-128-10 with ReLU (the network of the mnist and svd_rank assignments).
- :class:`LeNet`: a small LeNet-5-style CNN (the network of the bit-width assignment).

Both take normalised images (see :func:`dnnkernels.data.normalize`) and return logits.
The attribute names ``conv1``, ``conv2``, ``fc1``, ``fc2``, ``fc3`` are part of the interface:
``dnnkernels.lowrank`` and ``dnnkernels.quantize`` address the layers by them.
Trained weights ship with the package (``dnnkernels/weights/<name>.pt``, written by
``python -m dnnkernels.train <name>``); :func:`load_trained` loads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from dnnkernels.checks import check_choice, check_tensor, describe
from dnnkernels.data import MNIST

MODEL_NAMES = ("mlp", "lenet")


class MLP(nn.Module):
    """Fully connected network 784 -> 512 -> 128 -> 10 with ReLU between the layers.

    ``logits = fc3(relu(fc2(relu(fc1(flatten(x))))))``

    Layers: ``fc1`` Linear(784, 512), ``fc2`` Linear(512, 128), ``fc3`` Linear(128, 10).
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images.

        Args:
            x: float tensor (N, 1, 28, 28) or (N, 784) (normalised pixels).

        Returns:
            float tensor (N, 10), one logit per digit.
        """
        check_tensor("x", x, ndim=(2, 4))
        if x[0].numel() != 784:
            raise ValueError(
                f"x: got {describe(x)}, expected (N, 1, 28, 28) or (N, 784) (784 pixels each)"
            )
        x = x.reshape(x.shape[0], 784)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet(nn.Module):
    """LeNet-5-style CNN for 28x28 digits.

    ====================================  ===============
    layer                                 output shape
    ====================================  ===============
    input                                 (N, 1, 28, 28)
    ``conv1`` Conv2d(1, 6, 5, padding=2)  (N, 6, 28, 28)
    ReLU, MaxPool2d(2)                    (N, 6, 14, 14)
    ``conv2`` Conv2d(6, 16, 5)            (N, 16, 10, 10)
    ReLU, MaxPool2d(2)                    (N, 16, 5, 5)
    flatten                               (N, 400)
    ``fc1`` Linear(400, 120), ReLU        (N, 120)
    ``fc2`` Linear(120, 84), ReLU         (N, 84)
    ``fc3`` Linear(84, 10)                (N, 10) logits
    ====================================  ===============
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images.

        Args:
            x: float tensor (N, 1, 28, 28) (normalised pixels).

        Returns:
            float tensor (N, 10), one logit per digit.
        """
        check_tensor("x", x, ndim=4)
        if tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x: got {describe(x)}, expected shape (N, 1, 28, 28)")
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def create(name: str) -> nn.Module:
    """A freshly initialised model (using the current torch RNG): ``"mlp"`` or ``"lenet"``."""
    check_choice("name", name, MODEL_NAMES)
    return MLP() if name == "mlp" else LeNet()


def _weights_file(filename: str):
    return resources.files("dnnkernels").joinpath("weights", filename)


def load_trained(name: str) -> nn.Module:
    """The model with its committed trained weights, in eval mode.

    Args:
        name: ``"mlp"`` or ``"lenet"``.

    Returns:
        :class:`MLP` or :class:`LeNet` with the state dict of ``dnnkernels/weights/<name>.pt``.

    Raises:
        ValueError: unknown name. FileNotFoundError: the weights were never trained.
    """
    model = create(name)
    source = _weights_file(f"{name}.pt")
    if not source.is_file():
        raise FileNotFoundError(
            f"name: no trained weights dnnkernels/weights/{name}.pt; "
            f"run `python -m dnnkernels.train {name}`"
        )
    with source.open("rb") as stream:
        state = torch.load(stream, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def trained_metrics(name: str | None = None) -> dict:
    """The recorded training metrics (``dnnkernels/weights/metrics.json``).

    Args:
        name: ``"mlp"`` or ``"lenet"`` for that model's entry; None for the whole file.

    Returns:
        dict: per model ``test_accuracy`` (float in [0, 1]), ``epochs``, ``seed``,
        ``torch_version``, ``train_seconds`` and the other settings of the run.
    """
    metrics = json.loads(_weights_file("metrics.json").read_text())
    if name is None:
        return metrics
    check_choice("name", name, MODEL_NAMES)
    return metrics[name]


@torch.no_grad()
def evaluate(model: nn.Module, data: MNIST | Iterable) -> float:
    """Top-1 accuracy: the fraction of images whose largest logit is the true label.

    ``accuracy = (1 / N) * sum_i [argmax_j model(x_i)_j == y_i]``

    The model runs in eval mode (its previous mode is restored afterwards), without
    gradients, one batch at a time.

    Args:
        model: maps float32 (B, 1, 28, 28) to logits (B, 10).
        data: an :class:`~dnnkernels.data.MNIST` (its ``test_loader`` is used) or any
            iterable of ``(x float32 (B, 1, 28, 28), y int64 (B,))`` batches.

    Returns:
        accuracy as a float in [0, 1].
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: got {describe(model)}, expected a torch.nn.Module")
    loader = data.test_loader if isinstance(data, MNIST) else data
    was_training = model.training
    model.eval()
    correct = 0
    total = 0
    try:
        for x, y in loader:
            correct += int((model(x).argmax(dim=1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("data: got no batches, expected at least one image")
    return correct / total
