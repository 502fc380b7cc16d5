"""Tests of the course tooling (``dnnkernels.course``) and the student build.

- the committed ``release/`` equals a fresh build from ``source/`` and ``src/`` (real nbgrader);
- nothing secret is in it (solution and hidden-test markers, reference solution lines,
  autograder files), and the scanner does find a planted one;
- every stub keeps the signature, type hints and docstring and raises the task's
  ``NotImplementedError``; it delegates to the student's function in ``__main__`` or in the
  saved notebook;
- every solution notebook executes without error within its 2-minute budget and its visible
  checks pass (slow);
- every student notebook runs up to its first task and stops there with that task's
  ``NotImplementedError``; with the earlier tasks answered it stops at the last one; with all
  answers it runs to the end on the student build (slow).
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from dnnkernels import _student
from dnnkernels.course import notebooks
from dnnkernels.course.extract import (
    ExerciseError,
    all_exercises,
    answer_source,
    find_exercise,
    reference_regions,
)
from dnnkernels.course.paths import Layout, find_repo
from dnnkernels.course.release import build, instructor_notebooks, scan, secret_set, tree_files
from dnnkernels.course.solutions import SOLUTION_NOTE, execute, failed_cell
from dnnkernels.course.student_package import cut_reference_only
from dnnkernels.tasks import ASSIGNMENTS, TASKS, Task, tasks_of

LAYOUT = Layout(find_repo(Path(__file__)))


def _task_marks(assignment: str) -> list:
    return [getattr(pytest.mark, t.id) for t in tasks_of(assignment)]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh build of the release (real nbgrader, temporary course root and gradebook)."""
    tmp = tmp_path_factory.mktemp("fresh-build")
    return build(LAYOUT, tmp / "course", tmp / "grading")


