"""All four assignments graded end to end: real nbgrader, the sandbox, the hidden checks.

One class run: for every assignment the solution (every automatic point), the untouched
release (none), and for **each task** (parametrised over ``TASKS``) a submission whose
answer cell of that task alone is put back to its released stub: it loses exactly that
task's points and keeps every other one. Beside them, six loops over the accumulations in
bit_width's ``accumulate`` (plain, in a thread, under another file name, ...): each loses
the vectorization point, measured as CPU time from outside the sandbox, and nothing else;
an ``SVDLinear`` whose forward pass multiplies by the rebuilt weight earns none of its
task's points (the method check sees the dense product's FLOPs).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from attacks import replace_answer
from helpers import ACCUMULATE_LOOP

from autograder import notebooks
from autograder.demo import solution_notebook
from autograder.grade import grade, grade_table
from autograder.paths import release_dir
from dnnkernels.tasks import ASSIGNMENTS, TASKS, tasks_of

# the module fixture grades four assignments before the first test (several minutes)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

#: each earns bit_width_accumulate's points but the vectorization one
EVASIONS = {
    "loop": ACCUMULATE_LOOP + "\naccumulate = _loop\n",
    "loop-in-a-thread": ACCUMULATE_LOOP
    + """
import threading


def accumulate(products, bits, mode="saturate"):
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("v", _loop(products, bits, mode)))
    worker.start()
    worker.join()
    return box["v"]
""",
    "loop-under-another-file-name": (
        f"exec(compile({ACCUMULATE_LOOP!r}, '/usr/lib/python3/dist-packages/x.py', 'exec'))\n"
        "accumulate = _loop\n"
    ),
    "loop-with-co-filename-replaced": ACCUMULATE_LOOP
    + "\n_loop.__code__ = _loop.__code__.replace(co_filename='<frozen x>')\naccumulate = _loop\n",
    "loop-with-the-tracer-reset": ACCUMULATE_LOOP
    + """
import sys


def accumulate(products, bits, mode="saturate"):
    tracer = sys.gettrace()
    sys.settrace(None)
    try:
        return _loop(products, bits, mode)
    finally:
        sys.settrace(tracer)
""",
    "loop-with-the-registry-replaced": ACCUMULATE_LOOP
    + """
import sys

for _module in list(sys.modules.values()):
    _registry = getattr(_module, "ADAPTERS", None)
    if isinstance(_registry, dict) and "line_count" in _registry:
        _registry["line_count"] = lambda namespace, name, *args: {
            "value": namespace[name](*args), "lines": 0, "own": True, "intact": True
        }
accumulate = _loop
""",
}


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
            if assignment == "mnist":  # right values, but the rebuilt weight's FLOPs
                nb = copy.deepcopy(solution)
                cell = _answer(nb, "mnist_svd_linear")
                factored = "y = (x @ self.V) @ self.SUt"
                assert factored in cell.source, "the solution's forward pass changed"
                cell.source = cell.source.replace(factored, "y = x @ (self.V @ self.SUt)")
                versions["not-factored-svd-linear"] = nb
            if assignment == "bit_width":
                for name, code in EVASIONS.items():
                    versions[f"evade-{name}"] = replace_answer(
                        solution, "bit_width_accumulate", code
                    )
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


@pytest.mark.parametrize("name", sorted(EVASIONS))
def test_a_loop_loses_the_vectorization_point_however_it_hides(rows, name):
    row = rows[f"evade-{name}"]
    got = {t.id: row[t.id] for t in tasks_of("bit_width")}
    want = {t.id: float(t.points) for t in tasks_of("bit_width")}
    want["bit_width_accumulate"] -= 1  # test_accumulate_vectorized: 1 point
    assert got == want, f"{name}: {got}"


def test_a_forward_pass_through_the_rebuilt_weight_earns_nothing_for_its_task(rows):
    """SVDLinear.forward as x @ (V @ SUt): right values, the dense product's FLOPs."""
    row = rows["not-factored-svd-linear"]
    got = {t.id: row[t.id] for t in tasks_of("mnist")}
    want = {t.id: float(t.points) for t in tasks_of("mnist")}
    want["mnist_svd_linear"] = 0.0
    assert got == want, got
