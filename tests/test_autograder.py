"""Tests of the autograder (autograder/): real nbgrader, real sandboxed processes, no mocks.

The expensive part runs once (module fixture ``graded``): one class of precision
submissions graded in a single run with two workers: the three demo students (solution,
untouched, one kernel broken) and every bad submission of the corpus in tests/attacks/.
The tests then read the gradebook, the autograded notebooks, the results and the feedback.
Small, fast tests cover the pieces (protocol, canonical notebooks, the runner, the sandbox)
and the bookkeeping of the hidden checks.
"""

from __future__ import annotations

import ast
import copy
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import attacks  # tests/attacks: the corpus of bad submissions
import nbformat
import numpy as np
import pytest
import torch
from attacks import sandbox_escape

from autograder import notebooks, protocol
from autograder.demo import BROKEN_TASK, break_task, solution_notebook
from autograder.grade import Options, grade, grade_table
from autograder.paths import REPO, release_dir
from autograder.student import CheckFailed, Limits, Payload, StudentCode, StudentError
from dnnkernels.tasks import ASSIGNMENTS, TASKS, tasks_of

ASSIGNMENT = "precision"
TASK_IDS = [t.id for t in tasks_of(ASSIGNMENT)]
HIDDEN = REPO / "autograder" / "hidden"

needs_release = pytest.mark.skipif(
    not (release_dir() / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file(),
    reason="release/ is not built (make release)",
)


def release_notebook(assignment: str = ASSIGNMENT):
    return notebooks.read((release_dir() / assignment / f"{assignment}.ipynb").read_bytes())


# ================================================================ the graded class (slow)


@pytest.fixture(scope="module")
def graded():
    """The demo students and the attack corpus, graded together in one run."""
    # a folder of our own: pytest's numbered tmp folders of concurrent sessions rotate
    grading = Path(tempfile.mkdtemp(prefix="dnnk-test-grading-"))
    solution = solution_notebook(ASSIGNMENT)
    release = release_notebook()
    versions = {
        "solution": solution,
        "untouched": release,
        "one_broken": break_task(solution),
    }
    corpus = attacks.modules()
    for student, nb in versions.items():
        folder = grading / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    for module in corpus.values():
        folder = grading / "submitted" / module.STUDENT / ASSIGNMENT
        folder.mkdir(parents=True)
        ctx = SimpleNamespace(
            solution=copy.deepcopy(solution),
            release=copy.deepcopy(release),
            repo=REPO,
            grading=grading,
            folder=folder,
        )
        nb = module.build(ctx)
        if nb is not None:
            nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    if os.path.exists(sandbox_escape.MARKER):
        os.remove(sandbox_escape.MARKER)
    options = Options(
        workers=2, cell_timeout=20, call_timeout=10, load_timeout=20, memory_bytes=3 << 30
    )
    outcomes = grade(grading, [ASSIGNMENT], None, options, progress=False)
    rows = {r["student"]: r for r in grade_table(grading, [ASSIGNMENT])}
    yield SimpleNamespace(
        grading=grading, outcomes=outcomes, rows=rows, corpus=corpus, options=options
    )
    shutil.rmtree(grading, ignore_errors=True)


def points(graded, student: str) -> dict[str, float]:
    row = graded.rows[student]
    return {t: float(row[t]) for t in TASK_IDS}


def autograded(graded, student: str):
    path = graded.grading / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return nbformat.read(path, as_version=4)


def feedback_html(graded, student: str) -> str:
    path = graded.grading / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
    return path.read_text()


def cell_text(nb, gid: str) -> str:
    cell = next(c for c in nb.cells if notebooks.grade_id(c) == gid)
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


@needs_release
@pytest.mark.slow
def test_demo_outcomes(graded):
    """solution: full automatic points; untouched: none; one_broken: loses exactly one task."""
    full = {t.id: float(t.points) for t in tasks_of(ASSIGNMENT)}
    assert points(graded, "solution") == full
    assert points(graded, "untouched") == dict.fromkeys(TASK_IDS, 0.0)
    assert points(graded, "one_broken") == {**full, BROKEN_TASK: 0.0}
    assert graded.outcomes[("untouched", ASSIGNMENT)].status == "graded"
    # grading completed: executed notebook, feedback, a row in both CSV files
    assert "NotImplementedError" in json.dumps(autograded(graded, "untouched"))
    for student in ("solution", "untouched", "one_broken"):
        assert "Hidden checks of precision_im2col" in feedback_html(graded, student)
    table = (graded.grading / "grades.csv").read_text()
    assert table.splitlines()[0].startswith("student,precision_im2col")
    assert "solution,4.0,4.0,4.0,3.0,3.0,2.0" in table
    export = (graded.grading / "nbgrader_grades.csv").read_text()
    assert ",solution," in export and ",one_broken," in export


@needs_release
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(attacks.modules()))
def test_attack_earns_no_undeserved_point(graded, name):
    """Each bad submission gets what it deserves (its honest parts keep their points)."""
    module = graded.corpus[name]
    got = points(graded, module.STUDENT)
    for task, deserved in module.DESERVED.items():
        assert got[task] <= deserved, f"{name}: {task} earned {got[task]} > {deserved}"
    assert got == {t: float(p) for t, p in module.DESERVED.items()}
    assert (graded.grading / "feedback" / module.STUDENT / ASSIGNMENT).is_dir()