@pytest.fixture(scope="module")
def student_root(fresh, tmp_path_factory):
    """The fresh student release written to a temporary folder (what a student receives)."""
    root = tmp_path_factory.mktemp("student")
    for rel, data in fresh.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def run_student_build(code: str, student_root: Path, work: Path) -> dict:
    """Run ``code`` as ``__main__`` with the student build of dnnkernels; return its JSON."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(student_root),
        DNNK_STUDENT_WORK=str(work),
        PYTHONDONTWRITEBYTECODE="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"student-build script failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ fresh and secret


def test_release_is_fresh(fresh):
    """release/ is byte for byte what `make release` makes from source/ and src/ now."""
    committed = tree_files(LAYOUT.release)
    missing = sorted(set(fresh.files) - set(committed))
    stale = sorted(set(committed) - set(fresh.files))
    differ = sorted(r for r in set(fresh.files) & set(committed) if fresh.files[r] != committed[r])
    assert not (missing or stale or differ), (
        f"release/ is not fresh (run `make release`): missing {missing}, stale {stale}, "
        f"differ {differ}"
    )


def test_build_is_reproducible(fresh, tmp_path):
    """Two builds in different folders with different gradebooks give the same bytes."""
    again = build(LAYOUT, tmp_path / "elsewhere" / "course", tmp_path / "other-grading")
    assert again.files.keys() == fresh.files.keys()
    differ = [r for r in fresh.files if fresh.files[r] != again.files[r]]
    assert not differ, f"not reproducible: {differ}"


def test_release_layout(fresh):
    expected = {f"{a}/{a}.ipynb" for a in ASSIGNMENTS} | {"README.md", "pyproject.toml"}
    assert expected <= set(fresh.files)
    assert "dnnkernels/_student.py" in fresh.files
    assert "dnnkernels/tasks.py" in fresh.files
    assert not [r for r in fresh.files if r.startswith("dnnkernels/course")], "course/ shipped"
    for rel, data in fresh.files.items():
        if rel.endswith((".py", ".toml", ".md")):
            first = data.decode().splitlines()[0]
            assert "Generated automatically" in first and "do not edit" in first, (rel, first)
        if rel.endswith(".ipynb"):
            nb = nbformat.reads(data.decode(), as_version=4)
            assert nb.cells[0].cell_type == "markdown"
            first = nb.cells[0].source.splitlines()[0]
            assignment = rel.split("/")[0]
            assert first == (
                f"Generated automatically from source/{assignment}/{assignment}.py by "
                "`make release`; do not edit."
            )


def test_no_secrets_in_release(fresh):
    assert scan(LAYOUT, LAYOUT.release, fresh.exercises) == []


def test_every_exercise_has_secret_lines(fresh):
    """The scanner looks for something from every exercise (else it could not fail)."""
    secrets = secret_set(LAYOUT, fresh.exercises)
    for task_id, exercise in fresh.exercises.items():
        own = {" ".join(x.split()) for x in exercise.solution_lines()}
        assert own & secrets, f"{task_id}: no solution line is long and unique enough to scan for"


#: width of a notebook cell line (issue 14: the answer cells are read in a notebook)
NOTEBOOK_COLUMNS = 88


def test_answer_cells_fit_notebook_columns():
    """Every line of every generated answer cell (definition, docstring, imports) fits."""
    for task_id, exercise in all_exercises(LAYOUT.src).items():
        long = [
            f"{len(line)}: {line.strip()[:40]}"
            for line in answer_source(exercise).splitlines()
            if len(line) > NOTEBOOK_COLUMNS
        ]
        assert not long, f"{task_id}: lines over {NOTEBOOK_COLUMNS} columns: {long}"


def test_student_build_does_not_speak_of_markers_it_lacks(fresh):
    """The student build has no solution markers and no dnnkernels.course: its modules must
    not tell the student that the exercise bodies sit between markers (issue 15)."""
    claims = ("between the markers", "between solution markers", "dnnkernels.course")
    for rel, data in fresh.files.items():
        if rel.startswith("dnnkernels/") and rel.endswith(".py"):
            text = data.decode("utf-8").lower()
            found = [claim for claim in claims if claim in text]
            assert not found, f"release/{rel} says {found}, untrue in the student build"


def test_reference_only_bodies_are_cut_and_scanned(fresh, student_root, tmp_path):
    """accumulate_loop (a complete slow accumulate) reaches students without its body."""
    text = (LAYOUT.src / "accumulator.py").read_text(encoding="utf-8")
    (region,) = reference_regions(text, "accumulator.py")
    assert region.function == "accumulate_loop", region
    body = text.splitlines()[region.begin : region.end - 1]
    secrets = secret_set(LAYOUT, fresh.exercises)
    scanned = [x for x in body if " ".join(x.split()) in secrets]
    assert scanned, "no line of accumulate_loop's body is scanned for"
    released = (student_root / "dnnkernels" / "accumulator.py").read_text(encoding="utf-8")
    assert not any(line in released for line in scanned), "accumulate_loop body in release"
    result = run_student_build(
        """
        import json, torch
        from dnnkernels import accumulator
        try:
            accumulator.accumulate_loop(torch.ones(2, 3, dtype=torch.int64), 8)
        except NotImplementedError as exc:
            print(json.dumps(str(exc)))
        else:
            print(json.dumps("no error"))
        """,
        student_root,
        tmp_path,
    )
    assert result.startswith("accumulate_loop: reference only"), result


def test_cut_reference_only_keeps_signature_and_docstring():
    text = textwrap.dedent(
        '''
        class Engine:
            def naive(self, x):
                """Doc."""
                ### BEGIN REFERENCE ONLY
                total = sum(x)
                return total
                ### END REFERENCE ONLY
        '''
    )
    cut = cut_reference_only(text, "engine.py")
    assert '"""Doc."""' in cut and "sum(x)" not in cut
    namespace: dict = {}
    exec(cut, namespace)
    with pytest.raises(NotImplementedError, match="Engine.naive: reference only"):
        namespace["Engine"]().naive([1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def f():\n    ### BEGIN REFERENCE ONLY\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END REFERENCE ONLY\n", "without a BEGIN"),
        (
            "def f():\n    ### BEGIN REFERENCE ONLY\n  ### END REFERENCE ONLY\n    return 1\n",
            "without a BEGIN",
        ),
        ("### BEGIN REFERENCE ONLY\nx = 1\n### END REFERENCE ONLY\n", "inside a function"),
    ],
)
def test_reference_regions_reject_malformed_markers(text, message):
    with pytest.raises(ExerciseError, match=message):
        reference_regions(text, "module.py")


@pytest.mark.parametrize("where", ["package", "notebook", "marker", "autograder"])
def test_scan_finds_planted_secret(fresh, student_root, tmp_path, where):
    """Plant one secret in a copy of the release: the scan reports it."""
    root = tmp_path / "release"
    for rel, data in tree_files(student_root).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    exercise = fresh.exercises["precision_im2col"]
    secrets = secret_set(LAYOUT, fresh.exercises)
    line = next(x for x in exercise.solution_lines() if " ".join(x.split()) in secrets)
    if where == "package":
        path = root / "dnnkernels" / "conv2d.py"
        path.write_text(path.read_text() + "\n" + line.strip() + "\n")
    elif where == "notebook":
        path = root / "precision" / "precision.ipynb"
        nb = nbformat.read(path, as_version=4)
        nb.cells[-1].source += "\n" + line
        nbformat.write(nb, path)
    elif where == "marker":
        (root / "notes.py").write_text("x = 1\n### BEGIN HIDDEN TESTS\nassert x\n")
    else:
        hidden = tree_files(LAYOUT.autograder)
        if not hidden:
            pytest.skip("autograder/ has no files yet")
        rel, data = next(iter(hidden.items()))
        (root / "copied.bin").write_bytes(data)
    problems = scan(LAYOUT, root, fresh.exercises)
    assert problems, f"planted {where} secret not found"


def test_check_command_passes():
    """`python -m dnnkernels.course check` (what CI runs) exits 0 on the committed release."""
    done = subprocess.run(
        [sys.executable, "-m", "dnnkernels.course", "check"],
        cwd=LAYOUT.repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------- nbgrader metadata


def test_release_notebooks_nbgrader_metadata(fresh):
    from nbgrader.nbgraderformat import MetadataValidator

    for assignment in ASSIGNMENTS:
        nb = nbformat.reads(fresh.files[f"{assignment}/{assignment}.ipynb"].decode(), 4)
        MetadataValidator().validate_nb(nb)
        cells = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
        for task in tasks_of(assignment):
            check = cells[task.id]
            meta = check.metadata.nbgrader
            assert meta["grade"] and not meta["solution"] and meta["points"] == task.points
            assert check.metadata["editable"] is False and check.metadata["deletable"] is False
            answer = cells[task.answer_cell_id]
            assert answer.metadata.nbgrader["solution"] and not answer.metadata.nbgrader["grade"]
            raised = [
                node.exc.args[0].value
                for node in ast.walk(ast.parse(answer.source))
                if isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Call)
                and getattr(node.exc.func, "id", None) == "NotImplementedError"
                and node.exc.args
            ]
            assert raised and set(raised) == {task.not_implemented_message()}, answer.source
            assert "YOUR CODE HERE" in answer.source
        setups = [g for g in cells if g.startswith("setup_")]
        assert setups and all(cells[g].metadata["editable"] is False for g in setups)
        manual = [
            c
            for c in cells.values()
            if c.metadata.nbgrader["grade"] and c.metadata.nbgrader["solution"]
        ]
        assert {c.cell_type for c in manual} == {"code", "markdown"}, (
            "a manual plot and a text answer"
        )
        ids = [c.id for c in nb.cells]
        assert len(ids) == len(set(ids))
        assert nb.nbformat == 4 and nb.nbformat_minor == notebooks.NBFORMAT_MINOR


def test_gradebook_registers_assignments(fresh):
    """nbgrader's gradebook knows each assignment, its notebook, grade cells and points."""
    from nbgrader.api import Gradebook

    with Gradebook(fresh.db_url, "dnnkernels") as gb:
        assert {a.name for a in gb.assignments} == set(ASSIGNMENTS)
        for assignment in ASSIGNMENTS:
            nb = gb.find_notebook(assignment, assignment)
            grades = {c.name: c.max_score for c in nb.grade_cells}
            for task in tasks_of(assignment):
                assert grades[task.id] == task.points
                # the stored source is the post-processed stub (checksums agree with release/)
                cell = gb.find_source_cell(task.answer_cell_id, assignment, assignment)
                assert task.not_implemented_message() in cell.source


