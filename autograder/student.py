"""Trusted-side proxy to one student's code, which runs in an untrusted runner process.

>>> code = StudentCode(payload)                      # doctest: +SKIP
>>> y = code.call("conv2d_im2col", x, k, b, stride=2)  # a torch tensor, or StudentError
>>> code.close()

The runner (``runner.py``) is started lazily, loads the setup cells and the student's
answer cells, and answers calls with plain arrays. Every call has a time limit: on a
timeout the runner is killed and the next call starts a new one; a runner that dies
(``os._exit``, ``sys.exit`` in a thread, a segfault, the memory limit) fails only the call
that killed it. A cell that hangs or kills the runner while loading is skipped on the
next start (it breaks only what needs it). Failures raise :class:`StudentError` with a
message fit for the student: what happened, never the hidden inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder import protocol
from autograder.paths import release_dir, sandbox_policy
from dnnkernels.tasks import TASKS

RUNNER = Path(__file__).with_name("runner.py")
SANDBOX = Path(__file__).with_name("sandbox.py")
PROTOCOL = Path(__file__).with_name("protocol.py")


class CheckFailed(AssertionError):
    """A hidden check failed; the message is shown to the student."""


class StudentError(CheckFailed):
    """The student's code raised, hung, crashed or returned something unusable."""