@needs_release
@pytest.mark.slow
def test_attacks_do_not_affect_the_others(graded):
    """Graded in the same run as every attack: the demo grades and the files are intact."""
    full = {t.id: float(t.points) for t in tasks_of(ASSIGNMENT)}
    assert points(graded, "solution") == full
    assert points(graded, "one_broken") == {**full, BROKEN_TASK: 0.0}
    expected_students = {"solution", "untouched", "one_broken"} | {
        m.STUDENT for m in graded.corpus.values()
    }
    assert set(graded.rows) == expected_students
    results = json.loads((graded.grading / "results" / "solution" / "precision.json").read_text())
    assert results["task_points"] == full
    assert all(c["outcome"] == "passed" for c in results["checks"])
    forged = graded.grading / "results" / "attack_sandbox_escape" / "precision.json"
    assert json.loads(forged.read_text())["task_points"]["precision_winograd"] == 0.0
    assert "attack_sandbox_escape,100" not in (graded.grading / "grades.csv").read_text()
    assert not os.path.exists(sandbox_escape.MARKER)
    for student in expected_students - {"attack_missing_notebook", "attack_unreadable"}:
        assert (graded.grading / "autograded" / student / ASSIGNMENT).is_dir(), student


@needs_release
@pytest.mark.slow
def test_visible_checks_never_grant_kernel_points(graded):
    """Redefined checks fool nbgrader's own verdict on the cell, but not the grade."""
    from nbgrader.utils import determine_grade

    nb = autograded(graded, "attack_patch_checks")
    fooled = []
    for task in ("precision_im2col", "precision_winograd"):
        cell = next(c for c in nb.cells if notebooks.grade_id(c) == task)
        # nbgrader's own verdict on the patched visible check ...
        fooled.append(determine_grade(cell)[0] == TASKS[task].points)
        # ... never counts: the hidden checks decide
        assert points(graded, "attack_patch_checks")[task] == 0.0
        assert "0 / 4 points" in cell_text(nb, task)
    assert any(fooled), "the attack no longer fools nbgrader's visible checks: update it"


@needs_release
@pytest.mark.slow
def test_feedback_explains_failures_without_hidden_inputs(graded):
    crashes = cell_text(autograded(graded, "attack_crashes"), "precision_im2col")
    assert "timeout: no answer within 10 s" in crashes
    outcome = graded.outcomes[("attack_crashes", ASSIGNMENT)]
    messages = {c["task"]: c["message"] for c in outcome.checks if c["outcome"] != "passed"}
    assert "raised SystemExit" in messages["precision_fft"]
    assert "exited with status 0" in messages["precision_matmul_log_approx"]
    assert "memory" in messages["precision_winograd"].lower()
    assert any("could not be executed" in n for n in outcome.notes)  # the kernel died
    fake = {
        c["task"]: c["message"] for c in graded.outcomes[("attack_fake_results", ASSIGNMENT)].checks
    }
    assert "cannot use" in fake["precision_im2col"]
    assert "entries are off" in fake["precision_winograd"]
    syntax = {
        c["task"]: c["message"] for c in graded.outcomes[("attack_syntax_error", ASSIGNMENT)].checks
    }
    assert "SyntaxError" in syntax["precision_matmul_svd"]
    assert "longer than 20 s" in syntax["precision_matmul_log"]
    tampered = graded.outcomes[("attack_cells_tampered", ASSIGNMENT)].notes
    assert any("precision_im2col was missing" in n for n in tampered)
    assert any("precision_fft_answer appeared more than once" in n for n in tampered)
    assert any("precision_winograd_answer had its type" in n for n in tampered)
    # nothing of the hidden checks or the reference leaks into what students see
    hidden_source = (HIDDEN / "test_precision.py").read_text()
    hidden = ["seed=7301", "never released to students", hidden_source[200:260]]
    reference = (REPO / "src" / "dnnkernels" / "conv2d.py").read_text()
    im2col = reference[reference.index("def conv2d_im2col") :]
    body = im2col[im2col.index("### BEGIN SOLUTION") : im2col.index("### END SOLUTION")]
    stolen = max(body.splitlines(), key=len).strip()  # the im2col the attack tried to read
    assert (
        len(stolen) > 30 and stolen not in (release_dir() / "dnnkernels" / "conv2d.py").read_text()
    )
    for student, secrets in [
        ("attack_sandbox_escape", hidden + [stolen]),
        ("attack_crashes", hidden),
        ("solution", hidden),
    ]:
        shown = json.dumps(autograded(graded, student)) + feedback_html(graded, student)
        for secret in secrets:
            assert secret not in shown, (student, secret)
    escape_nb = autograded(graded, "attack_sandbox_escape")
    assert "could not steal the reference" in cell_text(escape_nb, "precision_im2col")
    # the notebook's own kernel (nbgrader's) is sandboxed too
    kernel_said = cell_text(escape_nb, "precision_im2col_answer")
    assert "could not read" in kernel_said and "could not import the reference" in kernel_said
    assert "blocked: PermissionError" in cell_text(escape_nb, "precision_winograd_answer")