# ------------------------------------------------------------------------------------ stubs


def _definition(path: Path, name: str) -> ast.AST:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [
        n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name
    ]
    assert len(found) == 1, f"{name} in {path}: {len(found)} definitions"
    return found[0]


def _contract(node: ast.AST) -> list:
    """Everything of a definition that a stub must keep (not the body)."""
    if isinstance(node, ast.ClassDef):
        methods = [_contract(n) for n in node.body if isinstance(n, ast.FunctionDef)]
        bases = [ast.dump(b) for b in node.bases]
        return [node.name, bases, ast.get_docstring(node, clean=False), methods]
    return [
        node.name,
        ast.dump(node.args),
        ast.dump(node.returns) if node.returns else None,
        [ast.dump(d) for d in node.decorator_list],
        ast.get_docstring(node, clean=False),
    ]


@pytest.mark.parametrize("task", TASKS.values(), ids=list(TASKS))
def test_stub_keeps_signature_hints_and_docstring(student_root, task: Task):
    reference = _definition(LAYOUT.src / f"{task.module}.py", task.name)
    stub = _definition(student_root / "dnnkernels" / f"{task.module}.py", task.name)
    assert _contract(stub) == _contract(reference)
    text = ast.unparse(stub)
    assert f'dnnkernels._student.implementation("{task.id}")'.replace('"', "'") in text


