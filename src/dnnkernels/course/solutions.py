"""``make solutions``: the executed solution version of each assignment, for instructors.

Each instructor notebook (solutions injected from ``src/``) runs top to bottom with nbclient
in a ``python3`` kernel of this interpreter (the project's ``.venv``), with the notebook's
folder as working directory and ``src/`` first on ``PYTHONPATH`` so that the reference
``dnnkernels`` is imported. Results, with all outputs and plots, go to
``build/solutions/<a>/<a>.ipynb`` (never released). Any error stops that notebook and the
command fails, naming the cell.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode
from tqdm.auto import tqdm

from dnnkernels.course import notebooks
from dnnkernels.course.extract import all_exercises
from dnnkernels.course.paths import Layout
from dnnkernels.course.release import instructor_notebooks
from dnnkernels.tasks import ASSIGNMENTS

#: per-cell time limit (s); the whole notebook has a budget of 2 minutes (tests)
CELL_TIMEOUT = 600
SOLUTION_NOTE = "Executed solution version, for instructors only: never give it to students."


def kernel_env(pythonpath: Iterable[Path], extra: Mapping[str, str] | None = None) -> dict:
    """The environment of a notebook kernel: ``pythonpath`` first, inline plots."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel's inline backend keeps the figures as outputs
    parts = [str(Path(p).resolve()) for p in pythonpath]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def execute(
    nb: NotebookNode,
    cwd: Path,
    pythonpath: Iterable[Path],
    extra_env: Mapping[str, str] | None = None,
    timeout: int = CELL_TIMEOUT,
) -> NotebookNode:
    """Run a notebook in place in a fresh ``python3`` kernel; raise on the first error.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (``ename``, ``evalue``).
    """
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": str(Path(cwd).resolve())}},
    )
    client.execute(env=kernel_env(pythonpath, extra_env))
    return nb


def failed_cell(nb: NotebookNode) -> tuple[int, NotebookNode] | None:
    """The first cell with an error output, with its index (None if none)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.output_type == "error" for o in cell.outputs):
            return index, cell
    return None


@dataclass
class SolutionRun:
    assignment: str
    path: Path
    seconds: float
    error: str | None = None


def run_solutions(
    layout: Layout,
    assignments: Iterable[str] = ASSIGNMENTS,
    out: Path | None = None,
) -> list[SolutionRun]:
    """Execute the instructor notebooks into ``out/<a>/<a>.ipynb`` (default build/solutions).

    Every notebook runs, even after a failure; the caller decides how loudly to fail
    (:func:`main` exits with an error).
    """
    out = Path(out or layout.solutions)
    assignments = list(assignments)
    exercises = all_exercises(layout.src)
    written = instructor_notebooks(
        layout, exercises, out, assignments, command="make solutions", extra=SOLUTION_NOTE
    )
    runs = []
    bar = tqdm(assignments, desc="solution notebooks", unit="notebook")
    for assignment in bar:
        bar.set_postfix_str(assignment)
        path = written[assignment]
        nb = notebooks.read(path)
        start = time.perf_counter()
        error = None
        try:
            execute(nb, path.parent, [layout.repo / "src"])
        except CellExecutionError as exc:
            found = failed_cell(nb)
            where = f"cell {found[0]}" if found else "a cell"
            if found and "nbgrader" in found[1].metadata:
                where += f" ({found[1].metadata.nbgrader.get('grade_id')})"
            error = f"{assignment}: {where} raised {exc.ename}: {exc.evalue}"
        seconds = time.perf_counter() - start
        nb = notebooks.normalise(nb, keep_outputs=True)
        if error is None:
            notebooks.write(nb, path)
        else:
            notebooks.write(nb, path.with_suffix(".failed.ipynb"))
            path.unlink()
        runs.append(SolutionRun(assignment, path, seconds, error))
    timings = {r.assignment: round(r.seconds, 1) for r in runs}
    (out / "timings.json").write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
    return runs


def clean(out: Path) -> None:
    if Path(out).exists():
        shutil.rmtree(out)