@needs_release
@pytest.mark.slow
def test_megabytes_of_printing_are_capped(graded):
    path = graded.grading / "autograded" / "attack_syntax_error" / ASSIGNMENT
    size = (path / f"{ASSIGNMENT}.ipynb").stat().st_size
    assert size < 2_000_000
    executed = json.dumps(autograded(graded, "attack_syntax_error"))
    assert "output truncated" in executed
    assert "CellTimeoutError" in executed or "KeyboardInterrupt" in executed  # cell timeout


@needs_release
@pytest.mark.slow
def test_regrading_is_idempotent(graded):
    """Grading again gives the same scores and adds no rows to the gradebook."""
    db = graded.grading / "gradebook.db"

    def snapshot():
        with sqlite3.connect(db) as con:
            counts = {
                table: con.execute(f"select count(*) from {table}").fetchone()[0]
                for table in ("student", "submitted_assignment", "submitted_notebook", "grade")
            }
        return counts, grade_table(graded.grading, [ASSIGNMENT])

    before = snapshot()
    again = ["attack_cells_tampered"]
    grade(graded.grading, [ASSIGNMENT], again, graded.options, progress=False)
    assert snapshot() == before
    for student in again:
        assert "Hidden checks" in feedback_html(graded, student)


# ================================================================ hidden-check bookkeeping


def hidden_checks(assignment: str) -> list[tuple[str, str | None, float]]:
    """(check name, task, points) of every test function in a hidden-check module."""
    tree = ast.parse((HIDDEN / f"test_{assignment}.py").read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            task, pts = None, 0.0
            for deco in node.decorator_list:
                text = ast.unparse(deco)
                if text.startswith("pytest.mark.points("):
                    pts = float(ast.literal_eval(deco.args[0]))
                elif text.startswith("pytest.mark.") and text.split(".")[-1] in TASKS:
                    task = text.split(".")[-1]
            found.append((node.name, task, pts))
    return found


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_hidden_points_add_up_to_task_points(assignment):
    checks = hidden_checks(assignment)
    assert all(task is not None and pts > 0 for _, task, pts in checks), checks
    for task in tasks_of(assignment):
        mine = [pts for _, t, pts in checks if t == task.id]
        assert len(mine) >= 2, f"{task.id}: {len(mine)} hidden checks"
        assert sum(mine) == task.points, f"{task.id}: {sum(mine)} != {task.points}"


def test_hidden_checks_are_never_released():
    released = "\n".join(
        p.read_text(errors="replace")
        for p in release_dir().rglob("*")
        if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".toml", ".json")
    )
    for assignment in ASSIGNMENTS:
        source = (HIDDEN / f"test_{assignment}.py").read_text()
        assert source[:400] not in released
    assert "autograder" not in {p.name for p in release_dir().iterdir()}


# ================================================================ pieces (fast)


