"""Trusted-side proxy to one student's code, which runs in a sandboxed runner process.

>>> code = StudentCode(payload)                      # doctest: +SKIP
>>> y = code.call("conv2d_im2col", x, k, b, stride=2)  # a torch tensor, or StudentError
>>> code.close()

The runner (``runner.py``) is started lazily in its own sandbox (:mod:`autograder.sandbox`:
bubblewrap, its own uid, no network, only the student build and the Python environment
visible), loads the setup cells and the student's answer cells, and answers calls with
plain arrays. One runner serves every check of a submission. Every call has a time limit:
on a timeout the whole sandbox is killed and the next call starts a new one; a runner that
dies (``os._exit``, ``sys.exit`` in a thread, a segfault, the memory limit) fails only the
call that killed it. A cell that hangs or kills the runner while loading is skipped on the
next start (it breaks only what needs it). Failures raise :class:`StudentError` with a
message fit for the student: what happened, never the hidden inputs.

:meth:`StudentCode.cpu_seconds` reads the CPU time of the sandbox's processes from the
kernel's accounting (``/proc``), which the student's code cannot change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder import assets, protocol, sandbox
from autograder.limits import Limits
from autograder.paths import release_dir
from dnnkernels.tasks import TASKS

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner.py"
LIB_FILES = [RUNNER, HERE / "protocol.py", HERE / "audit.py"]
OUTPUT_CAP = 64 << 10  # bytes of the runner's own stdout/stderr kept for the log


#: functions whose every call is made under the runner's recording (``runner.record_call``):
#: the method checks (``autograder/methods.py``) judge what they did
RECORDED_CALLS = frozenset(
    {"conv2d_im2col", "conv2d_winograd", "conv2d_fft", "matmul_svd", "matmul_log"}
)
#: adapters that record the student's code they run (``record=True``)
RECORDED_ADAPTERS = frozenset({"svd_linear"})


@dataclass
class Recorded:
    """One recorded call: what the grader sent, and the runner's record (untrusted data)."""

    name: str
    args: tuple
    kwargs: dict
    record: object
    value: object = None


class CheckFailed(AssertionError):
    """A hidden check failed; the message is shown to the student."""


class StudentError(CheckFailed):
    """The student's code raised, hung, crashed or returned something unusable."""


