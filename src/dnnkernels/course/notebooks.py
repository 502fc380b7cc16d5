"""Jupytext percent source notebooks -> nbgrader notebooks.

A source notebook ``source/<assignment>/<assignment>.py`` marks the role of a cell with one
jupytext cell tag (``# %% tags=["..."]`` or ``# %% [markdown] tags=["..."]``):

==========================  =============================================================
tag                         becomes
==========================  =============================================================
``setup``                   read-only code cell (nbgrader ``locked``), ``grade_id``
                            ``setup_<n>`` (n = 1, 2, ... in notebook order)
``answer:<task>``           nbgrader solution cell ``<task>_answer``; its source is
                            generated from ``src/`` (the reference definition with its
                            ``### BEGIN/END SOLUTION`` region and the import lines of the
                            names it uses); the ``.py`` holds only a comment
``check:<task>``            graded test cell (visible asserts), locked, ``grade_id`` = the
                            task ID, points from :mod:`dnnkernels.tasks`
``manual:<id>:<points>``    manually graded answer (code or markdown): nbgrader solution
                            and grade cell ``<id>``; the solution sits between the markers
                            or, without markers, is the whole cell
anything else               a plain cell
==========================  =============================================================

Every task of the assignment needs exactly one answer cell and one check cell after it.
Generated notebooks start with a markdown cell that says they are generated.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

from dnnkernels.course.extract import Exercise, answer_source
from dnnkernels.tasks import TASKS, tasks_of

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NBFORMAT_MINOR = 5
#: cell metadata kept in generated notebooks (everything else is volatile)
KEPT_CELL_METADATA = ("deletable", "editable", "nbgrader", "tags")
NOTICE_ID = "generated-notice"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STUB_RAISE = "raise NotImplementedError()"


class NotebookError(ValueError):
    """A source notebook breaks the tag conventions."""


def notice_text(assignment: str, command: str = "make release", extra: str = "") -> str:
    """The first cell of a generated notebook."""
    text = (
        f"Generated automatically from source/{assignment}/{assignment}.py by `{command}`; "
        "do not edit."
    )
    return text + (f"\n\n{extra}" if extra else "")


STUDENT_NOTE = (
    "*Students:* write your code and answers only where a cell says `YOUR CODE HERE` or "
    "`YOUR ANSWER HERE`, run every cell in order (each exercise has a check cell right after "
    "it), save the notebook, and keep the other cells as they are: they are checked."
)


def read_source(path: Path) -> NotebookNode:
    """Read a jupytext percent file."""
    return jupytext.read(Path(path), fmt="py:percent")


def _role(cell: NotebookNode, where: str) -> tuple[str, list[str]] | None:
    roles = []
    for tag in cell.metadata.get("tags", []):
        if tag == "setup":
            roles.append(("setup", []))
        elif tag.split(":")[0] in ("answer", "check", "manual"):
            parts = tag.split(":")
            roles.append((parts[0], parts[1:]))
    if len(roles) > 1:
        raise NotebookError(f"{where}: more than one role tag: {cell.metadata['tags']}")
    return roles[0] if roles else None


def _meta(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return meta


def _has_markers(source: str) -> bool:
    return "BEGIN SOLUTION" in source or "END SOLUTION" in source


def build_notebook(
    assignment: str,
    source_path: Path,
    exercises: dict[str, Exercise],
    notice: str,
) -> NotebookNode:
    """The instructor version of an assignment: nbgrader metadata and the solutions injected.

    Args:
        assignment: the assignment name.
        source_path: its jupytext percent file.
        exercises: the reference of each of its tasks, by task ID
            (:func:`dnnkernels.course.extract.find_exercise`).
        notice: the text of the first (markdown) cell.

    Raises:
        NotebookError: a tag names an unknown task or one of another assignment, a task has
            no answer or check cell (or several, or the check comes first), a grade ID repeats.
    """
    source = read_source(source_path)
    rel = f"source/{assignment}/{assignment}.py"
    cells = [nbformat.v4.new_markdown_cell(notice, id=NOTICE_ID)]
    seen: dict[str, int] = {}
    answers: dict[str, int] = {}
    checks: dict[str, int] = {}
    setups = 0
    for index, cell in enumerate(source.cells):
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        where = f"{rel}, cell {index + 1} ({first[:40]!r})"
        role = _role(cell, where)
        new = copy.deepcopy(cell)
        tags = list(cell.metadata.get("tags", []))
        new.metadata = {"tags": tags} if tags else {}
        kind, args = role if role else ("plain", [])
        if kind != "manual" and _has_markers(cell.source):
            raise NotebookError(
                f"{where}: solution markers are only allowed in manual:<id>:<points> cells "
                "(exercise solutions live in src/ and are injected into answer cells)"
            )
        if kind in ("setup", "answer", "check") and cell.cell_type != "code":
            raise NotebookError(f"{where}: a {kind} cell must be a code cell")
        if kind in ("answer", "check"):
            if len(args) != 1 or args[0] not in TASKS:
                raise NotebookError(
                    f"{where}: tag {kind}:{':'.join(args)} names no task; expected one of "
                    f"{', '.join(t.id for t in tasks_of(assignment))}"
                )
            task = TASKS[args[0]]
            if task.assignment != assignment:
                raise NotebookError(
                    f"{where}: task {task.id} belongs to assignment {task.assignment}, "
                    f"not {assignment}"
                )
            table = answers if kind == "answer" else checks
            if task.id in table:
                raise NotebookError(f"{where}: a second {kind} cell for task {task.id}")
            table[task.id] = len(cells)
        if kind == "setup":
            setups += 1
            new.metadata["nbgrader"] = _meta(f"setup_{setups}", locked=True)
        elif kind == "answer":
            task = TASKS[args[0]]
            new.source = answer_source(exercises[task.id])
            new.metadata["nbgrader"] = _meta(task.answer_cell_id, solution=True)
        elif kind == "check":
            task = TASKS[args[0]]
            new.metadata["nbgrader"] = _meta(task.id, grade=True, locked=True, points=task.points)
        elif kind == "manual":
            if len(args) != 2 or not args[1].replace(".", "", 1).isdigit():
                raise NotebookError(
                    f"{where}: expected the tag manual:<id>:<points>, got manual:{':'.join(args)}"
                )
            points = float(args[1])
            if points <= 0:
                raise NotebookError(f"{where}: points must be positive, got {args[1]}")
            new.metadata["nbgrader"] = _meta(
                args[0],
                solution=True,
                grade=True,
                points=int(points) if points.is_integer() else points,
            )
        grade_id = new.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None:
            if not _ID_PATTERN.match(grade_id):
                raise NotebookError(
                    f"{where}: grade_id {grade_id!r} must be 1-64 letters, digits, _ or -"
                )
            if grade_id in seen or grade_id == NOTICE_ID:
                raise NotebookError(f"{where}: grade_id {grade_id!r} is used twice")
            seen[grade_id] = len(cells)
        if new.cell_type == "code":
            new.outputs = []
            new.execution_count = None
        cells.append(new)
    for task in tasks_of(assignment):
        if task.id not in answers or task.id not in checks:
            missing = [k for k, t in (("answer", answers), ("check", checks)) if task.id not in t]
            raise NotebookError(
                f"{rel}: task {task.id} has no {' and no '.join(missing)} cell "
                f"(tag {missing[0]}:{task.id})"
            )
        if checks[task.id] < answers[task.id]:
            raise NotebookError(f"{rel}: the check cell of {task.id} comes before its answer cell")
    nb = nbformat.v4.new_notebook(cells=cells, metadata={})
    return normalise(nb)


def normalise(nb: NotebookNode, keep_outputs: bool = False) -> NotebookNode:
    """Strip volatile metadata so that a notebook's bytes depend on its content only.

    nbformat 4.5; notebook metadata is the kernelspec and the language; cell metadata keeps
    only :data:`KEPT_CELL_METADATA`; cell IDs are the nbgrader ``grade_id`` or ``cell-<i>``;
    outputs and execution counts are cleared unless ``keep_outputs``.
    """
    nb = copy.deepcopy(nb)
    nb.nbformat, nb.nbformat_minor = 4, NBFORMAT_MINOR
    nb.metadata = NotebookNode(
        {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    )
    for index, cell in enumerate(nb.cells):
        meta = {k: cell.metadata[k] for k in KEPT_CELL_METADATA if k in cell.metadata}
        if not meta.get("tags", True):
            del meta["tags"]
        cell.metadata = NotebookNode(meta)
        grade_id = meta.get("nbgrader", {}).get("grade_id")
        if cell.get("id") != NOTICE_ID:
            cell.id = grade_id or f"cell-{index}"
        if cell.cell_type == "code":
            if not keep_outputs:
                cell.outputs = []
                cell.execution_count = None
        for key in list(cell.keys()):
            if key not in ("cell_type", "id", "metadata", "source", "outputs", "execution_count"):
                if key != "attachments" or not cell[key]:
                    del cell[key]
    return nb


def dumps(nb: NotebookNode) -> str:
    """The JSON text of a notebook: sorted keys, one-space indent, final newline."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def write(nb: NotebookNode, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(nb), encoding="utf-8")
    return path