def test_protocol_round_trip_and_no_pickles():
    blobs: list[bytes] = []
    value = (
        torch.arange(6.0).reshape(2, 3),
        torch.ones(2, dtype=torch.bfloat16),
        np.int64(3),
        2.5,
        None,
        [True, "x"],
        {"k": np.zeros(2)},
    )
    back = protocol.decode(protocol.encode(value, blobs), blobs)
    assert torch.equal(back[0], value[0]) and back[1].dtype == torch.bfloat16
    assert back[2] == 3 and back[3:6] == (2.5, None, [True, "x"])
    assert np.array_equal(back[6]["k"], np.zeros(2))
    # an object array saved with pickles is refused, never unpickled
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(protocol.ProtocolError):
        protocol.decode({"t": "ndarray", "b": 0}, [buffer.getvalue()])

    class Sneaky(int):
        def __eq__(self, other):
            return True

    assert type(protocol.encode(Sneaky(5), [])) is int
    with pytest.raises(protocol.ProtocolError, match="not a tensor"):
        protocol.encode(object(), [])


@needs_release
def test_canonicalise_repairs_graded_cells():
    release = release_notebook()
    nb = copy.deepcopy(release)
    del nb.cells[attacks.index(nb, "precision_im2col")]  # deleted
    dup = copy.deepcopy(attacks.find(nb, "precision_fft_answer"))
    dup.source = "first = True"
    nb.cells.insert(attacks.index(nb, "precision_fft_answer"), dup)  # duplicated
    check = attacks.find(nb, "precision_fft")
    check.cell_type = "markdown"  # retyped
    check.pop("outputs", None)
    check.pop("execution_count", None)
    attacks.find(nb, "precision_matmul_svd").source = "pass"  # locked cell edited
    nb.cells.append(nbformat.v4.new_code_cell("extra = 1"))  # student's own cell
    fixed, notes = notebooks.canonicalise(nb, release)
    ids = [notebooks.grade_id(c) for c in fixed.cells if notebooks.grade_id(c)]
    assert ids == [notebooks.grade_id(c) for c in release.cells if notebooks.grade_id(c)]
    assert attacks.find(fixed, "precision_fft_answer").source == "first = True"
    assert attacks.find(fixed, "precision_fft").cell_type == "code"
    svd = attacks.find(fixed, "precision_matmul_svd").source
    assert svd == attacks.find(release, "precision_matmul_svd").source
    assert fixed.cells[-1].source == "extra = 1"
    assert len(notes) == 3
    nbformat.validate(fixed)
    cells, _ = notebooks.payload_cells(fixed, release)
    assert [c["kind"] for c in cells][:2] == ["setup", "answer"]
    assert cells[0]["source"] == attacks.find(release, "setup_1").source


def runner_payload(source: str) -> Payload:
    cells = [
        {"grade_id": "setup_1", "kind": "setup", "source": "import torch\n%matplotlib inline"},
        {"grade_id": "precision_im2col_answer", "kind": "answer", "source": source},
        {"grade_id": "precision_fft_answer", "kind": "answer", "source": "def conv2d_fft(:"},
        {"grade_id": "precision_winograd_answer", "kind": "answer", "source": "while True: pass"},
    ]
    return Payload(ASSIGNMENT, cells)


RUNNER_SOURCE = f"""
import os
import sys


def double(x):
    print("chatty " * 100_000)
    return 2 * x


def hang():
    while True:
        pass


def die():
    os._exit(0)


def leave():
    sys.exit(3)


def steal():
    return open({str(REPO / "src" / "dnnkernels" / "conv2d.py")!r}).read()


def spawn():
    return os.system("true")
"""


def test_runner_limits_and_restarts():
    """Timeouts, crashes and forbidden operations fail one call each; the next works."""
    limits = Limits(call_timeout=3, cell_timeout=8, memory_bytes=3 << 30)
    with StudentCode(runner_payload(RUNNER_SOURCE), limits) as code:
        assert torch.equal(code.call("double", torch.ones(3)), torch.full((3,), 2.0))
        assert "longer than 8 s" in code.cell_errors["precision_winograd_answer"]
        assert "SyntaxError" in code.cell_errors["precision_fft_answer"]
        with pytest.raises(StudentError, match="SyntaxError"):
            code.call("conv2d_fft")
        with pytest.raises(StudentError, match="timeout"):
            code.call("hang")
        with pytest.raises(StudentError, match="exited with status 0"):
            code.call("die")
        with pytest.raises(StudentError, match="SystemExit: 3"):
            code.call("leave")
        with pytest.raises(StudentError, match="PermissionError: grader sandbox"):
            code.call("steal")
        with pytest.raises(StudentError, match="PermissionError: grader sandbox"):
            code.call("spawn")
        assert torch.equal(code.call("double", torch.ones(1)), torch.full((1,), 2.0))
        assert code.starts == 4  # first start, the skipped cell, the timeout, os._exit


