"""The trusted proxy to a student's code (autograder/student.py) and its sandboxed runner."""

from __future__ import annotations

import os
import time

import pytest
import torch

from autograder.limits import Limits
from autograder.paths import REPO
from autograder.student import Payload, StudentCode, StudentError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops uids: needs root")

SOURCE = f"""
import os
import sys


def double(x):
    print("chatty " * 100_000)
    return 2 * x


def hang():
    while True:
        pass


def die():
    os._exit(0)


def leave():
    sys.exit(3)


def steal():
    return open({str(REPO / "src" / "dnnkernels" / "conv2d.py")!r}).read()


def spawn():
    return os.system("true")


def burn(n):
    total = 0
    for i in range(n):
        total += i
    return total
"""


def payload(source: str) -> Payload:
    cells = [
        {"grade_id": "setup_1", "kind": "setup", "source": "import torch\n%matplotlib inline"},
        {"grade_id": "precision_im2col_answer", "kind": "answer", "source": source},
        {"grade_id": "precision_fft_answer", "kind": "answer", "source": "def conv2d_fft(:"},
        {"grade_id": "precision_winograd_answer", "kind": "answer", "source": "while True: pass"},
    ]
    return Payload("precision", cells)


@pytest.mark.slow
def test_limits_restarts_and_the_sandbox():
    """Timeouts, crashes and forbidden operations fail one call each; the next one works."""
    limits = Limits(call_seconds=3, load_seconds=8, memory_bytes=3 << 30)
    with StudentCode(payload(SOURCE), limits) as code:
        assert torch.equal(code.call("double", torch.ones(3)), torch.full((3,), 2.0))
        assert "longer than 8 s" in code.cell_errors["precision_winograd_answer"]
        assert "SyntaxError" in code.cell_errors["precision_fft_answer"]
        with pytest.raises(StudentError, match="SyntaxError"):
            code.call("conv2d_fft")
        with pytest.raises(StudentError, match="timeout"):
            code.call("hang")
        started = time.monotonic()
        with pytest.raises(StudentError, match="timeout"):  # not called again: fails at once
            code.call("hang")
        assert time.monotonic() - started < 1
        with pytest.raises(StudentError, match="exited with status 0"):
            code.call("die")
        with pytest.raises(StudentError, match="SystemExit: 3"):
            code.call("leave")
        with pytest.raises(StudentError, match="FileNotFoundError"):  # not even there
            code.call("steal")
        with pytest.raises(StudentError, match="PermissionError: grader sandbox"):
            code.call("spawn")
        assert torch.equal(code.call("double", torch.ones(1)), torch.full((1,), 2.0))
        assert code.starts == 4  # first start, the skipped cell, the timeout, os._exit
    assert "chatty" in code.log and len(code.log) <= 64 << 10


@pytest.mark.slow
def test_cpu_time_is_measured_outside():
    """``timed_call`` reads the sandbox's CPU time from /proc: more work, more seconds."""
    with StudentCode(payload(SOURCE), Limits(call_seconds=60)) as code:
        _, small = code.timed_call("burn", 10_000)
        value, large = code.timed_call("burn", 5_000_000)
    assert value == sum(range(5_000_000))
    assert large > 5 * max(small, 0.01), (small, large)


def test_the_budget_stops_calls():
    with StudentCode(payload(SOURCE), Limits(), deadline=time.monotonic() - 1) as code:
        with pytest.raises(StudentError, match="time budget"):
            code.call("double", torch.ones(1))
