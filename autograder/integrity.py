"""Fingerprints of the trusted tree: what a job may never change, and what a worker must have.

:func:`manifest` hashes the files the grading of a submission depends on (the autograder's
code and hidden checks, the student build of ``dnnkernels`` and the release notebooks):
the client sends its digest with every job, and a worker whose copy differs refuses to
grade (a stale worker cannot grade). A worker also compares the digest before and after
each job, and stops the run loudly if a job changed it.

:func:`environment_fingerprint` covers the Python installation and the virtual environment
by the metadata of every file (path, size, mtime, inode, mode): too slow to take per job
(about a second), it is taken before and after a whole run.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path


class TrustedTreeChanged(RuntimeError):
    """The trusted files changed during grading (or differ from the client's)."""


def _files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if not name.endswith(".pyc"):
                yield Path(dirpath) / name


def manifest(roots: list[Path]) -> str:
    """SHA-256 over the relative paths and contents of every file under ``roots``."""
    digest = hashlib.sha256()
    for root in roots:
        root = Path(root)
        digest.update(f"root {root.name}\n".encode())
        for path in _files(root):
            digest.update(f"{path.relative_to(root)}\n".encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def environment_fingerprint() -> str:
    """SHA-256 over the metadata of every file of the Python installation and the venv."""
    digest = hashlib.sha256()
    roots = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)})
    for root in roots:
        for path in _files(Path(root)):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            digest.update(
                f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_mode}\n".encode()
            )
    return digest.hexdigest()
