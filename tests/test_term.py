"""A term, as an instructor runs it: real nbgrader, the real grader and sandbox, real formgrader.

The commands are those of book/guide/instructors.md ("A term"), run as subprocesses from the
repository root with a grading folder of the test's own (``DNNK_GRADING_DIR``) and an
exchange of its own (``DNNK_EXCHANGE``). A small class on ``svd_rank`` (the smallest
assignment: 5 automatic points, 15 graded by hand, due 2027-02-19 23:59 UTC):

- alice, bob, carol hand in through Canvas: one "Download Submissions" zip, collected with
  ``nbgrader zip_collect``; bob's file is flagged LATE (2 hours late: 10 % off), carol
  resubmitted (``svd_rank-1.ipynb``, the solution, replaces her first, untouched attempt);
- dave fetches and submits through nbgrader's exchange, the instructor collects;
- erin is on the roster and hands in nothing (missing, never 0).

Then the grader, a manual grade and comment through formgrader's HTTP API on a real
``jupyter server`` (on 127.0.0.1, always shut down), formgrader's Autograde refused, a
regrade (the manual grade stays, not flagged again), feedback released and fetched by
dave, and the Canvas and Gradescope exports parsed back with the layouts they document.

The fast tests at the end check the gradebook semantics on precision without grading
(extra credit, a regrade keeping a hand grade, cells added under graded submissions).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from autograder import gradebook, notebooks
from autograder.demo import solution_notebook
from autograder.paths import REPO, release_dir

ASSIGNMENT = "svd_rank"
DUE = datetime(2027, 2, 19, 23, 59, tzinfo=UTC)
AUTO = 5.0  # svd_rank_errors 3 + svd_rank_flops 2
MANUAL_MAX = 15.0  # the six hand-graded cells of svd_rank
MANUAL_CELL = "svd_rank_synthetic"  # 2 points, graded by hand in the test
ROSTER = [
    # student_id, first_name, last_name, email, lms_user_id, section
    ("alice", "Alice", "Smith", "alice@uni.example", "1001", "A"),
    ("bob", "Bob", "Jones", "bob@uni.example", "1002", "A"),
    ("carol", "Carol", "Brown", "carol@uni.example", "1003", "B"),
    ("dave", "Dave", "Lee", "dave@uni.example", "1004", "B"),
    ("erin", "Erin", "Wu", "erin@uni.example", "1005", "B"),
]

needs_release = pytest.mark.skipif(
    not (release_dir() / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file(),
    reason="release/ is not built (make release)",
)


def _env(term: Path) -> dict:
    env = dict(os.environ)
    env.update(
        DNNK_GRADING_DIR=str(term / "grading"),
        DNNK_EXCHANGE=str(term / "exchange"),
        HOME=str(term / "home"),
        JUPYTER_CONFIG_DIR=str(term / "home" / ".jupyter"),
        JUPYTER_RUNTIME_DIR=str(term / "home" / "runtime"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    return env


def run(term: Path, *args: str, cwd: Path = REPO, timeout: float = 900) -> str:
    """Run one command of the guide; its output (stdout + stderr); fails on a non-zero exit."""
    argv = [sys.executable, "-m", *args] if args[0] != "nbgrader" else [
        sys.executable, "-m", "nbgrader", *args[1:]
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=cwd, env=_env(term), capture_output=True, text=True, timeout=timeout
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{out[-6000:]}"
    return out


def _zip_time(moment: datetime) -> tuple:
    local = datetime.fromtimestamp(moment.timestamp())  # zip times are local times
    return local.timetuple()[:6]


def canvas_download(path: Path, files: dict[str, tuple[nbformat.NotebookNode, datetime]]):
    """A Canvas "Download Submissions" zip: ``name -> (notebook, submission time)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, (nb, moment) in files.items():
            info = zipfile.ZipInfo(name, date_time=_zip_time(moment))
            archive.writestr(info, nbformat.writes(nb))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Formgrader:
    """``python -m autograder.formgrader`` on 127.0.0.1, driven over HTTP (bounded waits)."""

    def __init__(self, term: Path):
        self.port, self.token = _free_port(), "term-test-token"
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(term / "formgrader.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autograder.formgrader",
                f"--port={self.port}",
                f"--IdentityProvider.token={self.token}",
            ],
            cwd=REPO,
            env=_env(term),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def request(self, method: str, path: str, body=None, timeout: float = 60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8")

    def json(self, method: str, path: str, body=None):
        status, text = self.request(method, path, body)
        assert status == 200, f"{method} {path}: {status}"
        return json.loads(text)

    def wait_up(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "formgrader exited: see formgrader.log"
            try:
                if self.request("GET", "/formgrader/api/status", timeout=5)[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        raise TimeoutError(f"formgrader did not answer on {self.base} in {seconds:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()


def _grade(term: Path, student: str, cell: str):
    with (
        warnings.catch_warnings(),
        gradebook.open_gradebook(term / "grading" / "gradebook.db") as gb,
    ):
        warnings.simplefilter("ignore")
        grade = gb.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student)
        comment = None
        if cell == MANUAL_CELL:  # an answer cell: it has a comment
            comment = gb.find_comment(cell, ASSIGNMENT, ASSIGNMENT, student).manual_comment
        submission = gb.find_submission(ASSIGNMENT, student)
        return {
            "auto": grade.auto_score,
            "manual": grade.manual_score,
            "needs_manual": grade.needs_manual_grade,
            "comment": comment,
            "timestamp": submission.timestamp,
            "penalty": submission.late_submission_penalty,
        }


@needs_release
@pytest.mark.slow
def test_a_term(tmp_path):
    term = tmp_path
    (term / "home").mkdir()
    grading = term / "grading"
    grading.mkdir()
    with open(grading / "roster.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["student_id", "first_name", "last_name", "email", "lms_user_id", "section"]
        )
        writer.writerows(ROSTER)
    solution = solution_notebook(ASSIGNMENT)
    released = notebooks.read_release(release_dir(), ASSIGNMENT)

    # ---- release through nbgrader's exchange; dave fetches, works, submits ----------------
    run(term, "nbgrader", "release_assignment", ASSIGNMENT, "--force")
    dave = term / "dave"
    dave.mkdir()
    student_flags = ["--course=dnnkernels", f"--Exchange.root={term / 'exchange'}"]
    run(term, "nbgrader", "fetch_assignment", ASSIGNMENT, *student_flags, cwd=dave)
    fetched = dave / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert fetched.read_bytes() == (release_dir() / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()
    nbformat.write(solution, fetched)
    run(term, "nbgrader", "submit", ASSIGNMENT, "--student=dave", *student_flags, cwd=dave)
    run(term, "nbgrader", "collect", ASSIGNMENT)
    assert (grading / "submitted" / "dave" / ASSIGNMENT / "submission_secret.txt").is_file()

    # ---- Canvas: one download, collected by zip_collect ----------------------------------
    before = DUE - timedelta(days=1)
    canvas_download(
        grading / "downloaded" / ASSIGNMENT / "archive" / "submissions.zip",
        {
            f"smithalice_1001_5001_{ASSIGNMENT}.ipynb": (solution, before),
            f"jonesbob_LATE_1002_5002_{ASSIGNMENT}.ipynb": (solution, DUE + timedelta(hours=2)),
            f"browncarol_1003_5003_{ASSIGNMENT}.ipynb": (released, before - timedelta(days=1)),
            f"browncarol_1003_5004_{ASSIGNMENT}-1.ipynb": (solution, before),
        },
    )
    out = run(term, "nbgrader", "zip_collect", ASSIGNMENT, "--force")
    assert "3 files collected, 1 files skipped" in out  # carol's first attempt
    for student in ("alice", "bob", "carol"):
        folder = grading / "submitted" / student / ASSIGNMENT
        assert (folder / f"{ASSIGNMENT}.ipynb").is_file(), out[-3000:]
        assert (folder / "timestamp.txt").is_file()
    carol = notebooks.read(
        (grading / "submitted" / "carol" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()
    )
    assert nbformat.writes(carol) == nbformat.writes(solution)  # the resubmission won

    # ---- grade ------------------------------------------------------------------------------
    out = run(term, "autograder.grade", "--assignment", ASSIGNMENT)
    assert "missing (nothing recorded): erin/svd_rank" in out
    assert "timed out (time budget spent): none" in out and "failed: none" in out
    alice, bob = _grade(term, "alice", "svd_rank_errors"), _grade(term, "bob", "svd_rank_errors")
    assert alice["auto"] == 3.0 and alice["penalty"] == 0.0
    assert bob["timestamp"].replace(tzinfo=UTC) == DUE + timedelta(hours=2)
    assert bob["penalty"] == pytest.approx(0.1 * AUTO)  # 1 started day late: 10 % of 5
    manual = _grade(term, "alice", MANUAL_CELL)
    assert manual["manual"] is None and manual["needs_manual"]
    for student in ("alice", "bob", "carol", "dave"):
        assert (grading / "autograded" / student / ASSIGNMENT / "submission_secret.txt").is_file()
    with open(grading / "grades.csv", newline="") as handle:
        table = {r["student"]: r for r in csv.DictReader(handle)}
    assert table["erin"]["svd_rank_total"] == "missing"
    assert table["alice"]["precision_total"] == "missing"  # every assignment's columns
    assert float(table["alice"]["svd_rank_manual_to_grade"]) == MANUAL_MAX  # points, not cells

    # ---- grade by hand in formgrader (HTTP API of a real jupyter server) -----------------
    fg = Formgrader(term)
    try:
        fg.wait_up()
        notebooks_ = fg.json(
            "GET", f"/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}"
        )
        by_student = {n["student"]: n for n in notebooks_}
        assert set(by_student) == {"alice", "bob", "carol", "dave"}
        sub_id = by_student["alice"]["id"]
        grades = fg.json("GET", f"/formgrader/api/grades?submission_id={sub_id}")
        grade = next(g for g in grades if g["name"] == MANUAL_CELL)
        fg.json("PUT", f"/formgrader/api/grade/{grade['id']}", {"manual_score": 2.0})
        comments = fg.json("GET", f"/formgrader/api/comments?submission_id={sub_id}")
        comment = next(c for c in comments if c["name"] == MANUAL_CELL)
        fg.json("PUT", f"/formgrader/api/comment/{comment['id']}", {"manual_comment": "Clear."})
        # the Autograde button: refused, naming the kit's grader; nothing changed
        refused = fg.json("POST", f"/formgrader/api/submission/{ASSIGNMENT}/alice/autograde", {})
        assert not refused["success"]
        assert "python -m autograder.grade" in json.dumps(refused), refused
        assert _grade(term, "alice", "svd_rank_errors")["auto"] == 3.0
        alice_autograded = grading / "autograded" / "alice" / ASSIGNMENT
        assert (alice_autograded / f"{ASSIGNMENT}.ipynb").is_file()  # nothing removed
        assert (
            "Hidden checks of svd_rank_errors"
            in (alice_autograded / f"{ASSIGNMENT}.ipynb").read_text()
        )
        # the formgrade page loads MathJax from the server itself, not a CDN
        status, page = fg.request("GET", f"/formgrader/submissions/{sub_id}")
        assert status == 200 and "/dnnk/mathjax.js" in page and "cdnjs" not in page
        status, script = fg.request("GET", "/dnnk/mathjax.js")
        assert status == 200 and len(script) > 500_000
    finally:
        fg.stop()
    assert _grade(term, "alice", MANUAL_CELL)["manual"] == 2.0

    # ---- regrade: the hand grade and comment stay, not flagged again ------------------------
    run(term, "autograder.grade", "--assignment", ASSIGNMENT)
    kept = _grade(term, "alice", MANUAL_CELL)
    assert kept["manual"] == 2.0 and not kept["needs_manual"] and kept["comment"] == "Clear."

    # ---- feedback: released, fetched by dave -----------------------------------------------
    run(term, "nbgrader", "release_feedback", ASSIGNMENT)
    run(term, "nbgrader", "fetch_feedback", ASSIGNMENT, "--student=dave", *student_flags, cwd=dave)
    pages = list((dave / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
    assert len(pages) == 1, list(dave.rglob("*"))
    text = pages[0].read_text("utf-8")
    assert "Not graded yet (2 points)" in text and "cdnjs" not in text
    assert f"(Score: {AUTO:.1f} / {AUTO + MANUAL_MAX:.1f}" in text

    # ---- export, parsed back with each LMS's layout ----------------------------------------
    expected = {"alice": AUTO + 2.0, "bob": AUTO * 0.9, "carol": AUTO, "dave": AUTO, "erin": None}
    run(term, "autograder.export", "--format", "canvas")
    with open(grading / "canvas_grades.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    column = header.index(ASSIGNMENT)
    assert rows[1][0] == "Points Possible" and float(rows[1][column]) == AUTO + MANUAL_MAX
    canvas = {r[2]: r for r in rows[2:]}
    for sid, first, last, email, lms, section in ROSTER:
        row = canvas[sid]
        assert row[:5] == [f"{last}, {first}", lms, sid, email, section]
        want = expected[sid]
        assert (row[column] == "") if want is None else float(row[column]) == pytest.approx(want)
    run(term, "autograder.export", "--format", "gradescope")
    with open(grading / "gradescope_grades.csv", newline="") as handle:
        gradescope = {r["SID"]: r for r in csv.DictReader(handle)}
    for sid, first, last, email, *_ in ROSTER:
        row = gradescope[sid]
        assert row["Name"] == f"{first} {last}" and row["Email"] == email
        want = expected[sid]
        value = row[ASSIGNMENT]
        assert (value == "") if want is None else float(value) == pytest.approx(want)
    # the grade table, rebuilt from the gradebook after the hand grading, without regrading
    run(term, "autograder.export", "--format", "csv")
    with open(grading / "grades.csv", newline="") as handle:
        table = {r["student"]: r for r in csv.DictReader(handle)}
    assert float(table["alice"]["svd_rank_manual"]) == 2.0
    assert float(table["alice"]["svd_rank_manual_to_grade"]) == MANUAL_MAX - 2.0
    assert table["erin"]["svd_rank_total"] == "missing"


# ============================================================================ gradebook, fast


def _precision():
    return notebooks.read_release(release_dir(), "precision")


@pytest.mark.skipif(
    not (release_dir() / "precision" / "precision.ipynb").is_file(), reason="no release"
)
def test_extra_credit_and_kept_manual_grades(tmp_path):
    """Precision: 29 regular points + 4 bonus; a regrade keeps an unchanged hand grade."""
    db = tmp_path / "gradebook.db"
    release = _precision()
    gradebook.sync_assignment(db, "precision", release)
    with gradebook.open_gradebook(db) as gb:
        assert gb.find_notebook("precision", "precision").max_score == 29.0
    answer = copy.deepcopy(release)
    for cell in answer.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "precision_float_discussion":
            cell.source = "Float formats round every product."
    points = {
        "precision_im2col": 4.0,
        "precision_winograd": 4.0,
        "precision_fft": 0.0,
        "precision_matmul_svd": 3.0,
        "precision_matmul_log": 3.0,
        "precision_matmul_log_approx": 2.0,
    }
    gradebook.record_submission(db, "s1", "precision", answer, points, None, release)
    with gradebook.open_gradebook(db) as gb:
        bonus = gb.find_grade("precision_matmul_log_approx", "precision", "precision", "s1")
        assert (bonus.auto_score, bonus.extra_credit, bonus.max_score) == (0.0, 2.0, 0.0)
        nb = gb.find_submission_notebook("precision", "precision", "s1")
        assert (nb.score, nb.max_score) == (16.0, 29.0)  # 14 regular + 2 extra credit
        manual = gb.find_grade("precision_float_discussion", "precision", "precision", "s1")
        assert manual.needs_manual_grade and manual.auto_score is None
        manual.manual_score = 2.5
        manual.needs_manual_grade = False
        gb.db.commit()
    # a task without hidden-check results earns nothing, whatever the visible checks say
    # (the release's check cells have no error output: nbgrader alone would give full points)
    gradebook.record_submission(db, "s2", "precision", release, {}, None, release)
    with gradebook.open_gradebook(db) as gb:
        assert gb.find_submission_notebook("precision", "precision", "s2").score == 0.0
    # regrade, same answer: kept, not flagged; changed answer: kept, flagged for review
    gradebook.record_submission(db, "s1", "precision", answer, points, None, release, answer)
    with gradebook.open_gradebook(db) as gb:
        manual = gb.find_grade("precision_float_discussion", "precision", "precision", "s1")
        assert manual.manual_score == 2.5 and not manual.needs_manual_grade
    changed = copy.deepcopy(answer)
    for cell in changed.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "precision_float_discussion":
            cell.source += " And sums."
    gradebook.record_submission(db, "s1", "precision", changed, points, None, release, answer)
    with gradebook.open_gradebook(db) as gb:
        manual = gb.find_grade("precision_float_discussion", "precision", "precision", "s1")
        assert manual.manual_score == 2.5 and manual.needs_manual_grade


@pytest.mark.skipif(
    not (release_dir() / "precision" / "precision.ipynb").is_file(), reason="no release"
)
def test_a_cell_added_under_graded_submissions_keeps_the_grades(tmp_path):
    db = tmp_path / "gradebook.db"
    release = _precision()
    gradebook.sync_assignment(db, "precision", release)
    points = {t: 1.0 for t in ("precision_im2col", "precision_winograd")}
    gradebook.record_submission(db, "s1", "precision", release, points, None, release)
    grown = copy.deepcopy(release)
    cell = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE")
    cell.metadata["nbgrader"] = {
        "grade": True, "solution": True, "locked": False, "points": 2,
        "grade_id": "precision_new_question", "schema_version": 3,
    }  # fmt: skip
    grown.cells.append(cell)
    assert gradebook.sync_assignment(db, "precision", grown)
    with gradebook.open_gradebook(db) as gb:
        assert gb.find_notebook("precision", "precision").max_score == 31.0
        kept = gb.find_grade("precision_im2col", "precision", "precision", "s1")
        assert kept.auto_score == 1.0
        new = gb.find_grade("precision_new_question", "precision", "precision", "s1")
        assert new.score == 0.0


# ============================================================================ the guide


def guide_commands() -> list[list[str]]:
    """The commands of the guide's "A term" section (code blocks), as argument lists."""
    text = (REPO / "book" / "guide" / "instructors.md").read_text()
    section = text.split("## A term", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.append(shlex.split(line))
    return commands


def test_the_guide_runs_the_commands_of_the_term_test():
    """Every command of the guide's term is one this test runs (same module, arguments)."""
    source = re.sub(r"\(\s+", "(", re.sub(r"\s+", " ", Path(__file__).read_text()))
    commands = guide_commands()
    assert len(commands) >= 10, commands
    for argv in commands:
        if argv[:2] == [".venv/bin/python", "-m"]:
            argv = argv[2:]
        assert argv[0] in ("nbgrader", "autograder.grade", "autograder.export",
                           "autograder.formgrader"), argv  # fmt: skip
        if argv[0] == "autograder.formgrader":
            assert '"autograder.formgrader", f"--port={self.port}"' in source
            continue
        args = []
        for token in argv:
            if token.startswith(("--course", "--port")):
                break  # the student's flags: student_flags in the test
            args.append("ASSIGNMENT" if token == ASSIGNMENT else f'"{token}"')
        call = "run(term, " + ", ".join(args)
        assert call in source, f"the guide runs {' '.join(argv)}; the term test does not ({call})"