@dataclass
class Payload:
    """What the runner executes: cells in notebook order, and the student's notebooks.

    Attributes:
        assignment: the assignment being graded.
        cells: ``[{"grade_id", "kind" ("setup" | "answer"), "source"}]`` in notebook order.
        notes: grade_id -> note about an answer cell the grader could not use (missing,
            retyped), shown with the checks that need it.
        notebooks: assignment -> the student's (canonical) notebook JSON, put in the
            runner's ``DNNK_STUDENT_WORK`` directory for cross-notebook use.
    """

    assignment: str
    cells: list[dict]
    notes: dict[str, str] = field(default_factory=dict)
    notebooks: dict[str, str] = field(default_factory=dict)

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

    def __init__(
        self, payload: Payload, limits: Limits | None = None, deadline: float | None = None
    ):
        """``deadline``: ``time.monotonic()`` after which no call is started (the budget)."""
        self.payload = payload
        self.limits = limits or Limits.from_env()
        self.deadline = deadline
        self.skip: dict[int, str] = {}  # cell index -> why it is skipped
        self.cell_errors: dict[str, str] = {}  # grade_id -> error while loading
        # functions that hung or killed their process: later calls fail at once, the same
        # way (calling them again would only spend the submission's budget)
        self.poisoned: dict[str, str] = {}
        self.proc: sandbox.SandboxProcess | None = None
        self.starts = 0
        self.runner_cpu: list[float] = []  # CPU seconds of each runner sandbox, when closed
        self.log = ""
        self.recorded: list[Recorded] = []  # every recorded call, in order
        self._requests = self._results = None
        self._drain: sandbox.Drain | None = None
        self._next_id = 0
        self._fired = False

    # ------------------------------------------------------------------ public API

    def call(self, name: str, *args, **kwargs):
        """``name(*args, **kwargs)`` in the student's namespace; plain values back.

        Functions of :data:`RECORDED_CALLS` run under the runner's recording; the record of
        every such call is kept in :attr:`recorded` for the method checks.
        """
        if name in RECORDED_CALLS:
            return self.record(name, *args, **kwargs)[0]
        return self._request("call", name, args, kwargs)

    def record(self, name: str, *args, **kwargs) -> tuple[object, object]:
        """(value, record) of ``name(*args, **kwargs)`` run under the runner's recording.

        The record is the runner's plain data (``runner.record_call``), not yet checked:
        :mod:`autograder.methods` validates and judges it.
        """
        out = self._request("record", name, args, kwargs)
        if not isinstance(out, dict) or "value" not in out:
            raise StudentError("returned a value the grader cannot use (the recording failed)")
        self.recorded.append(Recorded(name, args, dict(kwargs), out.get("record"), out["value"]))
        return out["value"], out.get("record")

    def adapter(self, name: str, *args, **kwargs):
        """A named adapter of ``runner.py`` (for class tasks); see :data:`RECORDED_ADAPTERS`."""
        if name not in RECORDED_ADAPTERS:
            return self._request("adapter", name, args, kwargs)
        out = self._request("adapter", name, args, dict(kwargs, record=True))
        trace = out.pop("record", None) if isinstance(out, dict) else None
        self.recorded.append(Recorded(name, args, dict(kwargs), trace, out))
        return out

    def recorded_calls(self, name: str) -> list[Recorded]:
        """The recorded calls of ``name`` (a function or an adapter) so far."""
        return [r for r in self.recorded if r.name == name]

    def timed_call(self, name: str, *args, **kwargs) -> tuple[object, float]:
        """``call`` and the CPU seconds the sandbox spent on it (measured outside it)."""
        if self.proc is None:
            self._start()
        before = self.proc.cpu_seconds()
        value = self.call(name, *args, **kwargs)
        return value, self.proc.cpu_seconds() - before

    def close(self) -> None:
        self._kill()

    def __enter__(self) -> StudentCode:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ runner lifecycle

    def _kill(self) -> None:
        for conn in (self._requests, self._results):
            if conn is not None:
                conn.close()
        self._requests = self._results = None
        if self.proc is not None:
            self.proc.close()
            self.runner_cpu.append(self.proc.cpu)
            self.proc = None
        if self._drain is not None:
            self._drain.join(timeout=5)
            self.log = (self.log + self._drain.kept.decode("utf-8", "replace"))[-OUTPUT_CAP:]
            self._drain = None

    def _spawn(self) -> None:
        self.starts += 1
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        layout = sandbox.Layout(
            student=sandbox.INSIDE_STUDENT,
            lib=sandbox.INSIDE_LIB,
            work=sandbox.INSIDE_WORK,
            tmp=sandbox.INSIDE_TMP,
        )
        config = {
            "protocol": f"{layout.lib}/protocol.py",
            "audit": f"{layout.lib}/audit.py",
            "sys_path": [layout.student],
            "allow_write": [layout.work, layout.tmp],
            "req_fd": req_r,
            "res_fd": res_w,
            "threads": self.limits.threads,
        }
        files = {f"{layout.tmp}/runner.json": json.dumps(config).encode(), **assets.font_files()}
        for assignment, text in self.payload.notebooks.items():
            files[f"{layout.work}/{assignment}/{assignment}.ipynb"] = text.encode()
        spec = sandbox.Spec(
            argv=[sys.executable, "-I", f"{layout.lib}/runner.py", f"{layout.tmp}/runner.json"],
            student_build=release_dir() / "dnnkernels",
            lib_files=LIB_FILES,
            limits=self.limits,
            files=files,
            env={"DNNK_STUDENT_WORK": layout.work, "MPLBACKEND": "Agg"},
            pass_fds=(req_r, res_w),
            data_dir=assets.data_dir(),
        )
        try:
            self.proc = sandbox.launch(spec, stdout=out_w, stderr=out_w)
        finally:
            for fd in (req_r, res_w, out_w):
                os.close(fd)
        self._drain = sandbox.Drain(out_r, OUTPUT_CAP)
        self._results, self._requests = protocol.pipe_connection(res_r, req_w)

    def _receive(self, timeout: float):
        """One message; the sandbox is killed if it has not fully arrived by then."""
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
        if timeout <= 0:
            raise protocol.Timeout()
        started = time.monotonic()
        self._fired = False

        def fire():
            self._fired = True
            if self.proc is not None:
                self.proc.kill()

        watchdog = threading.Timer(timeout + 1.0, fire)
        watchdog.start()
        try:
            return protocol.receive(self._results, timeout=timeout)
        except protocol.Closed:
            if self._fired or time.monotonic() - started >= timeout:
                raise protocol.Timeout() from None
            raise
        finally:
            watchdog.cancel()

    def _start(self) -> None:
        """Start a runner and load the cells; hanging or fatal cells are skipped."""
        while True:
            self._spawn()
            cells = [c for i, c in enumerate(self.payload.cells) if i not in self.skip]
            indices = [i for i in range(len(self.payload.cells)) if i not in self.skip]
            current = None
            try:
                rid = self._send({"op": "load", "cells": cells}, [])
                while True:
                    header, _ = self._receive(self.limits.load_seconds)
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
                        if self.proc.dying():  # this cell killed its sandbox (e.g. its parent)
                            raise protocol.Closed("the sandbox is ending")
                        protocol.send(self._requests, {"op": "next", "id": rid}, [])
                        current = None
                    elif event == "loaded":
                        return
                    else:
                        raise protocol.ProtocolError(f"unexpected event {event!r}")
            except protocol.Timeout:
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    self._kill()
                    raise StudentError(_BUDGET) from None
                why = (
                    f"took longer than {self.limits.load_seconds:g} s to run, so it was skipped "
                    "(an infinite loop or a long experiment at the top level of the cell?)"
                )
            except (protocol.Closed, BrokenPipeError, OSError):
                why = describe_exit(self._exit_status()) + " while running this cell; skipped"
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
        protocol.send(self._requests, dict(header, id=self._next_id), blobs)
        return self._next_id

    def _exit_status(self) -> int | None:
        """How the runner ended (None: still running or unknown); the sandbox is killed."""
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            # bubblewrap reports the command's status, or 128 + n for a signal n
            if code is not None and code > 128 and code - 128 < 65:
                code = -(code - 128)
        self._kill()
        return code

    def _request(self, op: str, name: str, args: tuple, kwargs: dict):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise StudentError(_BUDGET)
        if name in self.poisoned:  # it hung or killed its process before: not again
            raise StudentError(self.poisoned[name])
        if self.proc is None:
            self._start()
        blobs: list[bytes] = []
        spec_args = protocol.encode(tuple(args), blobs)
        spec_kwargs = protocol.encode(dict(kwargs), blobs)
        try:
            rid = self._send(
                {"op": op, "name": name, "args": spec_args, "kwargs": spec_kwargs}, blobs
            )
            header, out_blobs = self._receive(self.limits.call_seconds)
            if header.get("id") != rid:
                raise protocol.ProtocolError("answer to another request")
        except protocol.Timeout:
            self._kill()
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise StudentError(_BUDGET) from None
            self.poisoned[name] = (
                f"timeout: no answer within {self.limits.call_seconds:g} s "
                "(an infinite loop, or far too slow)"
            )
            raise StudentError(self.poisoned[name]) from None
        except (protocol.Closed, BrokenPipeError, OSError):
            self.poisoned[name] = describe_exit(self._exit_status())
            raise StudentError(self.poisoned[name]) from None
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


_BUDGET = (
    "the grading time budget of this submission was spent before this check could run "
    "(slow code at the top level of an answer cell?)"
)


def _format_error(error: dict) -> str:
    text = f"{error.get('type', 'Exception')}: {error.get('message', '')}".rstrip(": ")
    if len(text) > 240:
        text = text[:237] + "..."
    if error.get("where"):
        text += f" ({error['where']})"
    return text