def test_stubs_raise_not_implemented_naming_the_task(student_root, tmp_path):
    """With no student code anywhere, every stub raises the task's NotImplementedError."""
    code = """
        import importlib, inspect, json
        from dnnkernels.tasks import TASKS
        out = {}
        for task in TASKS.values():
            obj = getattr(importlib.import_module(f"dnnkernels.{task.module}"), task.name)
            sig = inspect.signature(obj)
            args = [None] * sum(
                p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                for p in sig.parameters.values()
            )
            try:
                obj(*args)
                error = None
            except NotImplementedError as exc:
                error = str(exc)
            module = importlib.import_module(f"dnnkernels.{task.module}")
            out[task.id] = {"error": error, "signature": str(sig), "doc": obj.__doc__,
                            "file": inspect.getfile(module)}
        print(json.dumps(out))
    """
    results = run_student_build(code, student_root, tmp_path)
    import importlib

    for task in TASKS.values():
        got = results[task.id]
        assert Path(got["file"]).is_relative_to(student_root), got["file"]
        assert got["error"] == task.not_implemented_message(), (task.id, got["error"])
        reference = getattr(importlib.import_module(f"dnnkernels.{task.module}"), task.name)
        assert got["signature"] == str(inspect.signature(reference)), task.id
        assert got["doc"] == reference.__doc__, task.id


