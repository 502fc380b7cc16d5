"""The demo class: three submissions per assignment, graded end to end.

Usage (part of ``make course``)::

    python -m autograder.demo [--assignment A ...] [--grading-dir DIR] [--workers 2]

Students (each submits every assignment):

- ``solution``: the instructor solution notebook (reference bodies in the answer cells):
  full automatic points;
- ``untouched``: the student version exactly as released: zero kernel points, and
  grading completes;
- ``one_broken``: the solution with exactly one kernel broken (``conv2d_im2col`` returns
  values 0.1 % off): loses exactly the points of ``precision_im2col``.

The demo grades into its own folder, ``build/grading/demo`` by default (so that its
submissions never sit in the course's main gradebook), prints the grade table, checks the
three outcomes and exits with status 1 if one of them is not as expected.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import time
from pathlib import Path

import nbformat

from autograder import notebooks
from autograder.course import Roster
from autograder.grade import format_table, grade
from autograder.paths import REPO, release_dir, solutions_dir
from dnnkernels.tasks import ASSIGNMENTS, TASKS, tasks_of

STUDENTS = ("solution", "untouched", "one_broken")
BROKEN_TASK = "precision_im2col"
BREAK_IM2COL = """

# --- demo: this kernel is deliberately broken (values 0.1 % off) ---
_conv2d_im2col_correct = conv2d_im2col


def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    return _conv2d_im2col_correct(x, k, b, stride, padding) * 1.001
"""


def solution_notebook(assignment: str) -> nbformat.NotebookNode:
    """The instructor version of an assignment, reference bodies in the answer cells.

    Built in memory by the course tooling from ``source/`` and ``src/`` (so it never
    depends on a stale build); ``build/solutions/<a>/<a>.ipynb`` is the fallback.
    """
    try:
        from dnnkernels.course import notebooks as course_notebooks
        from dnnkernels.course.extract import all_exercises
        from dnnkernels.course.paths import Layout

        layout = Layout(REPO)
        exercises = all_exercises(layout.src)
        return course_notebooks.build_notebook(
            assignment,
            layout.source_notebook(assignment),
            {t.id: exercises[t.id] for t in tasks_of(assignment)},
            "Instructor version (demo submission of the autograder).",
        )
    except Exception as error:  # noqa: BLE001 - fall back to the executed solutions
        path = solutions_dir() / assignment / f"{assignment}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(
                f"cannot build the solution of {assignment} ({error}) and {path} is missing: "
                "run `make solutions`"
            ) from error
        return notebooks.read(path.read_bytes())


def break_task(nb: nbformat.NotebookNode, task_id: str = BROKEN_TASK) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose answer cell of ``task_id`` returns wrong values."""
    if task_id != BROKEN_TASK:
        raise ValueError(f"task_id: got {task_id!r}, only {BROKEN_TASK!r} has a breaker")
    nb = copy.deepcopy(nb)
    cell = next(c for c in nb.cells if notebooks.grade_id(c) == TASKS[task_id].answer_cell_id)
    cell.source = cell.source.rstrip() + "\n" + BREAK_IM2COL
    return nb


def build_class(grading: Path, assignments) -> None:
    """Write the demo submissions under ``grading/submitted``."""
    for assignment in assignments:
        solution = solution_notebook(assignment)
        released = notebooks.read_release(release_dir(), assignment)
        versions = {
            "solution": solution,
            "untouched": released,
            "one_broken": break_task(solution) if assignment == "precision" else solution,
        }
        for student, nb in versions.items():
            folder = grading / "submitted" / student / assignment
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{assignment}.ipynb")
            (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")


def expected_problems(rows: list[dict], assignments) -> list[str]:
    """Differences between the graded table and the three expected outcomes."""
    by_student = {r["student"]: r for r in rows}
    problems = []
    for task in (t for a in assignments for t in tasks_of(a)):
        full = float(task.points)
        want = {
            "solution": full,
            "untouched": 0.0,
            "one_broken": 0.0 if task.id == BROKEN_TASK else full,
        }
        for student, points in want.items():
            got = by_student.get(student, {}).get(task.id)
            if got is None or abs(float(got) - points) > 1e-9:
                problems.append(f"{student}: {task.id} got {got}, expected {points:g}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--assignment",
        action="extend",
        nargs="+",
        choices=ASSIGNMENTS,
        help="assignment (repeatable; default: all four)",
    )
    parser.add_argument(
        "--grading-dir",
        type=Path,
        default=REPO / "build" / "grading" / "demo",
        help="grading folder of the demo (default build/grading/demo)",
    )
    parser.add_argument("--workers", type=int, default=2, help="submissions graded at once")
    args = parser.parse_args(argv)
    assignments = args.assignment or list(ASSIGNMENTS)
    grading = args.grading_dir.resolve()
    start = time.monotonic()
    build_class(grading, assignments)
    # the demo class only: not the course's roster
    report = grade(
        grading, assignments, list(STUDENTS), workers=args.workers, students_of_course=Roster()
    )
    rows = report.rows  # the grade table of this run (built once)
    print(format_table(rows, assignments))
    elapsed = time.monotonic() - start
    problems = expected_problems(rows, assignments)
    if not report.ok:
        problems.append(report.summary())
    print(
        f"\ndemo class graded in {elapsed:.0f} s: {grading / 'grades.csv'}, "
        f"feedback in {grading / 'feedback'}"
    )
    if problems:
        print("UNEXPECTED demo grades:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(
        "demo: solution has full automatic points, untouched has none, one_broken lost "
        f"exactly {BROKEN_TASK} ({TASKS[BROKEN_TASK].points} points)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
