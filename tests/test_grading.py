"""All four assignments graded end to end: real nbgrader, the sandbox, the hidden checks.

One class run: for every assignment the solution (every automatic point), the untouched
release (none), and for **each task** (parametrised over ``TASKS``) a submission whose
answer cell of that task alone is put back to its released stub: it loses exactly that
task's points and keeps every other one.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

from autograder import notebooks
from autograder.demo import solution_notebook
from autograder.grade import grade, grade_table
from autograder.paths import release_dir
from dnnkernels.tasks import ASSIGNMENTS, TASKS, tasks_of

pytestmark = pytest.mark.slow


def _answer(nb, task_id: str):
    gid = TASKS[task_id].answer_cell_id
    return next(c for c in nb.cells if notebooks.grade_id(c) == gid)


def stubbed(solution, release, task_id: str):
    """``solution`` with the answer cell of ``task_id`` as released (the stub)."""
    nb = copy.deepcopy(solution)
    _answer(nb, task_id).source = _answer(release, task_id).source
    return nb


@pytest.fixture(scope="module")
def rows():
    grading = Path(tempfile.mkdtemp(prefix="dnnk-test-class-"))
    try:
        for assignment in ASSIGNMENTS:
            solution = solution_notebook(assignment)
            release = notebooks.read(
                (release_dir() / assignment / f"{assignment}.ipynb").read_bytes()
            )
            versions = {"solution": solution, "untouched": release}
            for task in tasks_of(assignment):
                versions[f"stub-{task.id}"] = stubbed(solution, release, task.id)
            for student, nb in versions.items():
                folder = grading / "submitted" / student / assignment
                folder.mkdir(parents=True)
                nbformat.write(nb, folder / f"{assignment}.ipynb")
        report = grade(grading, list(ASSIGNMENTS), None, workers=2, progress=False)
        assert report.ok, report.summary()
        yield {r["student"]: r for r in grade_table(grading, list(ASSIGNMENTS))}
    finally:
        shutil.rmtree(grading, ignore_errors=True)


def test_the_solution_earns_every_automatic_point(rows):
    got = {t: rows["solution"][t] for t in TASKS}
    assert got == {t: float(task.points) for t, task in TASKS.items()}, got


def test_the_untouched_release_earns_nothing(rows):
    got = {t: rows["untouched"][t] for t in TASKS}
    assert got == dict.fromkeys(TASKS, 0.0), got


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_a_stubbed_task_loses_exactly_its_points(rows, task_id):
    row = rows[f"stub-{task_id}"]
    assignment = TASKS[task_id].assignment
    got = {t.id: row[t.id] for t in tasks_of(assignment)}
    want = {t.id: 0.0 if t.id == task_id else float(t.points) for t in tasks_of(assignment)}
    assert got == want, f"only {task_id} was left as released: {got}"
