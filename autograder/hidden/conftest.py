"""pytest plumbing of the hidden checks: markers, the ``student`` fixture, per-check results.

Run by the grading driver, once per submission, in a trusted process::

    python -m pytest -c autograder/hidden/pytest.ini autograder/hidden/test_<assignment>.py \\
        --dnnk-payload PAYLOAD.json --dnnk-results RESULTS.json

or by hand on one notebook (the payload is built from it and the release)::

    python -m pytest -c autograder/hidden/pytest.ini autograder/hidden/test_precision.py \\
        --dnnk-notebook build/solutions/precision/precision.ipynb [-m precision_im2col]

Every check carries one task marker (``@pytest.mark.<task id>``) and its points
(``@pytest.mark.points(n)``); the points of a task's checks add up to ``Task.points``.
The ``student`` fixture is a :class:`autograder.student.StudentCode`: the student's code
runs in a sandboxed runner process, never here. ``--dnnk-results`` receives one record per
check: task, points, points earned, outcome and a message for the student. A method check
(``test_methods_<assignment>.py``, 0 points) that raises ``MethodViolation`` voids every point
of its task (:func:`apply_vetoes`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autograder import notebooks
from autograder.methods import MethodViolation, apply_vetoes
from autograder.paths import release_dir
from autograder.student import CheckFailed, Payload, StudentCode, StudentError
from dnnkernels.tasks import TASKS

_RESULTS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser):
    group = parser.getgroup("dnnkernels autograder")
    group.addoption("--dnnk-payload", help="payload JSON written by the grading driver")
    group.addoption("--dnnk-notebook", help="grade this notebook (builds the payload)")
    group.addoption("--dnnk-results", help="write per-check results to this JSON file")


def pytest_configure(config):
    for task_id in TASKS:
        config.addinivalue_line("markers", f"{task_id}: checks of task {task_id}")
    config.addinivalue_line("markers", "points(n): points of one hidden check")
    config.stash[_RESULTS_KEY] = []


def _payload_from_notebook(path: Path) -> Payload:
    assignment = path.stem
    release = notebooks.read_release(release_dir(), assignment)
    canonical, _ = notebooks.canonicalise(notebooks.read(path.read_bytes()), release)
    cells, notes = notebooks.payload_cells(canonical, release)
    return Payload(assignment, cells, notes, {assignment: nbformat_text(canonical)})


def nbformat_text(nb) -> str:
    import nbformat

    return nbformat.writes(nb)


def _job(config):
    """The grading job's plugin (:class:`autograder.hidden.JobPlugin`), or None by hand."""
    return config.pluginmanager.get_plugin("dnnk-job")


@pytest.fixture(scope="session")
def student(request):
    """The student's code, behind a sandboxed runner process."""
    job = _job(request.config)
    if job is not None:  # graded by autograder.hidden.run_hidden, which closes it
        yield job.code
        return
    option = request.config.getoption
    if option("--dnnk-payload"):
        payload = Payload.load(Path(option("--dnnk-payload")))
    elif option("--dnnk-notebook"):
        payload = _payload_from_notebook(Path(option("--dnnk-notebook")))
    else:
        pytest.skip("hidden checks need --dnnk-payload or --dnnk-notebook")
    code = StudentCode(payload)
    yield code
    code.close()


def check_info(item) -> tuple[str | None, float]:
    """(task id, points) of a check from its markers."""
    task = next((m.name for m in item.iter_markers() if m.name in TASKS), None)
    mark = item.get_closest_marker("points")
    points = float(mark.args[0]) if mark and mark.args else 0.0
    return task, points


def _title(item) -> str:
    doc = getattr(item.obj, "__doc__", None) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else item.name
    return first.rstrip(".")


#: a number standing alone (not part of a name such as int64 or conv2d), and sizes as 3x1100
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\w|\.\d)")
_SIZES = re.compile(r"(?<![\w.])\d+(?:x\d+)+(?!\w|\.\d)")


def mask_numbers(text: str) -> str:
    """``text`` with its standalone numbers replaced by ``#``.

    An exception raised by the student's code describes the hidden input it failed on
    ("shapes cannot be multiplied (3x1100 and ...)", "index 12 is out of bounds"): its
    message is shown with the numbers masked, its type and line in the student's cell kept.
    """
    return _NUMBER.sub("#", _SIZES.sub("#x#", text))


def _student_message(exc: StudentError) -> str:
    text = str(exc)
    if not text.startswith("raised "):
        return text  # the grader's own account (timeout, crash, missing name)
    body, sep, where = text.partition(" (line ")
    return mask_numbers(body) + sep + where


def _message(excinfo) -> tuple[str, bool]:
    """Student-facing message of a failure, and whether it is the grader's own fault."""
    exc = excinfo.value
    if isinstance(exc, StudentError):
        return _student_message(exc), False
    if isinstance(exc, CheckFailed):
        return str(exc), False
    if isinstance(exc, pytest.skip.Exception):
        return "skipped", False
    return f"grader error ({type(exc).__name__}); please tell the instructors", True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    job = _job(item.config)
    records = job.records if job is not None else item.config.stash[_RESULTS_KEY]
    task, points = check_info(item)
    record = next((r for r in records if r["nodeid"] == item.nodeid), None)
    if record is None:
        record = {
            "nodeid": item.nodeid,
            "check": item.name,
            "title": _title(item),
            "task": task,
            "points": points,
            "earned": 0.0,
            "outcome": "pending",
            "message": "",
            "grader_error": False,
        }
        records.append(record)
    if report.when == "call" and report.passed and record["outcome"] == "pending":
        record.update(outcome="passed", earned=points)
    elif report.failed or report.skipped:
        if call.excinfo is not None:
            message, grader_error = _message(call.excinfo)
        else:
            message, grader_error = "failed", False
        # the first failure (setup before call) explains the check
        if record["outcome"] in ("pending", "passed"):
            record.update(
                outcome="skipped" if report.skipped else "failed",
                earned=0.0,
                message=message,
                grader_error=grader_error,
            )
            if call.excinfo is not None and isinstance(call.excinfo.value, MethodViolation):
                record["veto"] = True


def pytest_sessionfinish(session, exitstatus):
    job = _job(session.config)
    records = job.records if job is not None else session.config.stash[_RESULTS_KEY]
    for record in records:
        if record["outcome"] == "pending":
            record.update(outcome="failed", message="did not complete", earned=0.0)
    apply_vetoes(records)
    path = session.config.getoption("--dnnk-results")
    if not path:
        return
    Path(path).write_text(json.dumps({"exitstatus": int(exitstatus), "checks": records}, indent=1))
