"""Reading a submission folder safely: regular files only, never through a link, capped.

The grader reads what a student submitted (``submitted/<student>/<assignment>/``) as data
and nothing else: every file is opened relative to the folder's own descriptor with
``O_NOFOLLOW`` and must be a regular file (no symlinks, devices, fifos or sockets), of at
most ``Limits.notebook_bytes`` (the notebook) or ``Limits.extra_bytes`` in all (the other
files); sub-folders are not read. What was left out is listed in :attr:`Submission.skipped`,
with a reason a student can act on (never the file's content).

``timestamp.txt`` (nbgrader's submission time) and ``submission_secret.txt`` (nbgrader's
exchange secret, needed by ``release_feedback``) are read like the rest and kept apart.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from autograder.limits import Limits

SPECIAL = ("timestamp.txt", "submission_secret.txt")
MAX_FILES = 200


@dataclass
class Submission:
    """The regular files of one submission folder (bytes), and what was left out."""

    notebook: bytes | None
    extra: dict[str, bytes] = field(default_factory=dict)
    timestamp: str | None = None
    secret: str | None = None
    skipped: list[str] = field(default_factory=list)
    notebook_problem: str | None = None  #: why the notebook could not be read


def _read_regular(dir_fd: int, name: str, limit: int) -> bytes:
    """Content of the regular file ``name`` in ``dir_fd``; OSError / ValueError if not."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{info.st_size} bytes (the limit is {limit})")
        parts, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        data = b"".join(parts)
        if len(data) > limit:
            raise ValueError(f"more than {limit} bytes")
        return data
    finally:
        os.close(fd)


def _why(error: Exception) -> str:
    if isinstance(error, OSError) and error.errno == errno.ELOOP:
        return "it is a symbolic link (links are never followed)"
    if isinstance(error, OSError):
        return f"it could not be opened ({errno.errorcode.get(error.errno, error.errno)})"
    return str(error)


def read(folder: Path, notebook_name: str, limits: Limits) -> Submission:
    """Read ``folder`` (see the module docstring); a missing folder gives no notebook."""
    try:
        if stat.S_ISLNK(os.lstat(folder).st_mode):
            raise OSError(errno.ELOOP, "the submission folder is a link")
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        problem = "missing" if error.errno == errno.ENOENT else _why(error)
        return Submission(None, notebook_problem=problem)
    sub = Submission(None)
    try:
        names = sorted(os.listdir(dir_fd))
        if len(names) > MAX_FILES:
            sub.skipped.append(f"{len(names) - MAX_FILES} files beyond the first {MAX_FILES}")
            names = names[:MAX_FILES]
        extra_left = limits.extra_bytes
        for name in names:
            is_notebook = name == notebook_name
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    sub.skipped.append(f"{name}/: folders in a submission are not read")
                    continue
                if is_notebook:
                    limit = limits.notebook_bytes
                elif name in SPECIAL:
                    limit = 4096
                else:
                    limit = extra_left
                data = _read_regular(dir_fd, name, limit)
            except (OSError, ValueError) as error:
                why = _why(error)
                if is_notebook:
                    sub.notebook_problem = why
                else:
                    sub.skipped.append(f"{name}: {why}")
                continue
            if is_notebook:
                sub.notebook = data
            elif name == "timestamp.txt":
                sub.timestamp = data[:64].decode("utf-8", "replace").strip() or None
            elif name == "submission_secret.txt":
                sub.secret = data[:256].decode("utf-8", "replace").strip() or None
            else:
                sub.extra[name] = data
                extra_left -= len(data)
        if sub.notebook is None and sub.notebook_problem is None:
            sub.notebook_problem = "missing"
    finally:
        os.close(dir_fd)
    return sub
