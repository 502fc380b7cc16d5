"""Grades out of the gradebook: the grade table and the files each LMS imports.

Usage (from the repository root; reads the gradebook only, never regrades)::

    python -m autograder.export --format csv         # <grading>/grades.csv (the grade table)
    python -m autograder.export --format canvas      # <grading>/canvas_grades.csv
    python -m autograder.export --format gradescope  # <grading>/gradescope_grades.csv
    python -m autograder.export --format canvas --out grades.csv --grading-dir DIR

Every format covers the whole class (the roster of ``Course.roster`` and every student of
the gradebook) and every assignment, whatever was graded last. A submission that is not in
the gradebook is *missing* (``missing`` in the grade table, an empty cell in the LMS files,
which both LMS read as "no grade", never as 0). An assignment's score is nbgrader's: the
automatic points of the hidden checks, the points graded by hand in formgrader, extra credit,
minus the late penalty (``LatePenalty``); its maximum is its regular points.

- **csv** (the grade table, also written by every grading run): ``student``, then per
  assignment its task IDs, ``<a>_manual`` (points graded by hand, so far),
  ``<a>_manual_to_grade`` (points of the hand-graded cells not graded yet),
  ``<a>_late_penalty`` and ``<a>_total``; then ``total``.
- **canvas**: Canvas's gradebook import layout: ``Student`` (``Last, First``), ``ID`` (the
  Canvas user id, ``lms_user_id``), ``SIS User ID`` (the student id), ``SIS Login ID``,
  ``Section``, then one column per assignment; the second row is ``Points Possible``.
- **gradescope**: Gradescope's score upload layout: ``Name``, ``SID``, ``Email``, then one
  column per assignment.
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder import gradebook
from autograder.course import Roster, Student, roster
from autograder.paths import grading_dir, release_dir
from dnnkernels.tasks import ASSIGNMENTS, TASKS, tasks_of

MISSING = "missing"


@dataclass
class Cell:
    """One student's result on one assignment (``missing`` when nothing was submitted)."""

    missing: bool = True
    tasks: dict = field(default_factory=dict)  #: task id -> points (extra credit included)
    manual: float = 0.0  #: points of the hand-graded cells so far (extra credit included)
    to_grade: float = 0.0  #: points of the hand-graded cells still to grade
    to_grade_cells: int = 0
    penalty: float = 0.0
    total: float = 0.0  #: nbgrader's score minus the late penalty
    maximum: float = 0.0  #: regular points (extra credit is on top)


def course_assignments() -> list[str]:
    """The assignments of the course that have a release notebook."""
    return [a for a in ASSIGNMENTS if (release_dir() / a / f"{a}.ipynb").is_file()]


def collect(grading: Path, assignments=None, students: Roster | None = None):
    """(students, {student: {assignment: Cell}}, {assignment: maximum}) from the gradebook."""
    from nbgrader.api import MissingEntry

    assignments = list(assignments or course_assignments())
    students = roster() if students is None else students
    table: dict[str, dict[str, Cell]] = {}
    maxima: dict[str, float] = {}
    people: dict[str, Student] = dict(students)
    with warnings.catch_warnings(), gradebook.open_gradebook(grading / "gradebook.db") as gb:
        warnings.simplefilter("ignore")
        for s in gb.students:
            if s.id not in people:
                people[s.id] = Student(
                    s.id, s.first_name or "", s.last_name or "", s.email or "",
                    s.lms_user_id or "",
                )  # fmt: skip
        for a in assignments:
            try:
                maxima[a] = float(gb.find_notebook(a, a).max_score)
            except MissingEntry:
                maxima[a] = float(sum(t.points for t in tasks_of(a) if not t.extra_credit))
        for sid in sorted(people):
            row = table.setdefault(sid, {})
            for a in assignments:
                cell = row[a] = Cell(maximum=maxima[a])
                try:
                    submitted = gb.find_submission_notebook(a, a, sid)
                except MissingEntry:
                    continue
                cell.missing = False
                for grade in submitted.grades:
                    points = float(grade.score or 0.0)
                    if grade.name in TASKS:
                        cell.tasks[grade.name] = points
                        continue
                    if grade.needs_manual_grade:
                        cell.to_grade_cells += 1
                        cell.to_grade += float(grade.max_score or 0.0)
                    else:
                        cell.manual += points
                cell.penalty = float(submitted.late_submission_penalty or 0.0)
                cell.total = float(submitted.score or 0.0) - cell.penalty
    return people, table, maxima


def _points(x: float) -> str:
    return f"{x:g}"