def test_stub_delegates_to_function_defined_in_main(student_root, tmp_path):
    """Functions the student defines in __main__ are what the library runs; imports are not."""
    code = """
        import json
        import torch
        from dnnkernels.conv2d import conv2d
        from dnnkernels.matmul import matmul_log  # imported, not the student's: ignored
        import dnnkernels.conv2d as library
        import dnnkernels.compress as compress

        def conv2d_im2col(x, k, b=None, stride=1, padding=0):
            return torch.full((1,), 7.0 + stride)

        def conv2d_fft(x, k, b=None):
            return conv2d(x, k, b, method="fft")  # calls itself through the dispatcher

        class SVDLinear(torch.nn.Module):
            def __init__(self, linear, rank):
                super().__init__()
                self.rank = rank

            def forward(self, x):
                return 2 * x

        x, k = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
        out = {
            "stub": library.conv2d_im2col(x, k, None, 2, 0).item(),
            "dispatcher": conv2d(x, k, method="im2col").item(),
        }
        try:
            matmul_log(torch.ones(2, 2), torch.ones(2, 2))
        except NotImplementedError as exc:
            out["imported"] = str(exc)
        try:
            library.conv2d_fft(x, k)
        except RecursionError as exc:
            out["recursion"] = str(exc)
        layer = compress.SVDLinear(torch.nn.Linear(4, 3), 2)
        out["class"] = type(layer).__module__ + "." + type(layer).__name__
        out["isinstance"] = isinstance(layer, compress.SVDLinear)
        out["other"] = isinstance(torch.nn.Linear(4, 3), compress.SVDLinear)
        out["subclass"] = issubclass(SVDLinear, compress.SVDLinear)
        out["forward"] = layer(torch.ones(1, 4)).tolist()
        out["checked"] = type(compress.svd_linear(torch.nn.Linear(4, 3), 2)).__module__
        print(json.dumps(out))
    """
    got = run_student_build(code, student_root, tmp_path)
    assert got["stub"] == 9.0 and got["dispatcher"] == 8.0
    assert got["imported"] == TASKS["precision_matmul_log"].not_implemented_message()
    assert "Task precision_fft" in got["recursion"] and "calls dnnkernels'" in got["recursion"]
    assert got["class"] == "__main__.SVDLinear" and got["isinstance"] is True
    assert got["other"] is False and got["subclass"] is True, "isinstance/issubclass of SVDLinear"
    assert got["forward"] == [[2.0, 2.0, 2.0, 2.0]]
    assert got["checked"] == "__main__"


