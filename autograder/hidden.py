"""Running the hidden checks of one submission: pytest, in the trusted grading process.

The checks (``autograder/hidden/test_<assignment>.py``) are pytest tests; they run here,
in the worker's own (trusted) process, with pytest's Python API, once per submission. The
student's code never runs in this process: the ``student`` fixture is a
:class:`autograder.student.StudentCode` whose runner lives in the job's sandbox. Running in
process saves an interpreter start and a torch import per submission; a lock keeps one
pytest session at a time per process.

:func:`run_hidden` returns one record per check (task, points, points earned, outcome, a
message for the student) as :mod:`autograder.hidden.conftest` collects them.
"""

from __future__ import annotations

import threading
from pathlib import Path

from autograder.limits import Limits
from autograder.student import Payload, StudentCode

HIDDEN = Path(__file__).resolve().parent / "hidden"
_LOCK = threading.Lock()


class JobPlugin:
    """Hands the job's student code to the hidden checks and collects their results."""

    def __init__(self, code: StudentCode) -> None:
        self.__name__ = "dnnk-job"  # the name pytest registers it under (conftest looks it up)
        self.code = code
        self.records: list[dict] = []


def hidden_files(assignment: str) -> list[Path]:
    """The hidden checks of ``assignment``; the method checks last (they judge every
    recorded call of the value checks, and may void a task's points)."""
    files = [HIDDEN / f"test_{assignment}.py"]
    methods = HIDDEN / f"test_methods_{assignment}.py"
    return files + [methods] if methods.is_file() else files


def run_hidden(payload: Payload, limits: Limits, deadline: float) -> tuple[list, str | None, dict]:
    """(checks, note, stats) of the hidden checks of ``payload``'s assignment.

    ``stats``: ``runner_cpu`` (CPU seconds of the runner's sandbox), ``starts`` (how
    many times it was started), ``log`` (the runner's own output, capped).
    """
    import pytest

    code = StudentCode(payload, limits, deadline=deadline)
    plugin = JobPlugin(code)
    args = [
        "-c",
        str(HIDDEN / "pytest.ini"),
        "--rootdir",
        str(HIDDEN),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        "-p",
        "no:faulthandler",
        "-p",
        "no:pytest_timeout",
        "--capture=no",
        *[str(path) for path in hidden_files(payload.assignment)],
    ]
    try:
        with _LOCK:
            exitstatus = pytest.main(args, plugins=[plugin])
    finally:
        code.close()
    cpu = sum(code.runner_cpu)
    checks = plugin.records
    note = None
    if not checks or int(exitstatus) in (2, 3, 4):  # interrupted, internal or usage error
        note = "the hidden checks could not be run (grader error): please tell the instructors"
    elif any(c.get("grader_error") for c in checks):
        note = "a hidden check failed inside the grader: please tell the instructors"
    return checks, note, {"runner_cpu": cpu, "starts": code.starts, "log": code.log}
