"""Second layer inside the sandbox: an audit hook (:pep:`578`) for the student's process.

The boundary is the operating system (:mod:`autograder.sandbox`: bubblewrap, its own uid,
no network, an allow-list file system). Python's own documentation says audit hooks are not
a sandbox; this one is defence in depth, and it turns some operations the sandbox would
also stop into clear messages. The two processes that run a student's code (the
hidden-check runner, ``runner.py``, and the notebook's kernel, ``kernel.py``) load this file
by path (it imports nothing from the ``autograder`` package) *before* any student code runs,
then call :func:`install`. Once installed (irreversibly), the hook denies:

- writing, creating, deleting, renaming, linking or changing the mode of anything outside
  the ``allow_write`` directories (the sandbox's ``/submission`` and ``/tmp``);
- starting processes (``subprocess``, ``os.system``, ``os.exec*``, ``os.spawn*``,
  ``os.posix_spawn``, ``os.fork``), loading native code or calling C
  functions through ``ctypes``, opening sockets, opening SQLite database files (in-memory
  ones are allowed), changing resource limits, and importing ``_posixsubprocess``.

Denials raise ``PermissionError`` (an ``OSError``: libraries that probe the file system
treat it as "not available"). Writing past the file-size limit fails with an ``OSError``
instead of killing the process (``SIGXFSZ`` is ignored).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

BLOCKED_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.spawn",
        "os.posix_spawn",
        "os.fork",
        "os.forkpty",
        "os.setuid",
        "os.setgid",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.call_function",
        "ctypes.string_at",
        "ctypes.wstring_at",
        "ctypes.cdata",
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "resource.setrlimit",
        "resource.prlimit",
        "os.chroot",
        "sys.remote_exec",
    }
)

BLOCKED_MODULES = frozenset({"_posixsubprocess", "_ctypes", "ctypes"})

# events whose first argument (and for two-path events the second) is written to
WRITE_EVENTS_ONE = frozenset(
    {
        "os.remove",
        "os.rmdir",
        "os.truncate",
        "os.chmod",
        "os.chown",
        "os.chflags",
        "os.lchflags",
        "os.lchmod",
        "os.mkdir",
        "os.utime",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
        "shutil.chown",
        "os.mkfifo",
        "os.mknod",
    }
)
WRITE_EVENTS_TWO = frozenset(
    {
        "os.rename",
        "os.link",
        "os.symlink",
        "shutil.copyfile",
        "shutil.copymode",
        "shutil.copystat",
        "shutil.move",
        "shutil.copytree",
    }
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _normalise(path: object) -> str | None:
    """Absolute, symlink-resolved form of a path argument (None for file descriptors)."""
    if path is None or isinstance(path, int):
        return None
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        return None
    if not os.path.isabs(text):
        text = os.path.join(os.getcwd(), text)
    return os.path.realpath(text)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


class Policy:
    """Which paths a sandboxed process may write."""

    def __init__(self, allow_write):
        self.allow_write = tuple(os.path.realpath(p) for p in allow_write) + ("/dev/null",)

    def may_write(self, path: str) -> bool:
        return _under(path, self.allow_write)


def install(allow_write) -> Policy:
    """Install the audit hook for this process (irreversible). Returns the policy."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    policy = Policy(allow_write)
    guard = threading.local()

    def deny(what: str) -> None:
        raise PermissionError(f"grader sandbox: {what} is not allowed while grading")

    def check_write(path_arg: object) -> None:
        path = _normalise(path_arg)
        if path is not None and not policy.may_write(path):
            deny(f"writing or changing {path_arg!s}")

    def hook(event: str, args: tuple) -> None:
        if getattr(guard, "busy", False):
            return
        guard.busy = True
        try:
            if event == "open":
                path_arg = args[0]
                mode = args[1] if len(args) > 1 else None
                flags = args[2] if len(args) > 2 else 0
                writing = bool((flags or 0) & WRITE_FLAGS) or (
                    isinstance(mode, str) and any(c in mode for c in "wax+")
                )
                if writing:
                    check_write(path_arg)
            elif event in BLOCKED_EVENTS:
                deny(event)
            elif event == "sqlite3.connect":
                if not args or args[0] not in (":memory:", "", b":memory:"):
                    deny("opening an SQLite database")
            elif event == "import":
                if args and args[0] in BLOCKED_MODULES:
                    deny(f"importing {args[0]}")
            elif event in WRITE_EVENTS_ONE:
                if args:
                    check_write(args[0])
            elif event in WRITE_EVENTS_TWO:
                if event not in ("shutil.copyfile", "shutil.copytree", "shutil.move") and args:
                    check_write(args[0])
                if len(args) > 1:
                    check_write(args[1])
        finally:
            guard.busy = False

    sys.addaudithook(hook)
    # _posixsubprocess.fork_exec starts processes without an audit event of its own
    helper = sys.modules.get("_posixsubprocess")
    if helper is not None and hasattr(helper, "fork_exec"):
        try:
            del helper.fork_exec
        except (AttributeError, TypeError):
            pass
    return policy