def _fake_notebook(path: Path, scale: int, broken_fft: bool = True) -> None:
    """A saved student notebook: a setup cell, two answer cells, and cells never run."""

    def cell(source, grade_id=None, cell_type="code"):
        make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
        c = make(source)
        if grade_id:
            c.metadata["nbgrader"] = {"grade_id": grade_id, "solution": True}
        return c

    nb = nbformat.v4.new_notebook(
        cells=[
            cell("%matplotlib inline\nimport torch\nSCALE = " + str(scale), "setup_1"),
            cell("raise SystemExit('plain cells never run')"),
            cell(
                "def conv2d_im2col(x, k, b=None, stride=1, padding=0):\n    return SCALE * x",
                "precision_im2col_answer",
            ),
            cell(
                "def conv2d_fft(x, k, b=None):\n    return (" if broken_fft else "",
                "precision_fft_answer",
            ),
            cell("raise SystemExit('check cells never run')", "precision_im2col"),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_implementation_from_saved_notebook(tmp_path, monkeypatch):
    """Without a definition in __main__, the answer cell of the saved notebook is used."""
    import torch

    monkeypatch.setenv(_student.WORK_ENV, str(tmp_path))
    path = tmp_path / "precision" / "precision.ipynb"
    _fake_notebook(path, scale=3)
    assert _student.notebook_path("precision_im2col") == path
    x = torch.ones(2)
    assert _student.implementation("precision_im2col")(x, None).tolist() == [3.0, 3.0]
    # a broken answer cell of another task is an error of that task only
    with pytest.raises(RuntimeError, match="precision_fft_answer.*SyntaxError"):
        _student.implementation("precision_fft")
    # no answer cell for a task: the task's NotImplementedError
    with pytest.raises(NotImplementedError) as info:
        _student.implementation("precision_winograd")
    assert str(info.value) == TASKS["precision_winograd"].not_implemented_message()
    # the notebook is read again when the file changes (cached until then)
    _fake_notebook(path, scale=5, broken_fft=False)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _student.implementation("precision_im2col")(x, None).tolist() == [5.0, 5.0]
    # another assignment's notebook is missing altogether
    with pytest.raises(NotImplementedError, match="Task bit_width_min_bits"):
        _student.implementation("bit_width_min_bits")


def test_student_build_uses_saved_notebook(student_root, tmp_path):
    """End to end: the student build's library runs the saved notebook's function."""
    _fake_notebook(tmp_path / "precision" / "precision.ipynb", scale=4)
    code = """
        import json, torch
        from dnnkernels.conv2d import conv2d
        y = conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2), method="im2col")
        print(json.dumps({"sum": y.sum().item()}))
    """
    assert run_student_build(code, student_root, tmp_path) == {"sum": 36.0}


def test_student_package_installs_as_a_wheel(student_root, tmp_path):
    """release/ is an installable project: the wheel holds the package and its weights."""
    import zipfile

    project = tmp_path / "project"
    shutil.copytree(student_root, project)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheels"),
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    wheel = next((tmp_path / "wheels").glob("dnnkernels-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dnnkernels/_student.py" in names and "dnnkernels/conv2d.py" in names
    assert any(n.startswith("dnnkernels/weights/") and n.endswith(".pt") for n in names)
    assert not [n for n in names if "/course/" in n or n.startswith(tuple(ASSIGNMENTS))]


# ---------------------------------------------------------------------- extraction errors


def _fake_task(module: str = "fake", name: str = "kernel") -> Task:
    return Task("precision_fake", "precision", module, name, 1, "a fake task")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def other():\n    pass\n", "no top-level function or class `kernel`"),
        ('def kernel(x):\n    """Doc."""\n    return x\n', "has no `### BEGIN SOLUTION`"),
        (
            'def kernel(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    y = x\n'
            "    ### BEGIN SOLUTION\n    return y\n    ### END SOLUTION\n",
            "exactly one",
        ),
        (
            'def kernel(x):\n    """Doc."""\n    y = x\n    ### BEGIN SOLUTION\n    return y\n'
            "    ### END SOLUTION\n",
            "code outside",
        ),
        (
            'def kernel(x):\n    """Doc."""\n  ### BEGIN SOLUTION\n    return x\n'
            "    ### END SOLUTION\n",
            "indented to the body",
        ),
        (
            "def kernel(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n",
            "no docstring",
        ),
        ('class kernel:\n    """Doc."""\n\n    def f(self):\n        return 1\n', "no method with"),
    ],
)
def test_extractor_rejects_malformed_exercises(tmp_path, text, message):
    (tmp_path / "fake.py").write_text(text)
    with pytest.raises(ExerciseError, match=message) as info:
        find_exercise(_fake_task(), tmp_path)
    assert "precision_fake" in str(info.value) and "fake.py" in str(info.value)


def test_extractor_names_a_missing_module(tmp_path):
    with pytest.raises(ExerciseError, match=r"src/dnnkernels/fake\.py does not exist.*`kernel`"):
        find_exercise(_fake_task(), tmp_path)


def test_extractor_finds_every_registered_exercise():
    for task in TASKS.values():
        exercise = find_exercise(task, LAYOUT.src)
        assert exercise.solution_lines(), task.id
        assert f"{'class' if exercise.kind == 'class' else 'def'} {task.name}" in exercise.source


def test_answer_cell_imports_support_names_but_not_sibling_exercises():
    winograd = find_exercise(TASKS["precision_winograd"], LAYOUT.src)
    assert "from dnnkernels.conv2d import winograd_transforms" in winograd.imports
    svd = find_exercise(TASKS["precision_matmul_svd"], LAYOUT.src)
    assert "from dnnkernels.matmul import truncated_svd" in svd.imports
    for task in TASKS.values():
        siblings = {t.name for t in tasks_of(task.assignment)}
        imported = {line.split()[-1] for line in find_exercise(task, LAYOUT.src).imports if line}
        assert not imported & siblings, (task.id, imported & siblings)


# ---------------------------------------------------------------------- tag conventions


def _valid_cells(skip: str = "") -> str:
    return "".join(
        f'# %% tags=["answer:{t.id}"]\n# x\n\n# %% tags=["check:{t.id}"]\nassert True\n\n'
        for t in tasks_of("precision")
        if t.id != skip
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('# %% tags=["answer:nope"]\n# x\n\n' + _valid_cells(), "names no task"),
        ('# %% tags=["answer:svd_rank_errors"]\n# x\n\n' + _valid_cells(), "belongs to assignment"),
        (
            '# %% tags=["check:precision_im2col"]\nassert 1\n\n'
            '# %% tags=["answer:precision_im2col"]\n# x\n\n' + _valid_cells("precision_im2col"),
            "comes before its answer",
        ),
        ("# %%\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n\n" + _valid_cells(), "only allowed"),
        (
            '# %% tags=["manual:q:2"]\nx = 1\n\n# %% tags=["manual:q:1"]\ny = 2\n\n'
            + _valid_cells(),
            "used twice",
        ),
        ('# %% tags=["manual:q:zero"]\nx = 1\n\n' + _valid_cells(), "manual:<id>:<points>"),
    ],
)
def test_source_notebook_conventions_are_enforced(tmp_path, text, message):
    """A broken source notebook fails the build with a message that names the problem."""
    exercises = {t.id: find_exercise(t, LAYOUT.src) for t in tasks_of("precision")}
    path = tmp_path / "precision.py"
    path.write_text(text)
    with pytest.raises(notebooks.NotebookError, match=message):
        notebooks.build_notebook("precision", path, exercises, "notice")
    path.write_text(_valid_cells())  # and the valid part alone builds
    notebooks.build_notebook("precision", path, exercises, "notice")


def test_source_notebook_needs_every_task(tmp_path):
    exercises = {t.id: find_exercise(t, LAYOUT.src) for t in tasks_of("precision")}
    path = tmp_path / "precision.py"
    path.write_text('# %% tags=["answer:precision_im2col"]\n# x\n')
    with pytest.raises(notebooks.NotebookError, match="precision_im2col has no check cell"):
        notebooks.build_notebook("precision", path, exercises, "notice")


# ------------------------------------------------------------------- executing notebooks


@pytest.mark.parametrize("build_kind", ["reference", "student"])
def test_kernel_runs_this_python_with_the_chosen_build(student_root, tmp_path, build_kind):
    """Notebooks run in this interpreter (the .venv) and import the build they are given."""
    root = LAYOUT.repo / "src" if build_kind == "reference" else student_root
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import os, sys, dnnkernels\nprint(sys.executable)\nprint(dnnkernels.__file__)\n"
                "print(os.getcwd())"
            )
        ]
    )
    execute(nb, tmp_path, [root])
    executable, package, cwd = nb.cells[0].outputs[0].text.split()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert Path(package).resolve().is_relative_to(root.resolve())
    assert Path(cwd).resolve() == tmp_path.resolve()


