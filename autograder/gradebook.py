"""nbgrader's gradebook (SQLite): registering assignments and writing scores.

Only the grading driver's parent process writes to the main gradebook (SQLite takes one
writer at a time). ``make release`` never touches it (it registers into a gradebook of its
own under ``build/course/``); the grader registers each assignment here, from the release.

- :func:`sync_assignment`: make the gradebook's record of an assignment (notebook, grade
  cells and points, source cells and checksums, due date) match the release notebook, with
  nbgrader's ``SaveCells`` (:class:`KeepGradesSaveCells`: cells added to a release that
  already has graded submissions are added, and every existing grade stays).
- **Extra credit** is nbgrader's: a bonus cell (an ``extra_credit`` task's graded cell, or a
  manual cell listed in ``Course.extra_credit_cells``) is registered with a maximum of 0, and
  what it earns goes into the grade's ``extra_credit``; so an assignment's maximum is its
  regular points (precision: 29, plus up to 4 bonus points).
- :func:`record_submission`: the scores of one graded submission with nbgrader's own
  ``SaveAutoGrades`` (:class:`SaveHiddenGrades`), except that each task's graded cell gets
  the points of its hidden checks instead of the notebook's own (defeatable) visible-test
  result, and that a hand-graded cell whose answer did not change since it was graded keeps
  its grade without being flagged again; then nbgrader's ``AssignLatePenalties`` with the
  course's late policy.
"""

from __future__ import annotations

import copy
import logging
import warnings
from datetime import datetime
from pathlib import Path

from nbformat import NotebookNode

# nbgrader creates a new database with the ``alembic`` command: the venv must be on PATH
from dnnkernels.course.release import venv_on_path

log = logging.getLogger("autograder")


def _course_id() -> str:
    from autograder.course import load

    return load().course_id