def read(path: Path) -> NotebookNode:
    return nbformat.read(Path(path), as_version=4)


def role_of(cell: NotebookNode) -> tuple[str, str]:
    """``(role, argument)`` of a generated notebook cell from its tags (``("plain", "")``)."""
    role = _role(cell, "cell")
    if role is None:
        return "plain", ""
    return role[0], ":".join(role[1])


def _python_string(text: str) -> str:
    if '"' not in text and "\\" not in text:
        return f'"{text}"'
    return repr(text)


def postprocess_release(nb: NotebookNode) -> list[int]:
    """Turn nbgrader's generic stubs into the kit's stubs, in place.

    In an answer cell, ``raise NotImplementedError()`` becomes
    ``raise NotImplementedError("<the task's message>")``, so the student sees which task is
    missing; in a manually graded code cell the ``raise`` goes (the cell then runs and does
    nothing until the student writes it). The nbgrader checksums of changed cells are
    recomputed.

    Returns:
        The indices of the cells that changed (their gradebook source must follow).
    """
    from nbgrader.utils import compute_checksum

    changed = []
    for index, cell in enumerate(nb.cells):
        role, arg = role_of(cell)
        if cell.cell_type != "code" or role not in ("answer", "manual"):
            continue
        lines = cell.source.split("\n")
        stubs = [i for i, line in enumerate(lines) if line.strip() == _STUB_RAISE]
        if role == "answer":
            if not stubs:
                raise NotebookError(
                    f"cell {index} ({arg}): nbgrader left no `{_STUB_RAISE}` stub to replace"
                )
            message = _python_string(TASKS[arg].not_implemented_message())
            for i in stubs:
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                lines[i] = f"{indent}raise NotImplementedError({message})"
        else:
            lines = [line for i, line in enumerate(lines) if i not in stubs]
        source = "\n".join(lines)
        if source != cell.source:
            cell.source = source
            cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
            changed.append(index)
    return changed