_executed: dict[str, nbformat.NotebookNode] = {}


@pytest.fixture(scope="module")
def instructor(fresh, tmp_path_factory):
    """The solution-version notebooks (as `make solutions` builds them), not yet executed."""
    out = tmp_path_factory.mktemp("solutions")
    return instructor_notebooks(
        LAYOUT, fresh.exercises, out, command="make solutions", extra=SOLUTION_NOTE
    )


def _executed_solution(instructor, assignment: str) -> nbformat.NotebookNode:
    if assignment not in _executed:
        path = instructor[assignment]
        nb = notebooks.read(path)
        try:
            execute(nb, path.parent, [LAYOUT.repo / "src"])
        except CellExecutionError as exc:
            pytest.fail(f"solution notebook {assignment}: {exc.ename}: {exc.evalue}")
        _executed[assignment] = nb
    return _executed[assignment]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_executes(instructor, assignment):
    """Every cell runs and the plots are drawn (its run time is no unit-test matter)."""
    nb = _executed_solution(instructor, assignment)
    assert failed_cell(nb) is None, f"{assignment}: cell {failed_cell(nb)} failed"
    plots = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert plots, f"{assignment}: the solution shows no plot"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", [pytest.param(a, marks=_task_marks(a)) for a in ASSIGNMENTS])
