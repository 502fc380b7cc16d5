"""Submitted notebooks: canonical form, and the code the hidden checks run.

Both functions work on notebooks parsed in the trusted process with ``nbformat``; no
student code runs here.

:func:`canonicalise` repairs a submission against the pristine release notebook before
nbgrader sees it (nbgrader itself only restores the *source* of locked cells and drops
unknown grade ids):

- a grade, locked or answer cell that the student deleted is put back (the released
  version, after the previous graded cell that is still there);
- a duplicate of a graded cell (same ``grade_id``) is dropped; the first one counts;
- a graded cell whose type or nbgrader role (grade / solution / locked) differs from the
  release ("retyped") is replaced by the released cell;
- locked cells get the released source, answer and manual cells keep the student's source
  under the released nbgrader metadata (points included);
- a cell with an unknown ``grade_id`` loses its nbgrader metadata; cells the student added
  stay, ungraded.

Why not nbgrader's own ``OverwriteCells(add_missing_cells=True)`` and ``DeduplicateIds``
(nbgrader 0.9.6, read from its source): they look the source cells up in the gradebook,
which a grading worker never opens (the client is its only reader and writer); the missing
-cell repair puts back deleted *grade* cells only (not a deleted answer or locked setup
cell), and it indexes the previous source cell among the submitted grade/solution cells,
which fails when that previous cell is a locked or markdown cell. This module works from
the release notebook alone and repairs every protected cell (tests/test_notebooks.py).

:func:`payload` lists what the runner executes: the setup cells (locked code cells of the
release, never the student's version) and the student's answer cells (``*_answer``), in
the release's order.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import nbformat
from nbformat import NotebookNode

ROLE_KEYS = ("grade", "solution", "locked", "task")


def grade_id(cell: NotebookNode) -> str | None:
    """The nbgrader ``grade_id`` of a cell, or None."""
    meta = cell.get("metadata", {}).get("nbgrader")
    if isinstance(meta, dict):
        gid = meta.get("grade_id")
        return gid if isinstance(gid, str) else None
    return None


def _role(cell: NotebookNode) -> tuple:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return tuple(bool(meta.get(k, False)) for k in ROLE_KEYS)


def is_protected(cell: NotebookNode) -> bool:
    """Cells the student may not lose: nbgrader grade, solution, locked and task cells."""
    return grade_id(cell) is not None and any(_role(cell))


def is_answer(cell: NotebookNode) -> bool:
    """An autograded answer cell (``<task>_answer``)."""
    gid = grade_id(cell)
    return cell.cell_type == "code" and gid is not None and gid.endswith("_answer")


def is_setup(cell: NotebookNode) -> bool:
    """A read-only code cell the notebook needs before the answers (``setup_<n>``)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return (
        cell.cell_type == "code"
        and grade_id(cell) is not None
        and bool(meta.get("locked"))
        and not meta.get("grade")
        and not meta.get("solution")
    )


def read(text: str | bytes) -> NotebookNode:
    """Parse notebook JSON (v4); raises ``nbformat`` / JSON errors on bad input."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return nbformat.reads(text, as_version=4)


def read_release(folder, assignment: str) -> NotebookNode:
    """The released notebook of ``assignment``: ``<folder>/<assignment>/<assignment>.ipynb``."""
    return read((Path(folder) / assignment / f"{assignment}.ipynb").read_bytes())


def _fresh_copy(cell: NotebookNode) -> NotebookNode:
    cell = copy.deepcopy(cell)
    cell["id"] = uuid.uuid4().hex[:12]
    if cell.cell_type == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    return cell


def canonicalise(submitted: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The repaired notebook and a list of notes (one per repair), see the module docstring."""
    notes: list[str] = []
    released = {grade_id(c): c for c in release.cells if is_protected(c)}
    order = [grade_id(c) for c in release.cells if is_protected(c)]

    cells: list[NotebookNode] = []
    seen: set[str] = set()
    for cell in submitted.cells:
        cell = copy.deepcopy(cell)
        gid = grade_id(cell)
        if gid is None:
            if "nbgrader" in cell.get("metadata", {}):
                del cell.metadata["nbgrader"]
            cells.append(cell)
            continue
        if gid not in released:
            del cell.metadata["nbgrader"]
            cells.append(cell)
            continue
        if gid in seen:
            notes.append(f"cell {gid} appeared more than once: only the first one counts")
            continue
        seen.add(gid)
        ref = released[gid]
        if cell.cell_type != ref.cell_type or _role(cell) != _role(ref):
            notes.append(f"cell {gid} had its type or role changed: the released cell was used")
            cells.append(_fresh_copy(ref))
            continue
        fixed = _fresh_copy(ref)
        fixed["id"] = cell.get("id", fixed["id"])
        if not _role(ref)[2]:  # not locked: the student's text counts
            fixed["source"] = cell.source
            if cell.cell_type == "code":
                fixed["outputs"] = cell.get("outputs", [])
                fixed["execution_count"] = cell.get("execution_count")
        fixed.metadata = copy.deepcopy(cell.metadata)
        fixed.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
        for key in ("editable", "deletable"):
            if key in ref.metadata:
                fixed.metadata[key] = ref.metadata[key]
        cells.append(fixed)

    # put back deleted protected cells, after the previous protected cell still present
    for index, gid in enumerate(order):
        if gid in seen:
            continue
        notes.append(f"cell {gid} was missing: the released cell was put back")
        position = 0
        for previous in reversed(order[:index]):
            hits = [i for i, c in enumerate(cells) if grade_id(c) == previous]
            if hits:
                position = hits[0] + 1
                break
        cells.insert(position, _fresh_copy(released[gid]))
        seen.add(gid)

    # unique cell ids (nbformat >= 4.5 requires them)
    ids: set[str] = set()
    for cell in cells:
        if not cell.get("id") or cell["id"] in ids:
            cell["id"] = uuid.uuid4().hex[:12]
        ids.add(cell["id"])

    nb = nbformat.v4.new_notebook()
    nb.metadata = copy.deepcopy(submitted.get("metadata", {}))
    for key in ("kernelspec", "language_info"):
        if key in release.metadata:
            nb.metadata[key] = copy.deepcopy(release.metadata[key])
    nb.nbformat, nb.nbformat_minor = 4, max(5, release.get("nbformat_minor", 5))
    nb.cells = cells
    return nb, notes


def payload_cells(canonical: NotebookNode, release: NotebookNode) -> tuple[list[dict], dict]:
    """Cells for the runner (release order) and notes about unusable answer cells.

    Setup cells come from ``release``; answer cells from ``canonical`` (first occurrence),
    falling back to the released stub when the student's cell is missing.
    """
    student = {}
    for cell in canonical.cells:
        gid = grade_id(cell)
        if gid and is_answer(cell) and gid not in student:
            student[gid] = cell
    cells, notes = [], {}
    for cell in release.cells:
        gid = grade_id(cell)
        if is_setup(cell):
            cells.append({"grade_id": gid, "kind": "setup", "source": cell.source})
        elif is_answer(cell):
            if gid in student:
                source = student[gid].source
            else:
                source = cell.source
                notes[gid] = "missing from the submission (the released stub was used)"
            cells.append({"grade_id": gid, "kind": "answer", "source": source})
    return cells, notes