def test_sandbox_denies_reference_and_processes(tmp_path):
    script = f"""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("sb", {str(REPO / "autograder" / "sandbox.py")!r})
sb = importlib.util.module_from_spec(spec); spec.loader.exec_module(sb)
import torch
sb.install([{str(REPO)!r}], [{str(release_dir())!r}, sys.prefix], [{str(tmp_path)!r}])
results = []
for action in [
    lambda: open({str(REPO / "src" / "dnnkernels" / "conv2d.py")!r}).read(),
    lambda: os.listdir({str(REPO / "autograder" / "hidden")!r}),
    lambda: open({str(REPO / "pyproject.toml")!r}, "a"),
    lambda: os.system("true"),
    lambda: os.kill(os.getppid(), 0),
    lambda: __import__("ctypes").CDLL(None),
    lambda: __import__("subprocess").run(["true"]),
]:
    try:
        action(); results.append("allowed")
    except PermissionError:
        results.append("denied")
open({str(tmp_path / "ok.txt")!r}, "w").write("fine")
open({str(release_dir() / ASSIGNMENT / (ASSIGNMENT + ".ipynb"))!r}).read()
print(",".join(results))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ",".join(["denied"] * 7)
    assert (tmp_path / "ok.txt").read_text() == "fine"


def test_grading_dir_is_git_ignored():
    ignored = (REPO / ".gitignore").read_text().split()
    assert "build/" in ignored
    assert (
        shutil.which("git") is None
        or subprocess.run(
            ["git", "check-ignore", "-q", "build/grading/gradebook.db"], cwd=REPO
        ).returncode
        == 0
    )


LOOP_ACCUMULATE = """
import torch


def accumulate(products, bits, mode="saturate"):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rows = products.reshape(-1, products.shape[-1]).tolist()
    sums, flags = [], []
    for row in rows:
        acc, over = 0, False
        for p in row:
            acc += p
            if not lo <= acc <= hi:
                over = True
                acc = min(max(acc, lo), hi) if mode == "saturate" else (acc - lo) % 2**bits + lo
        sums.append(acc)
        flags.append(over)
    shape = products.shape[:-1]
    return torch.tensor(sums).reshape(shape), torch.tensor(flags).reshape(shape)
"""

VECTOR_ACCUMULATE = """
import torch


def accumulate(products, bits, mode="saturate"):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    prefix = products.cumsum(-1)
    over = ((prefix < lo) | (prefix > hi)).any(-1)
    if mode == "wrap":
        return torch.remainder(prefix[..., -1] - lo, 2**bits) + lo, over
    acc = torch.zeros(products.shape[:-1], dtype=torch.int64)
    for k in range(products.shape[-1]):
        acc = (acc + products[..., k]).clamp(lo, hi)
    return acc, over
"""


#: a loop over the rows that switches the grader's tracer off first
UNTRACED_ACCUMULATE = "import sys\n\n\n" + LOOP_ACCUMULATE.replace(
    "    lo, hi = -(2 ** (bits - 1))", "    sys.settrace(None)\n    lo, hi = -(2 ** (bits - 1))", 1
)


def _hidden_module(assignment: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"hidden_{assignment}", HIDDEN / f"test_{assignment}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("source", "failure"),
    [
        (VECTOR_ACCUMULATE, None),
        (LOOP_ACCUMULATE, "lines of your code"),
        (UNTRACED_ACCUMULATE, "grader sandbox: settrace"),
    ],
)
def test_vectorization_check_tells_loops_apart(source, failure):
    """All are correct; the loops over the rows fail the check, tracer switched off or not."""
    hidden = _hidden_module("bit_width")
    cells = [{"grade_id": "bit_width_accumulate_answer", "kind": "answer", "source": source}]
    limits = Limits(call_timeout=60, cell_timeout=20, memory_bytes=3 << 30)
    with StudentCode(Payload("bit_width", cells), limits) as code:
        if failure is None:
            hidden.test_accumulate_saturate(code)
            hidden.test_accumulate_wrap(code)
            hidden.test_accumulate_vectorized(code)
        else:
            if "settrace" not in source:
                hidden.test_accumulate_saturate(code)
            with pytest.raises(CheckFailed, match=failure):
                hidden.test_accumulate_vectorized(code)
