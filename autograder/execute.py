"""Executing a submitted notebook with nbgrader, its kernel inside the job's sandbox.

nbgrader's own ``Execute`` preprocessor (nbclient) runs in the trusted grading process;
only the IPython kernel runs in the sandbox (:mod:`autograder.sandbox`).
:class:`SandboxedKernelManager` starts it there with Unix-socket (``ipc``) transport: the
kernel binds its ZMQ sockets in the sandbox's ``/run/dnnk``, which the grader reaches as
``/proc/<sandbox pid>/root/run/dnnk`` (no network in the sandbox, no socket on the host).
Interrupts travel as control messages, not signals.

:class:`SandboxedExecute` adds what a class of hundreds needs to nbgrader's ``Execute``:

- a hard deadline for the whole notebook (the submission's budget): each cell's timeout
  is the smaller of the per-cell limit and the time left, and once the budget is spent the
  remaining cells are not run (each gets a note) and the sandbox is killed;
- a cap on what the kernel may send back: a message larger than 16 MB is refused by ZMQ,
  and a cell's outputs beyond ``Limits.executed_bytes`` are dropped with a note.

:func:`execute_notebook` runs nbgrader's execution preprocessors (``SandboxedExecute``,
``IgnorePattern``, ``LimitOutput``) on a canonical notebook and returns it executed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, IgnorePattern, LimitOutput
from nbgrader.preprocessors.execute import UnresponsiveKernelError
from traitlets import Any, DottedObjectName, Float, Integer, Type

from autograder import sandbox
from autograder.limits import Limits

HERE = Path(__file__).resolve().parent
KERNEL_LIB = [HERE / "kernel.py", HERE / "audit.py"]
MAX_MESSAGE = 16 << 20  # bytes of one ZMQ message from the kernel
LOG_CAP = 64 << 10  # bytes of the kernel's own stdout/stderr kept for the log

SpecFactory = Callable[..., sandbox.Spec]


class SandboxedKernelClient(AsyncKernelClient):
    """The kernel's client, without the heartbeat channel.

    Whether the kernel lives is the sandbox process's state (``KernelManager.is_alive``); a
    heartbeat thread stuck on a kernel whose sockets the student broke would hang the
    grader when the channels stop.
    """

    def start_channels(self, shell=True, iopub=True, stdin=True, hb=True, control=True):
        super().start_channels(shell=shell, iopub=iopub, stdin=stdin, hb=False, control=control)


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel runs in a sandbox (see the module docstring).

    ``spec_factory(argv=..., files=..., env=...)`` returns the :class:`sandbox.Spec` of the
    job (student build, limits, the submission's files).
    """

    spec_factory = Any()
    client_class = DottedObjectName("autograder.execute.SandboxedKernelClient")
    client_factory = Type(klass="autograder.execute.SandboxedKernelClient")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"
        self.ip = f"{sandbox.INSIDE_IPC}/kernel"
        self.box: sandbox.SandboxProcess | None = None
        self.drain: sandbox.Drain | None = None
        self.cpu = 0.0  # CPU seconds of the kernel's sandbox

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        inside_conn = f"{sandbox.INSIDE_TMP}/kernel.json"
        connection = Path(self.connection_file).read_bytes()
        extra = [a for a in kernel_cmd if a.startswith("--HistoryManager")]
        spec: sandbox.Spec = self.spec_factory(
            argv=[sys.executable, "-I", f"{sandbox.INSIDE_LIB}/kernel.py", "-f", inside_conn]
            + extra,
            files={inside_conn: connection},
        )
        out_r, out_w = os.pipe()
        try:
            self.box = sandbox.launch(spec, stdout=out_w, stderr=out_w)
        finally:
            os.close(out_w)
        self.drain = sandbox.Drain(out_r, LOG_CAP)
        provisioner = self.provisioner
        provisioner.process = self.box.popen
        provisioner.pid = self.box.popen.pid
        provisioner.pgid = self.box.popen.pid
        provisioner.cwd = spec.cwd
        # from now on the grader reaches the kernel's sockets through the sandbox's root
        self.ip = self.box.host_path(f"{sandbox.INSIDE_IPC}/kernel")

    def _connect_control_socket(self) -> None:
        super()._connect_control_socket()
        # a kernel whose sockets the student broke must not block the grader
        self._control_socket.setsockopt(zmq.SNDTIMEO, 1000)
        self._control_socket.setsockopt(zmq.LINGER, 0)

    async def _async_interrupt_kernel(self) -> None:
        """Interrupt by a control message (the kernel raises KeyboardInterrupt itself)."""
        msg = self.session.msg("interrupt_request", content={})
        self._connect_control_socket()
        try:
            self.session.send(self._control_socket, msg)
        except zmq.ZMQError:
            pass  # the next timeout or the budget ends it

    interrupt_kernel = _async_interrupt_kernel

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Kill the sandbox (its state is of no use to the grader), then clean up."""
        self.shutting_down = True
        self.stop_restarter()
        self.close_sandbox()
        await self._async_cleanup_resources(restart=restart)

    shutdown_kernel = _async_shutdown_kernel

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        self.close_sandbox()

    def close_sandbox(self) -> None:
        if self.box is not None:
            self.box.close()
            self.cpu = self.box.cpu
            self.box = None
        if self.drain is not None:
            self.drain.join(timeout=5)

    def log_text(self) -> str:
        return bytes(self.drain.kept).decode("utf-8", "replace") if self.drain else ""

    def client(self, **kwargs):
        client = super().client(**kwargs)
        client.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        return client


BUDGET_NOTE = (
    "[not executed: the grading time budget of this submission was spent before this cell]"
)
OUTPUT_NOTE = "[... further output of this notebook dropped by the grader: too large ...]"


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` with the kernel in a sandbox, a deadline and an output cap."""

    spec_factory = Any()
    deadline = Float(0.0, help="time.monotonic() after which no cell runs")
    cell_seconds = Float(120.0)
    output_bytes = Integer(40 << 20)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.timeout_func = self._cell_timeout
        self.budget_spent = False
        self.kernel_log = ""
        self.kernel_cpu = 0.0
        self._output_used = 0
        self._output_noted = False

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def _cell_timeout(self, cell) -> int:
        return max(1, int(min(self.cell_seconds, self._left())))

    def create_kernel_manager(self):
        self.km = SandboxedKernelManager(
            kernel_name="python3", spec_factory=self.spec_factory, config=self.config
        )
        return self.km

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if (
            cell.cell_type == "code"
            and cell.source.strip()
            and (self.budget_spent or self._left() <= 1)
        ):
            self.budget_spent = True
            cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=BUDGET_NOTE)]
            if self.km is not None and isinstance(self.km, SandboxedKernelManager):
                self.km.close_sandbox()  # nothing runs on after the budget
            return cell
        run = super().async_execute_cell(cell, cell_index, execution_count, store_history)
        try:  # also bounds a send that a broken kernel never takes
            return await asyncio.wait_for(run, timeout=max(5.0, self._left() + 10.0))
        except TimeoutError:
            self.budget_spent = True
            cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=BUDGET_NOTE))
            if isinstance(self.km, SandboxedKernelManager):
                self.km.close_sandbox()
            return cell

    # nbclient binds the synchronous names to its own coroutines: bind them to ours
    execute_cell = run_sync(async_execute_cell)

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        self._output_used += size
        if self._output_used > self.output_bytes:
            if not self._output_noted:
                self._output_noted = True
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=OUTPUT_NOTE))
            return None
        return super().output(outs, msg, display_id, cell_index)

    async def _async_cleanup_kernel(self) -> None:
        km = self.km
        if isinstance(km, SandboxedKernelManager) and km.box is not None:
            km.box.cpu = max(km.box.cpu, km.box.cpu_seconds())
        try:
            await super()._async_cleanup_kernel()
        finally:
            if isinstance(km, SandboxedKernelManager):
                km.close_sandbox()
                self.kernel_log = km.log_text()
                self.kernel_cpu = km.cpu

    _cleanup_kernel = run_sync(_async_cleanup_kernel)