def test_visible_checks_pass_on_solution(instructor, assignment):
    """Each check cell ran, raised nothing and wrote nothing to stderr (nbgrader: 0 points)."""
    nb = _executed_solution(instructor, assignment)
    checks = {
        c.metadata.nbgrader["grade_id"]: c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
        and c.cell_type == "code"
        and not c.metadata.nbgrader.get("solution")
    }
    assert set(checks) == {t.id for t in tasks_of(assignment)}
    for task_id, cell in checks.items():
        assert cell.execution_count is not None, f"{task_id}: not executed"
        kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
        assert ("error", None) not in kinds and ("stream", "stderr") not in kinds, (task_id, kinds)


def _student_notebook(student_root: Path, assignment: str) -> nbformat.NotebookNode:
    return notebooks.read(student_root / assignment / f"{assignment}.ipynb")


def _run_student(nb, student_root: Path, assignment: str) -> CellExecutionError | None:
    """Execute a student notebook on the student build; the error it stopped with, if any."""
    try:
        execute(
            nb,
            student_root / assignment,
            [student_root],
            {"DNNK_STUDENT_WORK": str(student_root)},
        )
    except CellExecutionError as exc:
        return exc
    return None


def _answer_order(nb) -> list[str]:
    return [notebooks.role_of(c)[1] for c in nb.cells if notebooks.role_of(c)[0] == "answer"]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebook_stops_at_first_task(student_root, assignment):
    nb = _student_notebook(student_root, assignment)
    first = TASKS[_answer_order(nb)[0]]
    error = _run_student(nb, student_root, assignment)
    assert error is not None, f"{assignment}: the untouched student notebook ran through"
    assert (error.ename, error.evalue) == ("NotImplementedError", first.not_implemented_message())
    index, cell = failed_cell(nb)
    assert cell.metadata.nbgrader["grade_id"] == first.id, "it stops in the first check cell"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebook_with_answers(student_root, instructor, assignment):
    """Earlier tasks answered: stops at the last task; all answered: runs to the end.

    The answers are the reference ones, pasted into the student's answer and manually
    graded cells; the library is the student build, so everything the notebook calls
    (dispatchers, compress, ...) runs on these pasted answers.
    """
    solution = notebooks.read(instructor[assignment])
    by_id = {
        c.metadata.nbgrader["grade_id"]: c.source
        for c in solution.cells
        if "nbgrader" in c.metadata
    }
    nb = _student_notebook(student_root, assignment)
    order = _answer_order(nb)
    last = TASKS[order[-1]]
    for cell in nb.cells:
        role, arg = notebooks.role_of(cell)
        if (role == "answer" and arg != last.id) or role == "manual":
            cell.source = by_id[cell.metadata.nbgrader["grade_id"]]
    error = _run_student(nb, student_root, assignment)
    assert error is not None and error.ename == "NotImplementedError", error
    assert error.evalue == last.not_implemented_message()
    assert failed_cell(nb)[1].metadata.nbgrader["grade_id"] == last.id

    for cell in nb.cells:
        if notebooks.role_of(cell) == ("answer", last.id):
            cell.source = by_id[last.answer_cell_id]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    error = _run_student(nb, student_root, assignment)
    assert error is None, f"{assignment}: {error.ename}: {error.evalue}"