def db_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def open_gradebook(path: Path):
    """An nbgrader ``Gradebook`` on the SQLite file ``path`` (created if missing)."""
    from nbgrader.api import Gradebook

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with venv_on_path(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Gradebook(db_url(path), _course_id())


def bonus_cells(assignment: str) -> set[str]:
    """grade ids of the assignment's extra-credit cells (graded cells with a maximum of 0)."""
    from autograder.course import load
    from dnnkernels.tasks import tasks_of

    ids = {t.id for t in tasks_of(assignment) if t.extra_credit}
    return ids | set(load().extra_credit_cells.get(assignment, []))


def gradebook_notebook(release: NotebookNode, assignment: str) -> NotebookNode:
    """The release notebook as the gradebook registers it: bonus cells worth 0 points."""
    nb = copy.deepcopy(release)
    bonus = bonus_cells(assignment)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") in bonus and "points" in meta:
            meta["points"] = 0
    return nb


def bonus_points(release: NotebookNode, assignment: str) -> dict[str, float]:
    """grade id -> the bonus points the release gives a bonus cell."""
    bonus = bonus_cells(assignment)
    out = {}
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") in bonus and meta.get("grade"):
            out[meta["grade_id"]] = float(meta.get("points", 0))
    return out


def _expected(release: NotebookNode) -> tuple[dict, dict]:
    """(grade cells, source cells) of a (gradebook) notebook, as SaveCells records them."""
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


def in_sync(gb, assignment: str, nb: NotebookNode, duedate: datetime | None = None) -> bool:
    """Does the gradebook hold exactly this (gradebook) notebook's cells and due date?"""
    from nbgrader.api import MissingEntry

    try:
        notebook = gb.find_notebook(assignment, assignment)
    except MissingEntry:
        return False
    if notebook.assignment.duedate != duedate:
        return False
    grades, sources = _expected(nb)
    have_grades = {c.name: (float(c.max_score), c.cell_type) for c in notebook.grade_cells}
    have_sources = {
        c.name: (c.cell_type, bool(c.locked), c.checksum) for c in notebook.source_cells
    }
    return have_grades == grades and have_sources == sources


def _save_cells_class():
    from nbgrader.api import Comment, Grade, MissingEntry
    from nbgrader.preprocessors import SaveCells

    class KeepGradesSaveCells(SaveCells):
        """nbgrader's ``SaveCells``, which also adds cells under existing submissions.

        nbgrader refuses to add or remove cells of a notebook with submissions (the only way
        out deletes the grades). Here new cells are added and every submission gets an empty
        grade (and comment) for them; the cells a release no longer has stay in the
        gradebook (their grades too), with a warning.
        """

        def _create_notebook(self, nb):
            try:
                notebook = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
            except MissingEntry:
                return super()._create_notebook(nb)
            if len(notebook.submissions) == 0:
                return super()._create_notebook(nb)
            old = {c.name for c in notebook.grade_cells} | {c.name for c in notebook.source_cells}
            new = set(self.new_grade_cells) | set(self.new_source_cells)
            if old - new:
                log.warning(
                    "%s: the release no longer has the cells %s; they stay in the gradebook "
                    "with their grades",
                    self.assignment_id,
                    ", ".join(sorted(old - new)),
                )
            for name, info in self.new_grade_cells.items():
                self.gradebook.update_or_create_grade_cell(
                    name, self.notebook_id, self.assignment_id, **info
                )
            for name, info in self.new_solution_cells.items():
                self.gradebook.update_or_create_solution_cell(
                    name, self.notebook_id, self.assignment_id, **info
                )
            for name, info in self.new_task_cells.items():
                self.gradebook.update_or_create_task_cell(
                    name, self.notebook_id, self.assignment_id, **info
                )
            for name, info in self.new_source_cells.items():
                self.gradebook.update_or_create_source_cell(
                    name, self.notebook_id, self.assignment_id, **info
                )
            notebook = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
            for submitted in notebook.submissions:
                graded = {g.cell_id for g in submitted.grades}
                commented = {c.cell_id for c in submitted.comments}
                for cell in notebook.grade_cells:
                    if cell.id not in graded:
                        self.gradebook.db.add(Grade(cell_id=cell.id, notebook=submitted))
                for cell in notebook.solution_cells:
                    if cell.id not in commented:
                        self.gradebook.db.add(Comment(cell_id=cell.id, notebook=submitted))
            self.gradebook.db.commit()

    return KeepGradesSaveCells


def sync_assignment(
    path: Path, assignment: str, release: NotebookNode, duedate: datetime | None = None
) -> bool:
    """Register or update the assignment in the gradebook at ``path``; True if it changed.

    Changed points, sources, checksums or the due date are updated in place; added cells
    are added under the existing submissions (:class:`KeepGradesSaveCells`): no grade is
    ever dropped.
    """
    nb = gradebook_notebook(release, assignment)
    with open_gradebook(path) as gb:
        if in_sync(gb, assignment, nb, duedate):
            return False
        gb.update_or_create_assignment(assignment, duedate=duedate)
    resources = {
        "nbgrader": {"notebook": assignment, "assignment": assignment, "db_url": db_url(path)}
    }
    with venv_on_path(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _save_cells_class()().preprocess(nb, resources)
    return True


def _cells_by_id(nb: NotebookNode | None) -> dict[str, NotebookNode]:
    cells: dict = {}
    for cell in nb.cells if nb is not None else []:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid is not None and gid not in cells:
            cells[gid] = cell
    return cells


def _save_auto_grades_class():
    from nbgrader import utils
    from nbgrader.preprocessors import SaveAutoGrades

    from dnnkernels.tasks import TASKS

    class SaveHiddenGrades(SaveAutoGrades):
        """nbgrader's ``SaveAutoGrades`` with the hidden checks' points for task cells.

        ``resources["dnnk"]`` holds ``task_points`` (task id -> points of its hidden
        checks), ``bonus`` (grade id -> bonus points of the release's extra-credit cells)
        and ``previous`` (grade id -> the cell as it was last graded, or absent).
        """

        def _add_score(self, cell, resources) -> None:
            extra = resources["dnnk"]
            gid = cell.metadata["nbgrader"]["grade_id"]
            grade = self.gradebook.find_grade(
                gid, self.notebook_id, self.assignment_id, self.student_id
            )
            task_points = extra["task_points"]
            if gid in TASKS:  # a task's graded cell: only its hidden checks count, never the
                # notebook's own verdict on the visible checks
                earned = float(task_points.get(gid, 0.0))
                if gid in extra["bonus"]:  # an extra-credit task: nbgrader's extra credit
                    grade.auto_score = 0.0
                    grade.extra_credit = min(earned, extra["bonus"][gid])
                else:
                    grade.auto_score = min(earned, float(grade.max_score))
                grade.needs_manual_grade = grade.manual_score is not None
            else:
                grade.auto_score, _ = utils.determine_grade(cell, self.log)
                before = extra["previous"].get(gid)
                unchanged = before is not None and before.source == cell.source
                if grade.manual_score is not None and unchanged:
                    grade.needs_manual_grade = False  # graded by hand, the answer is the same
                else:
                    grade.needs_manual_grade = (
                        grade.manual_score is not None or grade.auto_score is None
                    )
            self.gradebook.db.commit()

    return SaveHiddenGrades


def record_submission(
    path: Path,
    student: str,
    assignment: str,
    notebook: NotebookNode,
    task_points: dict[str, float],
    timestamp: datetime | None,
    release: NotebookNode,
    previous: NotebookNode | None = None,
) -> None:
    """Write one submission's scores; see the module docstring.

    Args:
        path: the gradebook file.
        notebook: the autograded notebook (executed by nbgrader, canonical cells).
        task_points: task id -> points earned in the hidden checks.
        timestamp: submission time (``timestamp.txt``), or None.
        release: the release notebook (bonus points of the extra-credit cells).
        previous: the notebook of this submission's previous grading, if any.
    """
    from nbgrader.preprocessors import AssignLatePenalties

    from autograder.course import load

    with open_gradebook(path) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy chatter inside nbgrader's API
        gb.update_or_create_student(student)
        if timestamp is not None:
            gb.update_or_create_submission(assignment, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(assignment, student)
    # the gradebook's view of the notebook: only the cells it knows, bonus cells worth 0
    nb = gradebook_notebook(notebook, assignment)
    resources = {
        "nbgrader": {
            "notebook": assignment,
            "assignment": assignment,
            "student": student,
            "db_url": db_url(path),
        },
        "dnnk": {
            "task_points": task_points,
            "bonus": bonus_points(release, assignment),
            "previous": _cells_by_id(previous),
        },
    }
    config = load().config
    with venv_on_path(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _save_auto_grades_class()(config=config).preprocess(nb, resources)
        AssignLatePenalties(config=config).preprocess(nb, resources)


def scores(gb, assignment: str, student: str) -> dict[str, dict]:
    """grade_id -> {auto, manual, extra, score, max, needs_manual} of one submission."""
    submission = gb.find_submission_notebook(assignment, assignment, student)
    out = {}
    for grade in submission.grades:
        out[grade.name] = {
            "auto": grade.auto_score,
            "manual": grade.manual_score,
            "extra": grade.extra_credit or 0.0,
            "score": grade.score,
            "max": grade.max_score,
            "needs_manual": bool(grade.needs_manual_grade),
        }
    return out