def execute_notebook(
    nb: NotebookNode,
    spec_factory: SpecFactory,
    limits: Limits,
    deadline: float,
) -> tuple[NotebookNode, dict]:
    """Execute ``nb`` with nbgrader's preprocessors; returns it and a report.

    The report says ``budget_spent`` (cells were skipped), ``error`` (why the execution
    stopped early, or None) and ``log`` (the kernel's own output, capped).
    """
    from traitlets.config import Config

    config = Config()
    config.Execute.timeout = int(limits.cell_seconds)
    config.Execute.interrupt_on_timeout = True
    config.Execute.startup_timeout = 60
    config.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
    config.LimitOutput.max_lines = 1000
    config.LimitOutput.max_traceback = 100
    executor = SandboxedExecute(
        config=config,
        spec_factory=spec_factory,
        deadline=deadline,
        cell_seconds=limits.cell_seconds,
        output_bytes=limits.executed_bytes,
    )
    resources = {"metadata": {"path": sandbox.INSIDE_WORK}}
    report = {"budget_spent": False, "error": None, "log": "", "cpu": 0.0}
    try:
        nb, resources = executor.preprocess(nb, resources)
    except DeadKernelError:
        report["error"] = "the kernel died (os._exit, a crash or the memory limit?)"
    except (CellTimeoutError, UnresponsiveKernelError, TimeoutError):
        report["error"] = "the kernel stopped responding"
    except Exception as error:  # noqa: BLE001 - anything else nbclient/nbgrader raise
        report["error"] = f"{type(error).__name__}: {str(error)[:200]}"
    finally:
        km = executor.km  # still set if the kernel never started properly
        if isinstance(km, SandboxedKernelManager):
            km.close_sandbox()
            executor.kernel_log = executor.kernel_log or km.log_text()
            executor.kernel_cpu = executor.kernel_cpu or km.cpu
    report.update(
        budget_spent=executor.budget_spent, log=executor.kernel_log, cpu=executor.kernel_cpu
    )
    for pre in (IgnorePattern(config=config), LimitOutput(config=config)):
        nb, resources = pre.preprocess(nb, resources)
    return nb, report
