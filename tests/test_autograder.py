"""The autograder against a class with bad submissions: real nbgrader, real sandbox, real Dask.

One class of precision submissions is graded in a single run with two local Dask workers
(module fixture ``graded``): the three demo students (solution, untouched, one kernel
broken) and every bad submission of the corpus in tests/attacks/ (escapes from the old
audit hook, damage to the trusted files and the gradebook, a daemon, snooping on
classmates and killing their processes, links, hostile HTML, thousands of sleeping cells,
disk filling, immutable files...). The tests then check that each submission earns exactly
what its honest parts deserve, that nobody else's grade moved, that the trusted tree and
the gradebook hold only the grader's writes, that nothing of the run is still alive, and
that no hidden input, reference code or grader secret reached what students see.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import attacks  # tests/attacks: the corpus of bad submissions
import nbformat
import pytest

from autograder import integrity, notebooks, uids
from autograder.demo import BROKEN_TASK, break_task, solution_notebook
from autograder.grade import grade, grade_table
from autograder.job import trusted_roots
from autograder.limits import Limits
from autograder.paths import REPO, release_dir
from dnnkernels.tasks import TASKS, tasks_of

ASSIGNMENT = "precision"
TASK_IDS = [t.id for t in tasks_of(ASSIGNMENT)]
HIDDEN = REPO / "autograder" / "hidden"
LIMITS = Limits(
    submission_seconds=150,
    cell_seconds=20,
    call_seconds=10,
    load_seconds=15,
    memory_bytes=3 << 30,
)

needs_release = pytest.mark.skipif(
    not (release_dir() / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file(),
    reason="release/ is not built (make release)",
)
# the module fixture grades a whole class before the first test: its set-up takes minutes
pytestmark = [needs_release, pytest.mark.slow, pytest.mark.timeout(1200)]


def release_notebook(assignment: str = ASSIGNMENT):
    return notebooks.read_release(release_dir(), assignment)


def sandbox_processes() -> list[int]:
    """Processes of a sandbox uid started from this checkout's environment, still alive.

    (Other checkouts on the same machine may be grading at the same time: their sandboxes
    run their own venv's interpreter and bubblewrap, so the command line tells them apart.)
    """
    alive = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uid = os.stat(entry.path).st_uid
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if uids.UID_BASE <= uid < uids.UID_BASE + uids.UID_SLOTS and (
                os.fsencode(sys.prefix) in cmdline
            ):
                alive.append(int(entry.name))
    return alive


def git_status() -> str:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return ""
    return subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--",
            "autograder",
            "src",
            "release",
            "tests",
            "source",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout


# ================================================================ the graded class


@pytest.fixture(scope="module")
def graded():
    """The demo students and the attack corpus, graded together in one run."""
    grading = Path(tempfile.mkdtemp(prefix="dnnk-test-grading-"))
    solution = solution_notebook(ASSIGNMENT)
    release = release_notebook()
    secret = secrets.token_hex(16)
    versions = {"solution": solution, "untouched": release, "one_broken": break_task(solution)}
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
            secret=secret,
        )
        nb = module.build(ctx)
        if nb is not None:
            nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    before = SimpleNamespace(
        status=git_status(),
        manifest=integrity.manifest([*trusted_roots(), REPO / "src"]),
        conftest=(HIDDEN / "conftest.py").read_bytes(),
    )
    os.environ["DNNK_TEST_SECRET"] = secret
    try:
        report = grade(grading, [ASSIGNMENT], None, LIMITS, workers=2, progress=False)
    finally:
        del os.environ["DNNK_TEST_SECRET"]
    rows = {r["student"]: r for r in grade_table(grading, [ASSIGNMENT])}
    alive = sandbox_processes()
    yield SimpleNamespace(
        grading=grading,
        report=report,
        results=report.results,
        rows=rows,
        corpus=corpus,
        secret=secret,
        before=before,
        alive=alive,
    )
    shutil.rmtree(grading, ignore_errors=True)


def points(graded, student: str) -> dict[str, float | str]:
    """Task id -> points, or ``"missing"`` for a submission without a notebook."""
    row = graded.rows[student]
    return {t: row[t] if row[t] == "missing" else float(row[t]) for t in TASK_IDS}


def autograded(graded, student: str):
    path = graded.grading / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return nbformat.read(path, as_version=4)


def feedback_html(graded, student: str) -> str:
    path = graded.grading / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
    return path.read_text()


def shown(graded, student: str) -> str:
    """Everything the student (or an instructor's browser) gets of a submission."""
    return json.dumps(autograded(graded, student)) + feedback_html(graded, student)


def produced(graded, student: str) -> str:
    """What running the submission produced: every output and the grader's notes (the
    student's own sources, which may name paths or print markers, left out)."""
    nb = autograded(graded, student)
    parts = [json.dumps(c.get("outputs", [])) for c in nb.cells if c.cell_type == "code"]
    parts += [c.source for c in nb.cells if "Grader notes" in c.source]
    return "\n".join(parts)


def cell_text(nb, gid: str) -> str:
    cell = next(c for c in nb.cells if notebooks.grade_id(c) == gid)
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def test_the_run_succeeds(graded):
    """Every submission is graded (none failed), the trusted files and the environment held."""
    assert graded.report.failures == [], graded.report.summary()
    assert graded.report.problems == [], graded.report.summary()
    expected = {"solution", "untouched", "one_broken"} | {m.STUDENT for m in graded.corpus.values()}
    assert {s for s, _ in graded.results} == expected


def test_demo_outcomes(graded):
    """solution: full automatic points; untouched: none; one_broken: loses exactly one task."""
    full = {t.id: float(t.points) for t in tasks_of(ASSIGNMENT)}
    assert points(graded, "solution") == full
    assert points(graded, "untouched") == dict.fromkeys(TASK_IDS, 0.0)
    assert points(graded, "one_broken") == {**full, BROKEN_TASK: 0.0}
    assert graded.results[("untouched", ASSIGNMENT)].status == "graded"
    assert "NotImplementedError" in json.dumps(autograded(graded, "untouched"))
    for student in ("solution", "untouched", "one_broken"):
        assert "Hidden checks of precision_im2col" in feedback_html(graded, student)
    table = (graded.grading / "grades.csv").read_text()
    assert table.splitlines()[0].startswith("student,precision_im2col")
    assert "solution,4.0,4.0,4.0,3.0,3.0,2.0" in table
    export = (graded.grading / "nbgrader_grades.csv").read_text()
    assert ",solution," in export and ",one_broken," in export


@pytest.mark.parametrize("name", sorted(attacks.modules()))
def test_attack_earns_exactly_what_it_deserves(graded, name):
    """Each bad submission gets what its honest parts deserve, no more, no less."""
    module = graded.corpus[name]
    got = points(graded, module.STUDENT)
    if module.STUDENT == "attack_missing_notebook":  # nothing to grade: missing, never 0
        assert set(got.values()) == {"missing"}, got
        return
    for task, deserved in module.DESERVED.items():
        assert got[task] <= deserved, f"{name}: {task} earned {got[task]} > {deserved}"
    assert got == {t: float(p) for t, p in module.DESERVED.items()}, name
    assert (graded.grading / "feedback" / module.STUDENT / ASSIGNMENT).is_dir()


def test_nothing_escaped(graded):
    """No attack reports success from inside; the trusted tree is byte for byte the same."""
    for module in graded.corpus.values():
        if module.STUDENT in ("attack_symlinks", "attack_missing_notebook", "attack_unreadable"):
            continue
        assert "ESCAPED" not in produced(graded, module.STUDENT), module.STUDENT
    assert (HIDDEN / "conftest.py").read_bytes() == graded.before.conftest
    assert integrity.manifest([*trusted_roots(), REPO / "src"]) == graded.before.manifest
    assert git_status() == graded.before.status, "the run changed the working tree"


def test_gradebook_holds_only_the_graders_writes(graded):
    """No manual score appears from nowhere; the daemon's and the forger's writes are absent."""
    with sqlite3.connect(graded.grading / "gradebook.db") as con:
        manual = con.execute("select count(*) from grade where manual_score is not null")
        assert manual.fetchone()[0] == 0
        students = {r[0] for r in con.execute("select id from student")}
    assert students == {s for s, _ in graded.results}
    assert (graded.grading / "grades.csv").read_text().startswith("student,")
    for student in {s for s, _ in graded.results}:
        record = json.loads((graded.grading / "results" / student / "precision.json").read_text())
        assert record["student"] == student and "task_points" in record


def test_nothing_of_the_run_is_alive(graded):
    """No process of any sandbox uid outlives the run (the daemon included)."""
    assert graded.alive == [], f"sandbox processes still running: {graded.alive}"
    assert sandbox_processes() == []


def test_attacks_do_not_affect_the_others(graded):
    """Graded in the same run as every attack: the honest grades are the expected ones."""
    full = {t.id: float(t.points) for t in tasks_of(ASSIGNMENT)}
    assert points(graded, "solution") == full
    assert points(graded, "one_broken") == {**full, BROKEN_TASK: 0.0}
    results = json.loads((graded.grading / "results" / "solution" / "precision.json").read_text())
    assert results["task_points"] == full
    assert all(c["outcome"] == "passed" for c in results["checks"])
    assert graded.results[("solution", ASSIGNMENT)].notes == []


def test_no_secret_reaches_what_students_see(graded):
    """Hidden checks, the reference, the grader's environment, classmates: none in feedback."""
    hidden_source = (HIDDEN / "test_precision.py").read_text()
    reference = (REPO / "src" / "dnnkernels" / "conv2d.py").read_text()
    im2col = reference[reference.index("def conv2d_im2col") :]
    body = im2col[im2col.index("### BEGIN SOLUTION") : im2col.index("### END SOLUTION")]
    stolen = max(body.splitlines(), key=len).strip()
    assert len(stolen) > 30
    assert stolen not in (release_dir() / "dnnkernels" / "conv2d.py").read_text()
    # in anything a student sees: no student's source holds these (a submission without a
    # notebook is missing: nothing recorded, no feedback page)
    for student in {s for (s, _), r in graded.results.items() if r.status != "missing"}:
        text = shown(graded, student)
        for secret in (
            "seed=7301",
            "never released to students",
            hidden_source[200:260],
            graded.secret,
        ):
            assert secret not in text, (student, secret[:40])
        # in what running the submission produced (its source may hold the reference
        # solutions or name the grading folder; its outputs may not)
        outputs = produced(graded, student)
        for secret in (stolen, str(graded.grading), str(REPO / "autograder")):
            assert secret not in outputs, (student, secret[:40])
    # the classmates' notebooks were not within reach of the snooping submission
    snoop = produced(graded, "attack_neighbours")
    assert "NEIGHBOURS" in snoop
    for other in ("solution", "one_broken", "attack_daemon"):
        assert f"/{other}/" not in snoop


def test_links_are_never_followed(graded):
    """A linked notebook counts as unreadable; nothing of the link targets is copied."""
    result = graded.results[("attack_symlinks", ASSIGNMENT)]
    assert result.status == "unreadable"
    assert any("symbolic link" in n for n in result.notes), result.notes
    folder = graded.grading / "autograded" / "attack_symlinks" / ASSIGNMENT
    assert not (folder / "timestamp.txt").exists()
    reference = (REPO / "src" / "dnnkernels" / "conv2d.py").read_text()
    assert reference[:200] not in shown(graded, "attack_symlinks")


def test_the_budget_bounds_every_submission(graded):
    """A thousand sleeping cells and a sleeping answer cell cost about one budget, not hours."""
    slow = graded.results[("attack_slow", ASSIGNMENT)]
    assert slow.stages["total"]["wall"] <= LIMITS.submission_seconds + 30
    assert slow.budget_spent
    assert any("time budget" in n for n in slow.notes)
    text = json.dumps(autograded(graded, "attack_slow"))
    assert "not executed: the grading time budget" in text


def test_resources_are_capped(graded):
    """Disk filling stops at the sandbox's caps; no grader descriptor or variable is visible."""
    text = produced(graded, "attack_resources")
    assert "ENVIRONMENT" in text
    for name in ("DNNK_GRADING_DIR", "VIRTUAL_ENV", "DNNK_TEST_SECRET", "SSH_", "HOSTNAME"):
        assert f"'{name}" not in text
    assert "filler.bin" not in " ".join(p.name for p in graded.grading.rglob("*"))


class LiveMarkup(HTMLParser):
    """Collects what a browser would run: scripts, event handlers, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.live: list[str] = []
        self._script = False

    def handle_starttag(self, tag, attrs):
        self._script = tag == "script"
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") and "__pwned" in value:
                self.live.append(f"<{tag} {name}={value[:60]}>")
            if name in ("href", "src", "action", "formaction") and value.startswith("javascript:"):
                self.live.append(f"<{tag} {name}={value[:60]}>")

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script and "__pwned" in data:
            self.live.append(f"<script>{data.strip()[:60]}")


def test_hostile_markup_is_inert(graded):
    """No script, event handler or javascript: link of the student's survives in the pages."""
    parser = LiveMarkup()
    parser.feed(feedback_html(graded, "attack_hostile_html"))
    assert parser.live == []
    nb_text = json.dumps(autograded(graded, "attack_hostile_html"))
    assert "__pwned" in nb_text  # the attack's text is there, as text
    assert "application/javascript" not in nb_text
    assert "image/svg+xml" not in nb_text


def test_visible_checks_never_grant_kernel_points(graded):
    """Redefined checks fool nbgrader's own verdict on the cell, but not the grade."""
    from nbgrader.utils import determine_grade

    nb = autograded(graded, "attack_patch_checks")
    fooled = []
    for task in ("precision_im2col", "precision_winograd"):
        cell = next(c for c in nb.cells if notebooks.grade_id(c) == task)
        fooled.append(determine_grade(cell)[0] == TASKS[task].points)
        assert points(graded, "attack_patch_checks")[task] == 0.0
        assert "0 / 4 points" in cell_text(nb, task)
    assert any(fooled), "the attack no longer fools nbgrader's visible checks: update it"


def test_feedback_explains_failures_without_hidden_inputs(graded):
    crashes = cell_text(autograded(graded, "attack_crashes"), "precision_im2col")
    assert "timeout: no answer within 10 s" in crashes
    outcome = graded.results[("attack_crashes", ASSIGNMENT)]
    messages = {c["task"]: c["message"] for c in outcome.checks if c["outcome"] != "passed"}
    assert "raised SystemExit" in messages["precision_fft"]
    assert "exited with status 0" in messages["precision_matmul_log_approx"]
    assert "memory" in messages["precision_winograd"].lower()
    fake = {
        c["task"]: c["message"] for c in graded.results[("attack_fake_results", ASSIGNMENT)].checks
    }
    assert "cannot use" in fake["precision_im2col"]
    assert "entries are off" in fake["precision_winograd"]
    syntax = {
        c["task"]: c["message"] for c in graded.results[("attack_syntax_error", ASSIGNMENT)].checks
    }
    assert "SyntaxError" in syntax["precision_matmul_svd"]
    assert "longer than 15 s" in syntax["precision_matmul_log"]
    tampered = graded.results[("attack_cells_tampered", ASSIGNMENT)].notes
    assert any("precision_im2col was missing" in n for n in tampered)
    assert any("precision_fft_answer appeared more than once" in n for n in tampered)
    assert any("precision_winograd_answer had its type" in n for n in tampered)
    escape_nb = autograded(graded, "attack_sandbox_escape")
    assert "could not steal the reference" in cell_text(escape_nb, "precision_im2col")


def test_megabytes_of_printing_are_capped(graded):
    path = graded.grading / "autograded" / "attack_syntax_error" / ASSIGNMENT
    assert (path / f"{ASSIGNMENT}.ipynb").stat().st_size < 2_000_000
    executed = json.dumps(autograded(graded, "attack_syntax_error"))
    assert "output truncated" in executed
    assert "CellTimeoutError" in executed or "KeyboardInterrupt" in executed


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
    report = grade(graded.grading, [ASSIGNMENT], again, LIMITS, workers=1, progress=False)
    assert report.ok
    assert snapshot() == before
    assert "Hidden checks" in feedback_html(graded, "attack_cells_tampered")


@pytest.mark.browser
def test_hostile_feedback_runs_no_script_in_a_browser(graded):
    """The hostile submission's feedback page, opened in headless Chromium: nothing runs."""
    import functools
    import http.server
    import threading

    from browser import Browser, leaves_localhost

    root = graded.grading / "feedback"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = (
            f"http://127.0.0.1:{server.server_address[1]}/attack_hostile_html/"
            f"{ASSIGNMENT}/{ASSIGNMENT}.html"
        )
        with Browser() as browser:
            page = browser.new_page()
            page.goto(url)
            page.wait_for("document.readyState === 'complete'")
            page.eval("new Promise(r => setTimeout(r, 1500))")  # let images fail, timers fire
            assert page.eval("typeof window.__pwned") == "undefined", page.eval("window.__pwned")
            assert "My answer" in page.eval("document.body.innerText")
            assert not [u for u in page.requests() if leaves_localhost(u)]
            # math is typeset by the page's own MathJax copy
            assert page.eval("window.MathJax && window.MathJax.version || ''").startswith("3")
    finally:
        server.shutdown()
