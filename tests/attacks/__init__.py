"""A corpus of bad submissions to the precision assignment, one module per attack family.

Every module defines:

- ``STUDENT``: the student id the submission is graded under;
- ``DESERVED``: task id -> the points the submission really deserves (its honest parts
  keep their points; whatever the attack touches deserves 0);
- ``build(ctx)``: writes the submission into ``ctx.folder`` (usually by returning a
  notebook: the solution notebook with some cells changed; ``None`` when the module wrote
  the folder itself).

``ctx`` has ``solution`` and ``release`` (notebooks), ``repo`` and ``grading`` (paths: the
attacks aim at the real ones), ``folder`` (the submission folder) and ``secret`` (a value in
the grader's environment that no student may see). tests/test_autograder.py
grades them all in one run, next to the demo students, and checks that no attack earns an
undeserved point and that the others' grades are unaffected.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil

from autograder.notebooks import grade_id
from dnnkernels.tasks import tasks_of

ASSIGNMENT = "precision"
#: every task's points (tasks.py), which an honest submission earns
FULL = {task.id: float(task.points) for task in tasks_of(ASSIGNMENT)}


def modules():
    """The attack modules of this package, by name."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return {name: importlib.import_module(f"{__name__}.{name}") for name in names}


def deserved(**changes: float) -> dict[str, float]:
    """Full points, except the tasks given."""
    return {**FULL, **changes}


#: precision's tasks that a cheat on every kernel loses (log_approx is extra credit)
PRECISION_KERNELS = (
    "precision_im2col",
    "precision_winograd",
    "precision_fft",
    "precision_matmul_svd",
    "precision_matmul_log",
)


def losing(*tasks: str) -> dict[str, float]:
    """Full points, except none for ``tasks``."""
    return deserved(**dict.fromkeys(tasks, 0))


def find(nb, gid: str):
    """The first cell with nbgrader grade_id ``gid``."""
    return next(c for c in nb.cells if grade_id(c) == gid)


def index(nb, gid: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if grade_id(c) == gid)


def append_to_answer(nb, task_id: str, code: str):
    """A copy of ``nb`` whose answer cell of ``task_id`` ends with ``code``."""
    nb = copy.deepcopy(nb)
    cell = find(nb, f"{task_id}_answer")
    cell.source = cell.source.rstrip() + "\n\n" + code.strip() + "\n"
    return nb


def add_cell(nb, source: str, cell_type: str = "code"):
    """A copy of ``nb`` with a cell of the student's own at the end (ungraded; it runs only
    in the notebook's kernel, not in the hidden checks)."""
    import nbformat

    nb = copy.deepcopy(nb)
    make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    nb.cells.append(make(source.strip()))
    return nb


IMPORTS = "import math\n\nimport torch\nimport torch.nn.functional as F\n\n"


def replace_answer(nb, task_id: str, code: str):
    """A copy of ``nb`` whose answer cell of ``task_id`` is ``code`` (after the usual imports).

    Attacks on a kernel replace its whole answer cell, so that no correct definition is
    left behind if the attack code stops early.
    """
    nb = copy.deepcopy(nb)
    find(nb, f"{task_id}_answer").source = IMPORTS + code.strip() + "\n"
    return nb