def grade_table(grading: Path, assignments=None, students: Roster | None = None) -> list[dict]:
    """The grade table's rows (see the module docstring); missing cells say ``missing``.

    ``students``: the class (default: the course's roster), besides the gradebook's students.
    """
    assignments = list(assignments or course_assignments())
    _, table, _ = collect(grading, assignments, students)
    rows = []
    for sid, cells in table.items():
        row: dict = {"student": sid}
        total = 0.0
        for a in assignments:
            cell = cells[a]
            for task in tasks_of(a):
                row[task.id] = MISSING if cell.missing else cell.tasks.get(task.id, 0.0)
            for key, value in (
                ("manual", cell.manual),
                ("manual_to_grade", cell.to_grade),
                ("late_penalty", cell.penalty),
                ("total", cell.total),
            ):
                row[f"{a}_{key}"] = MISSING if cell.missing else value
            row[f"{a}_cells_to_grade"] = 0 if cell.missing else cell.to_grade_cells
            total += 0.0 if cell.missing else cell.total
        row["total"] = total
        rows.append(row)
    return rows


def table_columns(assignments) -> list[str]:
    columns = ["student"]
    for a in assignments:
        columns += [t.id for t in tasks_of(a)]
        columns += [f"{a}_manual", f"{a}_manual_to_grade", f"{a}_late_penalty", f"{a}_total"]
    return columns + ["total"]


def write_table(rows: list[dict], assignments, path: Path) -> None:
    columns = table_columns(assignments)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})


def format_table(rows: list[dict], assignments) -> str:
    """The grade table as text: one column per task (max points in the header)."""
    header = ["student"]
    for a in assignments:
        header += [f"{t.id} /{t.points}{'+' if t.extra_credit else ''}" for t in tasks_of(a)]
        header += [f"{a} manual", f"{a} total"]
    body = []
    for r in rows:
        line = [r["student"]]
        for a in assignments:
            if r.get(f"{a}_total") == MISSING:
                line += [MISSING] * (len(tasks_of(a)) + 2)
                continue
            line += [_points(r.get(t.id, 0.0)) for t in tasks_of(a)]
            manual = _points(r[f"{a}_manual"])
            if r[f"{a}_manual_to_grade"]:
                manual += f" (+{_points(r[f'{a}_manual_to_grade'])} pts to grade)"
            total = _points(r[f"{a}_total"])
            if r[f"{a}_late_penalty"]:
                total += f" (late -{_points(r[f'{a}_late_penalty'])})"
            line += [manual, total]
        body.append(line)
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    return "\n".join(
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)) for line in [header] + body
    )


# ============================================================================ LMS layouts

CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
GRADESCOPE_FIXED = ["Name", "SID", "Email"]


def lms_rows(grading: Path, fmt: str, assignments=None) -> list[list[str]]:
    """The rows (header first) of the ``canvas`` or ``gradescope`` file."""
    assignments = list(assignments or course_assignments())
    people, table, maxima = collect(grading, assignments)
    scores = {
        sid: ["" if cells[a].missing else _points(round(cells[a].total, 4)) for a in assignments]
        for sid, cells in table.items()
    }
    if fmt == "canvas":
        rows = [CANVAS_FIXED + assignments]
        rows.append(["Points Possible", "", "", "", ""] + [_points(maxima[a]) for a in assignments])
        for sid in sorted(people, key=lambda s: (people[s].sortable_name.lower(), s)):
            p = people[sid]
            login = p.sis_login_id or p.email
            rows.append(
                [p.sortable_name or sid, p.lms_user_id, sid, login, p.section] + scores[sid]
            )
        return rows
    if fmt == "gradescope":
        rows = [GRADESCOPE_FIXED + assignments]
        for sid in sorted(people, key=lambda s: (people[s].name.lower(), s)):
            p = people[sid]
            rows.append([p.name or sid, sid, p.email] + scores[sid])
        return rows
    raise ValueError(f"fmt: got {fmt!r}, expected 'canvas' or 'gradescope'")


def export(grading: Path, fmt: str, out: Path | None = None) -> Path:
    """Write the ``fmt`` file (``csv``, ``canvas`` or ``gradescope``); returns its path."""
    grading = Path(grading)
    if not (grading / "gradebook.db").is_file():
        raise FileNotFoundError(f"--grading-dir: no gradebook.db in {grading} (grade first)")
    assignments = course_assignments()
    if fmt == "csv":
        out = out or grading / "grades.csv"
        write_table(grade_table(grading, assignments), assignments, out)
        return out
    names = {"canvas": "canvas_grades.csv", "gradescope": "gradescope_grades.csv"}
    if fmt not in names:
        raise ValueError(f"--format: got {fmt!r}, expected csv, canvas or gradescope")
    out = out or grading / names[fmt]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(lms_rows(grading, fmt, assignments))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.export", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--format", required=True, choices=["csv", "canvas", "gradescope"])
    parser.add_argument("--out", type=Path, help="output file (default: in the grading folder)")
    parser.add_argument(
        "--grading-dir", type=Path, help="grading folder (default $DNNK_GRADING_DIR)"
    )
    args = parser.parse_args(argv)
    grading = (args.grading_dir or grading_dir()).resolve()
    try:
        path = export(grading, args.format, args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 1
    print(f"{args.format}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