@dataclass
class Limits:
    """Limits of the runner process (seconds and bytes)."""

    call_timeout: float = 20.0
    cell_timeout: float = 60.0
    memory_bytes: int = 4 << 30
    file_bytes: int = 50 << 20
    cpu_seconds: int = 900

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, overridden by ``DNNK_CALL_TIMEOUT`` / ``DNNK_LOAD_TIMEOUT`` (seconds)."""
        limits = cls()
        if os.environ.get("DNNK_CALL_TIMEOUT"):
            limits.call_timeout = float(os.environ["DNNK_CALL_TIMEOUT"])
        if os.environ.get("DNNK_LOAD_TIMEOUT"):
            limits.cell_timeout = float(os.environ["DNNK_LOAD_TIMEOUT"])
        return limits


@dataclass
class Payload:
    """What the runner executes: cells in notebook order, and the student's notebooks.

    Attributes:
        assignment: the assignment being graded.
        cells: ``[{"grade_id", "kind" ("setup" | "answer"), "source"}]`` in notebook order.
        notes: grade_id -> note about an answer cell the grader could not use (missing,
            retyped), shown with the checks that need it.
        notebooks: assignment -> the student's (canonical) notebook JSON, put in the
            runner's ``DNNKERNELS_STUDENT_WORK`` directory for cross-notebook use.
        deny_read: extra directories the runner may not read (grading state).
    """

    assignment: str
    cells: list[dict]
    notes: dict[str, str] = field(default_factory=dict)
    notebooks: dict[str, str] = field(default_factory=dict)
    deny_read: list[str] = field(default_factory=list)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> Payload:
        return cls(**json.loads(Path(path).read_text()))


def describe_exit(returncode: int | None) -> str:
    """A student-readable account of how the runner process ended."""
    if returncode is None:
        return "the process running your code stopped answering"
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hints = {
            "SIGKILL": " (killed: out of memory or CPU time?)",
            "SIGSEGV": " (a segmentation fault)",
            "SIGXCPU": " (CPU time limit)",
            "SIGABRT": " (aborted, e.g. an allocation failed)",
        }
        return f"the process running your code was killed by {name}{hints.get(name, '')}"
    return (
        f"the process running your code exited with status {returncode} "
        "(os._exit or sys.exit in your code?)"
    )


class StudentCode:
    """Proxy to the student's functions; see the module docstring."""

    def __init__(self, payload: Payload, limits: Limits | None = None, workdir: Path | None = None):
        self.payload = payload
        self.limits = limits or Limits.from_env()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dnnk-student-"))
        self.skip: dict[int, str] = {}  # cell index -> why it is skipped
        self.cell_errors: dict[str, str] = {}  # grade_id -> error while loading
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._req = self._res = None
        self._next_id = 0
        self._rundir: Path | None = None

    # ------------------------------------------------------------------ public API

    def call(self, name: str, *args, **kwargs):
        """``name(*args, **kwargs)`` in the student's namespace; plain values back."""
        return self._request("call", name, args, kwargs)

    def adapter(self, name: str, *args, **kwargs):
        """A named adapter of ``runner.py`` (for class tasks)."""
        return self._request("adapter", name, args, kwargs)

    def close(self) -> None:
        self._kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> StudentCode:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ runner lifecycle

    def _kill(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for fd in (self._req, self._res):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.proc = None
        self._req = self._res = None
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None

    def _spawn(self) -> None:
        self.starts += 1
        rundir = Path(tempfile.mkdtemp(prefix=f"run{self.starts}-", dir=self.workdir))
        self._rundir = rundir
        work = rundir / "work"
        for assignment, text in self.payload.notebooks.items():
            (work / assignment).mkdir(parents=True, exist_ok=True)
            (work / assignment / f"{assignment}.ipynb").write_text(text)
        (rundir / "tmp").mkdir()
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        deny, allow = sandbox_policy(extra_deny=[*self.payload.deny_read, str(self.workdir)])
        config = {
            "protocol": str(PROTOCOL),
            "sandbox": str(SANDBOX),
            "sys_path": [str(release_dir())],
            "deny_read": deny,
            "allow_read": allow,
            "allow_write": [str(rundir)],
            "memory_bytes": self.limits.memory_bytes,
            "file_bytes": self.limits.file_bytes,
            "cpu_seconds": self.limits.cpu_seconds,
            "req_fd": req_r,
            "res_fd": res_w,
            "output": str(rundir / "output.txt"),
            "threads": 1,
        }
        (rundir / "config.json").write_text(json.dumps(config))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(rundir)),
            "LANG": "C.UTF-8",
            "TMPDIR": str(rundir / "tmp"),
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "DNNKERNELS_STUDENT_WORK": str(work),
        }
        if os.environ.get("DNNKERNELS_DATA_DIR"):
            env["DNNKERNELS_DATA_DIR"] = os.environ["DNNKERNELS_DATA_DIR"]
        with open(rundir / "boot.txt", "wb") as boot:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(RUNNER), str(rundir / "config.json")],
                cwd=rundir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=boot,
                stderr=boot,
                pass_fds=(req_r, res_w),
                start_new_session=True,
            )
        os.close(req_r)
        os.close(res_w)
        self._req, self._res = req_w, res_r

    def _start(self) -> None:
        """Start a runner and load the cells; hanging or fatal cells are skipped."""
        while True:
            self._spawn()
            cells = [c for i, c in enumerate(self.payload.cells) if i not in self.skip]
            indices = [i for i in range(len(self.payload.cells)) if i not in self.skip]
            rid = self._send({"op": "load", "cells": cells}, [])
            current = None
            try:
                while True:
                    header, _ = protocol.read_frame(self._res, timeout=self.limits.cell_timeout)
                    if header.get("id") != rid:
                        raise protocol.ProtocolError("answer to another request")
                    event = header.get("event")
                    if event == "start":
                        current = indices[int(header["index"])]
                    elif event == "done":
                        current = indices[int(header["index"])]
                        cell = self.payload.cells[current]
                        if header.get("error"):
                            self.cell_errors[cell["grade_id"]] = _format_error(header["error"])
                        current = None
                    elif event == "loaded":
                        return
                    else:
                        raise protocol.ProtocolError(f"unexpected event {event!r}")
            except protocol.Timeout:
                why = (
                    f"took longer than {self.limits.cell_timeout:g} s to run, so it was skipped "
                    "(an infinite loop or a long experiment at the top level of the cell?)"
                )
            except protocol.Closed:
                self.proc.wait(timeout=10)
                why = describe_exit(self.proc.returncode) + " while running this cell; skipped"
            except (protocol.ProtocolError, ValueError, KeyError, IndexError, TypeError) as exc:
                why = f"the grader could not follow the process running your code ({exc})"
            self._kill()
            if current is None:  # failed outside any cell: give up on this runner
                raise StudentError(f"could not start your code: {why}")
            cell = self.payload.cells[current]
            self.skip[current] = why
            self.cell_errors[cell["grade_id"]] = why

    def _send(self, header: dict, blobs: list[bytes]) -> int:
        self._next_id += 1
        protocol.write_frame(self._req, dict(header, id=self._next_id), blobs)
        return self._next_id

    def _request(self, op: str, name: str, args: tuple, kwargs: dict):
        if self.proc is None:
            self._start()
        blobs: list[bytes] = []
        spec_args = protocol.encode(tuple(args), blobs)
        spec_kwargs = protocol.encode(dict(kwargs), blobs)
        try:
            rid = self._send(
                {"op": op, "name": name, "args": spec_args, "kwargs": spec_kwargs}, blobs
            )
            header, out_blobs = protocol.read_frame(self._res, timeout=self.limits.call_timeout)
            if header.get("id") != rid:
                raise protocol.ProtocolError("answer to another request")
        except protocol.Timeout:
            self._kill()
            raise StudentError(
                f"timeout: no answer within {self.limits.call_timeout:g} s "
                "(an infinite loop, or far too slow)"
            ) from None
        except (protocol.Closed, BrokenPipeError):
            try:
                self.proc.wait(timeout=10)
                code = self.proc.returncode
            except subprocess.TimeoutExpired:
                code = None
            self._kill()
            raise StudentError(describe_exit(code)) from None
        except protocol.ProtocolError as exc:
            self._kill()
            raise StudentError(f"the answer of your code was malformed ({exc})") from None
        if not header.get("ok"):
            raise StudentError(self._explain(header.get("error") or {}, name))
        try:
            return protocol.decode(header.get("result"), out_blobs)
        except protocol.ProtocolError as exc:
            raise StudentError(f"returned something unusable ({exc})") from None

    def _explain(self, error: dict, name: str) -> str:
        kind = error.get("type", "Exception")
        if kind == "Missing":
            name = error.get("message") or name  # an adapter names what it looked for
            text = f"`{name}` is not defined after running your answer cells"
            problems = {**self.payload.notes, **self.cell_errors}
            owners = [t.answer_cell_id for t in TASKS.values() if t.name == name]
            causes = [
                f"cell {gid}: {msg}"
                for gid, msg in problems.items()
                if gid in owners or (not owners and gid.endswith("_answer"))
            ]
            if causes:
                text += " (" + "; ".join(causes)[:400] + ")"
            return text
        if kind == "BadResult":
            return f"returned a value the grader cannot use: {error.get('message', '')}"
        return "raised " + _format_error(error)


def _format_error(error: dict) -> str:
    text = f"{error.get('type', 'Exception')}: {error.get('message', '')}".rstrip(": ")
    if len(text) > 240:
        text = text[:237] + "..."
    if error.get("where"):
        text += f" ({error['where']})"
    return text
