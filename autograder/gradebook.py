"""nbgrader's gradebook (SQLite): registering assignments and writing scores.

Only the grading driver's parent process writes to the main gradebook (SQLite takes one
writer at a time); workers autograde against private copies of a per-assignment template.

- :func:`sync_assignment`: make the gradebook's record of an assignment (notebook, grade
  cells and points, source cells and checksums) match the release notebook, with nbgrader's
  own ``SaveCells`` preprocessor. A release with changed cells drops the assignment's old
  submissions first (nbgrader refuses to change cells under submissions); a warning says so.
- :func:`record_submission`: the scores of one graded submission, as nbgrader's
  ``SaveAutoGrades`` would write them, except that each task's graded cell gets the points
  of its hidden checks instead of the notebook's own (defeatable) visible-test result.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from nbformat import NotebookNode

log = logging.getLogger("autograder")


@contextmanager
def _venv_path():
    """nbgrader creates a new database with the ``alembic`` command: keep the venv on PATH."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before])
    try:
        yield
    finally:
        os.environ["PATH"] = before


COURSE_ID = "dnnkernels"


def db_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def open_gradebook(path: Path):
    """An nbgrader ``Gradebook`` on the SQLite file ``path`` (created if missing)."""
    from nbgrader.api import Gradebook

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _venv_path(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Gradebook(db_url(path), COURSE_ID)


def _expected(release: NotebookNode) -> tuple[dict, dict]:
    """(grade cells, source cells) of a release notebook, as SaveCells records them."""
    from nbgrader import utils

    grades, sources = {}, {}
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if gid is None:
            continue
        if utils.is_grade(cell):
            grades[gid] = (float(meta["points"]), cell.cell_type)
        if utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell):
            sources[gid] = (cell.cell_type, bool(utils.is_locked(cell)), meta.get("checksum"))
    return grades, sources


def in_sync(gb, assignment: str, release: NotebookNode) -> bool:
    """Does the gradebook hold exactly this release notebook's cells for the assignment?"""
    from nbgrader.api import MissingEntry

    try:
        notebook = gb.find_notebook(assignment, assignment)
    except MissingEntry:
        return False
    grades, sources = _expected(release)
    have_grades = {c.name: (float(c.max_score), c.cell_type) for c in notebook.grade_cells}
    have_sources = {
        c.name: (c.cell_type, bool(c.locked), c.checksum) for c in notebook.source_cells
    }
    return have_grades == grades and have_sources == sources


def sync_assignment(path: Path, assignment: str, release: NotebookNode) -> bool:
    """Register or update the assignment in the gradebook at ``path``; True if it changed.

    Changed points, sources or checksums are updated in place (submissions stay); a changed
    *set* of graded cells drops the assignment's submissions first, with a warning.
    """
    from nbgrader.api import MissingEntry
    from nbgrader.preprocessors import SaveCells

    with open_gradebook(path) as gb:
        if in_sync(gb, assignment, release):
            return False
        try:
            existing = gb.find_assignment(assignment)
        except MissingEntry:
            existing = None
        if existing is not None and len(existing.submissions) > 0:
            grades, sources = _expected(release)
            try:
                notebook = gb.find_notebook(assignment, assignment)
                same_cells = {c.name for c in notebook.grade_cells} == set(grades) and {
                    c.name for c in notebook.source_cells
                } == set(sources)
            except MissingEntry:
                same_cells = False
            if not same_cells:
                log.warning(
                    "the release of %s has other graded cells than the gradebook: dropping "
                    "its %d graded submission(s) from %s",
                    assignment,
                    len(existing.submissions),
                    path,
                )
                gb.remove_assignment(assignment)
        gb.update_or_create_assignment(assignment)
    resources = {
        "nbgrader": {"notebook": assignment, "assignment": assignment, "db_url": db_url(path)}
    }
    with _venv_path(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SaveCells().preprocess(copy.deepcopy(release), resources)
    return True


def record_submission(
    gb,
    student: str,
    assignment: str,
    notebook: NotebookNode,
    task_points: dict[str, float],
    timestamp: datetime | None,
) -> None:
    """Write one submission's scores; see the module docstring.

    Args:
        gb: an open ``Gradebook``.
        notebook: the autograded notebook (executed by nbgrader, canonical cells).
        task_points: task id -> points earned in the hidden checks.
        timestamp: submission time (``timestamp.txt``), or None.
    """
    from nbgrader import utils

    gb.update_or_create_student(student)
    if timestamp is not None:
        gb.update_or_create_submission(assignment, student, timestamp=timestamp)
    else:
        gb.update_or_create_submission(assignment, student)
    cells = {}
    for cell in notebook.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid is not None and gid not in cells:
            cells[gid] = cell
    nb_record = gb.find_notebook(assignment, assignment)
    for grade_cell in nb_record.grade_cells:
        grade = gb.find_grade(grade_cell.name, assignment, assignment, student)
        cell = cells.get(grade_cell.name)
        if grade_cell.name in task_points:
            auto = min(float(task_points[grade_cell.name]), float(grade_cell.max_score))
        elif cell is not None:
            auto, _ = utils.determine_grade(cell)
        else:
            auto = 0.0
        grade.auto_score = auto
        grade.needs_manual_grade = grade.manual_score is not None or auto is None
    for solution_cell in nb_record.solution_cells:
        comment = gb.find_comment(solution_cell.name, assignment, assignment, student)
        cell = cells.get(solution_cell.name)
        unchanged = cell is None or (
            cell.metadata.nbgrader.get("checksum") == utils.compute_checksum(cell)
        )
        comment.auto_comment = "No response." if unchanged else None
    gb.db.commit()


def scores(gb, assignment: str, student: str) -> dict[str, dict]:
    """grade_id -> {auto, manual, score, max, needs_manual} of one submission."""
    submission = gb.find_submission_notebook(assignment, assignment, student)
    out = {}
    for grade in submission.grades:
        out[grade.name] = {
            "auto": grade.auto_score,
            "manual": grade.manual_score,
            "score": grade.score,
            "max": grade.max_score,
            "needs_manual": bool(grade.needs_manual_grade),
        }
    return out
