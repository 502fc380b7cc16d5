# Generated automatically from src/dnnkernels/train.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Train the course's networks on MNIST, deterministically on CPU.

Command line (writes ``<out>/<name>.pt`` and updates ``<out>/metrics.json``; ``--out``
defaults to the package's ``weights/`` directory)::

    python -m dnnkernels.train mlp|lenet [--epochs N] [--seed S] [--out DIR] [--train-size N]

Recipe: cross-entropy loss, Adam (lr 1e-3 for both models), batch 128, learning rate decayed
to 0 by a per-step cosine schedule, shuffling from a generator seeded with ``seed``.
Determinism: the weights are initialised after ``torch.manual_seed(seed)``, the run uses
``torch.use_deterministic_algorithms(True)`` and a fixed number of CPU threads, so two runs
with the same arguments on the same machine give bit-identical weights. (Other CPUs or thread
counts may round differently; the committed weights record torch version and threads.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dnnkernels.checks import check_choice, check_int
from dnnkernels.data import MNIST, load_mnist, make_loader
from dnnkernels.models import MODEL_NAMES, create, evaluate

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Where the committed weights and ``metrics.json`` live (package data)."""

DEFAULT_EPOCHS = {"mlp": 6, "lenet": 8}
"""Epochs of the committed runs (chosen to reach the accuracy targets in <= 3 min)."""
DEFAULT_LR = 1e-3
DEFAULT_BATCH_SIZE = 128
DEFAULT_SEED = 0
DEFAULT_THREADS = 2


@contextmanager
def deterministic(seed: int, threads: int):
    """Seed torch, force deterministic kernels and fix the thread count; undo on exit.

    The global RNG state, the deterministic-algorithms flag and the thread count are the
    caller's again afterwards (``torch.random.fork_rng`` restores the RNG).
    """
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old_deterministic)
            torch.set_num_threads(old_threads)


def train(
    name: str,
    epochs: int | None = None,
    seed: int = DEFAULT_SEED,
    *,
    data: MNIST | None = None,
    train_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    threads: int = DEFAULT_THREADS,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[nn.Module, dict]:
    """Train ``"mlp"`` or ``"lenet"`` on MNIST and measure its test accuracy.

    Minimises the mean cross-entropy ``-log softmax(model(x))[y]`` with Adam; the learning
    rate at step ``t`` of ``T`` is ``lr * (1 + cos(pi * t / T)) / 2``.

    Args:
        name: ``"mlp"`` or ``"lenet"``.
        epochs: passes over the training images; default :data:`DEFAULT_EPOCHS`.
        seed: seeds the initial weights and the shuffling.
        data: the data set; default :func:`dnnkernels.data.load_mnist`.
        train_size: train on the first ``train_size`` training images only (default all).
        batch_size: images per optimisation step.
        lr: peak learning rate of Adam.
        threads: CPU threads used for the run (restored afterwards).
        out: if given, write ``<out>/<name>.pt`` (the state dict) and update
            ``<out>/metrics.json``.
        progress: show a tqdm bar (one tick per batch, with the running loss).

    Returns:
        ``(model, metrics)``: the trained model in eval mode and a dict with
        ``test_accuracy`` (full 10k test set, float in [0, 1]), ``train_loss`` (mean over
        the last epoch), ``epochs``, ``seed``, ``train_size``, ``batch_size``, ``lr``,
        ``optimizer``, ``threads``, ``torch_version``, ``train_seconds``.
    """
    check_choice("name", name, MODEL_NAMES)
    epochs = DEFAULT_EPOCHS[name] if epochs is None else epochs
    check_int("epochs", epochs, low=1)
    check_int("seed", seed, low=0)
    check_int("batch_size", batch_size, low=1)
    check_int("threads", threads, low=1)
    if not (isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0):
        raise ValueError(f"lr: got {lr!r}, expected a positive float")
    data = load_mnist() if data is None else data
    n_train = len(data.train_labels)
    train_size = n_train if train_size is None else train_size
    check_int("train_size", train_size, low=1, high=n_train)

    start = time.perf_counter()
    with deterministic(seed, threads):
        model = create(name)
        loader = make_loader(
            data.train_images[:train_size],
            data.train_labels[:train_size],
            batch_size,
            shuffle=True,
            seed=seed,
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        total_steps = epochs * len(loader)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
        )
        model.train()
        bar = tqdm(total=total_steps, desc=f"train {name}", unit="batch", disable=not progress)
        for epoch in range(epochs):
            loss_sum = torch.zeros((), dtype=torch.float64)
            seen = 0
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                loss_sum += loss.detach().double() * len(y)
                seen += len(y)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - start
        model.eval()
        accuracy = evaluate(model, data.test_loader)

    metrics = {
        "test_accuracy": accuracy,
        "train_loss": float(loss_sum / seen),
        "epochs": epochs,
        "seed": seed,
        "train_size": train_size,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": "Adam, cosine decay per step",
        "threads": threads,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        "train_seconds": round(train_seconds, 2),
    }
    if out is not None:
        save(model, name, metrics, out)
    return model, metrics


def _write_atomic(path: Path, write) -> None:
    """Write a file through ``write(stream)`` to a temporary name, then rename it."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: nn.Module, name: str, metrics: dict, out: str | os.PathLike) -> Path:
    """Write ``<out>/<name>.pt`` (the state dict) and set ``metrics.json``'s entry ``name``.

    Other entries of ``metrics.json`` are kept; the file is sorted and indented for review.

    Returns:
        the path of the ``.pt`` file.
    """
    check_choice("name", name, MODEL_NAMES)
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.pt"
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    _write_atomic(weights, lambda stream: torch.save(state, stream))
    metrics_path = directory / "metrics.json"
    recorded = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    recorded[name] = metrics
    text = json.dumps(recorded, indent=2, sort_keys=True) + "\n"
    _write_atomic(metrics_path, lambda stream: stream.write(text.encode()))
    return weights


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m dnnkernels.train mlp|lenet [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m dnnkernels.train",
        description="Train the MLP or LeNet on MNIST (deterministic, CPU) and save the weights.",
    )
    parser.add_argument("model", choices=MODEL_NAMES, help="which network to train")
    parser.add_argument("--epochs", type=int, default=None, help="default: mlp 6, lenet 8")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument(
        "--train-size", type=int, default=None, help="train on the first N images (default all)"
    )
    parser.add_argument("--data-dir", default=None, help="MNIST cache directory")
    parser.add_argument(
        "--out", default=str(WEIGHTS_DIR), help="output directory (default: package weights/)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)

    data = load_mnist(args.data_dir)
    _, metrics = train(
        args.model,
        args.epochs,
        args.seed,
        data=data,
        train_size=args.train_size,
        batch_size=args.batch_size,
        lr=args.lr,
        threads=args.threads,
        out=args.out,
        progress=not args.no_progress,
    )
    print(
        f"{args.model}: test accuracy {metrics['test_accuracy']:.4f} after {metrics['epochs']} "
        f"epochs in {metrics['train_seconds']:.1f} s; wrote {Path(args.out) / args.model}.pt "
        "and metrics.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
