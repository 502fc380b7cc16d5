"""Grade a class: nbgrader autograde + hidden checks, gradebook, feedback, grade table.

Usage (from the repository root)::

    python -m autograder.grade                       # every submission found
    python -m autograder.grade --assignment precision --assignment mnist
    python -m autograder.grade --students alice bob --workers 2

Input: nbgrader's layout ``<grading>/submitted/<student>/<assignment>/<assignment>.ipynb``
(with an optional ``timestamp.txt``), where ``<grading>`` is ``$DNNK_GRADING_DIR``
(default ``build/grading``, git-ignored) or ``--grading-dir``. The release in ``release/``
is the pristine version of every notebook.

Output, in ``<grading>``:

- ``gradebook.db``: nbgrader's gradebook, every point recorded (manual grading with
  nbgrader's formgrader works on it as usual);
- ``autograded/<student>/<assignment>/<assignment>.ipynb``: the executed notebook, with the
  result of every hidden check printed under the task's graded cell;
- ``feedback/<student>/<assignment>/<assignment>.html``: ``nbgrader generate_feedback``;
- ``results/<student>/<assignment>.json``: per-check results (for instructors);
- ``grades.csv``: student x task points, manual points and totals; ``nbgrader_grades.csv``:
  ``nbgrader export``.

Per submission (in worker processes, ``--workers`` at once, default 2):

1. the notebook is canonicalised against the release (deleted, duplicated or retyped
   graded cells repaired; :mod:`autograder.notebooks`);
2. real ``nbgrader autograde`` executes it, in a private course root with a private copy of
   the gradebook, in a sandboxed kernel (:mod:`autograder.kernel`) with the student build
   of ``dnnkernels`` on ``PYTHONPATH``, a per-cell timeout and capped output;
3. the hidden checks (``autograder/hidden/test_<assignment>.py``) run in a trusted pytest
   process against the student's answer cells, which run in a sandboxed runner process
   (:mod:`autograder.student`);
4. the parent process, the only writer of the main gradebook, stores the autograded
   notebook and the scores: each task's graded cell gets the points of its hidden checks
   (the notebook's own visible checks never grant kernel points), every other graded cell
   nbgrader's usual score.

Then ``nbgrader generate_feedback`` and the CSV files. Re-grading replaces earlier results
(same scores, no duplicates). A submission that fails in any way gets zero for what
failed, a note in its feedback, and does not affect the others.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import csv
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from autograder import gradebook, notebooks
from autograder.paths import REPO, grading_dir, release_dir, sandbox_policy
from autograder.student import Payload
from dnnkernels.tasks import ASSIGNMENTS, TASKS, tasks_of

HIDDEN = REPO / "autograder" / "hidden"
KERNEL = REPO / "autograder" / "kernel.py"
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
MAX_NOTEBOOK_BYTES = 50 << 20
MAX_EXTRA_BYTES = 20 << 20


@dataclass
class Options:
    """Limits of one grading run (seconds, bytes)."""

    workers: int = 2
    cell_timeout: int = 120  # nbgrader, per notebook cell
    call_timeout: float = 20.0  # hidden checks, per call of the student's code
    load_timeout: float = 60.0  # hidden checks, per cell while loading the student's code
    memory_bytes: int = 4 << 30  # student processes (kernel, runner)
    output_cap: int = 200_000  # characters one notebook cell may print
    hidden_timeout: float = 1800.0  # whole hidden-check run of one submission


@dataclass
class Job:
    student: str
    assignment: str
    grading: str
    release: str
    template_db: str
    options: Options


@dataclass
class Outcome:
    """What a worker sends back to the parent (the single writer)."""

    student: str
    assignment: str
    status: str  # graded | missing | unreadable | failed
    notebook: str  # autograded notebook (JSON), feedback included
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    timestamp: str | None = None
    seconds: float = 0.0
    log: str = ""

    def task_points(self) -> dict[str, float]:
        points = {t.id: 0.0 for t in tasks_of(self.assignment)}
        for check in self.checks:
            if check.get("task") in points:
                points[check["task"]] += float(check.get("earned", 0.0))
        return points


# ============================================================================ worker side


def _release_notebook(release: Path, assignment: str) -> nbformat.NotebookNode:
    return notebooks.read((release / assignment / f"{assignment}.ipynb").read_bytes())


def _blank(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def _read_submission(path: Path, release_nb) -> tuple[str, nbformat.NotebookNode, list[str]]:
    """(status, canonical notebook, notes) of a submitted notebook file."""
    if not path.is_file():
        return "missing", _blank(release_nb), [f"no {path.name} was submitted: nothing to grade"]
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes (limit {MAX_NOTEBOOK_BYTES})")
        submitted = notebooks.read(path.read_bytes())
        canonical, notes = notebooks.canonicalise(submitted, release_nb)
        nbformat.validate(canonical)
    except Exception as error:  # noqa: BLE001 - any unreadable file
        text = f"{type(error).__name__}: {str(error)[:200]}"
        return "unreadable", _blank(release_nb), [f"{path.name} could not be read ({text})"]
    return "graded", canonical, notes


def _other_notebooks(job: Job, canonical) -> dict[str, str]:
    """The student's canonical notebooks by assignment (for cross-notebook imports)."""
    out = {job.assignment: nbformat.writes(canonical)}
    base = Path(job.grading) / "submitted" / job.student
    for assignment in ASSIGNMENTS:
        if assignment == job.assignment:
            continue
        path = base / assignment / f"{assignment}.ipynb"
        release_path = Path(job.release) / assignment / f"{assignment}.ipynb"
        if not (path.is_file() and release_path.is_file()):
            continue
        status, nb, _ = _read_submission(path, _release_notebook(Path(job.release), assignment))
        if status == "graded":
            out[assignment] = nbformat.writes(nb)
    return out


def _limits(memory: int, file_bytes: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_pids(folder: Path) -> None:
    """Kill the kernels that wrote their pid into ``folder`` (they may outlive nbgrader)."""
    for pid_file in folder.glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError, OSError):
            pass


def _nbgrader_config(root: Path, db: Path, options: Options, extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        # generated by autograder.grade for one run; do not edit
        c = get_config()  # noqa: F821
        c.CourseDirectory.course_id = "dnnkernels"
        c.CourseDirectory.root = {str(root)!r}
        c.CourseDirectory.db_url = {gradebook.db_url(db)!r}
        c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__"]
        c.Execute.timeout = {int(options.cell_timeout)}
        c.Execute.interrupt_on_timeout = True
        c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
        c.LimitOutput.max_lines = 1000
        c.LimitOutput.max_traceback = 100
        c.Autograde.create_student = True
        """
        )
        + extra
    )


def run_nbgrader(job: Job, work: Path, canonical, submitted_dir: Path):
    """Real ``nbgrader autograde`` of one canonical notebook; (notebook or None, note, log)."""
    a, s, options = job.assignment, job.student, job.options
    course = work / "course"
    shutil.copytree(Path(job.release) / a, course / "source" / a)
    target = course / "submitted" / s / a
    target.mkdir(parents=True)
    nbformat.write(canonical, target / f"{a}.ipynb")
    extra_bytes = 0
    for path in sorted(submitted_dir.iterdir()):  # other submitted files (data, timestamp)
        if path.name == f"{a}.ipynb" or path.is_symlink() or not path.is_file():
            continue
        extra_bytes += path.stat().st_size
        if extra_bytes <= MAX_EXTRA_BYTES:
            shutil.copy(path, target / path.name)
    db = course / "gradebook.db"
    shutil.copy(job.template_db, db)
    (course / "nbgrader_config.py").write_text(_nbgrader_config(course, db, options))

    kernel_home = work / "kernel"
    for sub in ("tmp", "ipython", "work", "pids"):
        (kernel_home / sub).mkdir(parents=True)
    for other, text in _other_notebooks(job, canonical).items():
        (kernel_home / "work" / other).mkdir()
        (kernel_home / "work" / other / f"{other}.ipynb").write_text(text)
    spec_dir = work / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, str(KERNEL), "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "env": {"DNNK_KERNEL_PIDS": str(kernel_home / "pids")},
            }
        )
    )
    deny, allow = sandbox_policy(
        extra_deny=[job.grading, str(work / "hidden"), str(db), str(work / "jupyter")]
    )
    sandbox = {
        "deny_read": deny,
        "allow_read": allow,
        "allow_write": [str(course / "autograded"), str(kernel_home / "tmp")],
        "memory_bytes": options.memory_bytes,
        "file_bytes": 50 << 20,
        "output_cap": options.output_cap,
        "threads": 1,
    }
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("JUPYTER", "IPYTHON", "PYTHON", "MPL", "DNNK")):
            del env[key]
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONPATH=str(job.release),
        JUPYTER_PATH=str(work / "jupyter"),
        JUPYTER_CONFIG_DIR=str(work / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
        IPYTHONDIR=str(kernel_home / "ipython"),
        TMPDIR=str(kernel_home / "tmp"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        DNNK_SANDBOX=json.dumps(sandbox),
        DNNKERNELS_STUDENT_WORK=str(kernel_home / "work"),
    )
    if os.environ.get("DNNKERNELS_DATA_DIR"):
        env["DNNKERNELS_DATA_DIR"] = os.environ["DNNKERNELS_DATA_DIR"]
    code_cells = sum(1 for c in canonical.cells if c.cell_type == "code")
    budget = options.cell_timeout * (code_cells + 2) + 120
    log_path = work / "autograde.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbgrader", "autograde", a, "--student", s, "--force"],
            cwd=course,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_limits(options.memory_bytes + (2 << 30), 512 << 20),
        )
        try:
            proc.wait(timeout=budget)
            note = None
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            note = f"executing the notebook took longer than {budget} s and was stopped"
    _kill_pids(kernel_home / "pids")
    log_text = log_path.read_bytes()[-20000:].decode("utf-8", "replace")
    out = course / "autograded" / s / a / f"{a}.ipynb"
    if out.is_file():
        try:
            return notebooks.read(out.read_bytes()), note, log_text
        except Exception as error:  # noqa: BLE001
            note = f"the executed notebook could not be read ({type(error).__name__})"
    if note is None:
        if "DeadKernel" in log_text or "Kernel died" in log_text or "kernel died" in log_text:
            reason = (
                "the kernel died (os._exit, sys.exit in a thread, a crash or the memory limit?)"
            )
        elif "Unresponsive" in log_text or "unresponsive" in log_text:
            reason = "the kernel stopped responding (an infinite loop that ignores interrupts?)"
        else:
            reason = f"nbgrader autograde failed (exit status {proc.returncode})"
        note = f"the notebook could not be executed to the end: {reason}"
    return None, note + "; the hidden checks below still graded your code", log_text


def run_hidden(job: Job, work: Path, canonical, release_nb) -> tuple[list, str | None, str]:
    """The hidden checks of one submission in a trusted pytest process."""
    hidden = work / "hidden"
    (hidden / "tmp").mkdir(parents=True)
    cells, cell_notes = notebooks.payload_cells(canonical, release_nb)
    payload = Payload(
        job.assignment,
        cells,
        cell_notes,
        _other_notebooks(job, canonical),
        deny_read=[job.grading, str(work)],
    )
    payload.dump(hidden / "payload.json")
    results = hidden / "results.json"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        TMPDIR=str(hidden / "tmp"),
        DNNK_CALL_TIMEOUT=str(job.options.call_timeout),
        DNNK_LOAD_TIMEOUT=str(job.options.load_timeout),
        DNNK_RELEASE_DIR=str(job.release),
        DNNK_GRADING_DIR=str(job.grading),
        PYTHONDONTWRITEBYTECODE="1",
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "--tb=short",
        "-c",
        str(HIDDEN / "pytest.ini"),
        "--rootdir",
        str(HIDDEN),
        str(HIDDEN / f"test_{job.assignment}.py"),
        "--dnnk-payload",
        str(hidden / "payload.json"),
        "--dnnk-results",
        str(results),
    ]
    log_path = hidden / "pytest.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, cwd=hidden, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            proc.wait(timeout=job.options.hidden_timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
    log_text = log_path.read_bytes()[-20000:].decode("utf-8", "replace")
    try:
        checks = json.loads(results.read_text())["checks"]
    except (OSError, ValueError, KeyError):
        return [], "the hidden checks could not be run (grader error)", log_text
    note = None
    if any(c.get("grader_error") for c in checks):
        note = "a hidden check failed inside the grader: please tell the instructors"
    return checks, note, log_text


FEEDBACK_HEADER = (
    "Hidden checks of {task}: {earned:g} / {points:g} points\n"
    "(run on other inputs than the visible checks above; they decide this cell's points)\n"
)


def feedback_text(task_id: str, checks: list) -> str:
    """The per-check lines appended under a task's graded cell."""
    mine = [c for c in checks if c.get("task") == task_id]
    earned = sum(float(c.get("earned", 0)) for c in mine)
    points = TASKS[task_id].points
    lines = [FEEDBACK_HEADER.format(task=task_id, earned=earned, points=points)]
    if not mine:
        lines.append("  x no hidden check could run for this task (0 points)\n")
    previous = None
    for c in mine:
        mark = "\u2713" if c.get("outcome") == "passed" else "\u2717"
        text = f"  {mark} {c.get('title', c.get('check'))}"
        if c.get("outcome") != "passed":
            message = c.get("message") or c.get("outcome")
            text += ": same error as above" if message == previous else f": {message}"
            previous = message
        text += f" ({float(c.get('earned', 0)):g} / {float(c.get('points', 0)):g})\n"
        lines.append(text)
    return "".join(lines)


def annotate(nb, assignment: str, checks: list, notes: list[str]) -> None:
    """Append the hidden-check feedback to each task's graded cell; notes on top."""
    homeless = []
    for task in tasks_of(assignment):
        text = feedback_text(task.id, checks)
        cell = next((c for c in nb.cells if notebooks.grade_id(c) == task.id), None)
        if cell is None or cell.cell_type != "code":
            homeless.append(text)
            continue
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
    if notes or homeless:
        body = "**Grader notes**\n\n" + "".join(f"- {n}\n" for n in notes)
        if homeless:
            body += "\n" + "\n".join(f"```\n{t}```" for t in homeless)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(body))


def grade_submission(job: Job) -> Outcome:
    """Grade one submission (runs in a worker process; never raises)."""
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dnnk-grade-"))
    try:
        release = Path(job.release)
        release_nb = _release_notebook(release, job.assignment)
        submitted_dir = Path(job.grading) / "submitted" / job.student / job.assignment
        status, canonical, notes = _read_submission(
            submitted_dir / f"{job.assignment}.ipynb", release_nb
        )
        timestamp = None
        if (submitted_dir / "timestamp.txt").is_file():
            timestamp = (submitted_dir / "timestamp.txt").read_text()[:64].strip() or None
        logs = []
        checks: list = []
        executed = None
        if status == "graded":
            executed, note, log_text = run_nbgrader(job, work, canonical, submitted_dir)
            logs.append(log_text)
            if note:
                notes.append(note)
            checks, note, log_text = run_hidden(job, work, canonical, release_nb)
            logs.append(log_text)
            if note:
                notes.append(note)
        if executed is None:
            executed = _blank(canonical)
        annotate(executed, job.assignment, checks, notes)
        return Outcome(
            job.student,
            job.assignment,
            status,
            nbformat.writes(executed),
            checks,
            notes,
            timestamp,
            time.monotonic() - start,
            "\n".join(logs)[-40000:],
        )
    except Exception as error:  # noqa: BLE001 - one submission never stops the others
        release_nb = _release_notebook(Path(job.release), job.assignment)
        note = f"the grader failed on this submission ({type(error).__name__}: {error})"
        nb = _blank(release_nb)
        annotate(nb, job.assignment, [], [note])
        return Outcome(
            job.student,
            job.assignment,
            "failed",
            nbformat.writes(nb),
            [],
            [note],
            None,
            time.monotonic() - start,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ============================================================================ parent side


def find_jobs(grading: Path, assignments, students) -> list[tuple[str, str]]:
    """(student, assignment) pairs with a submission folder."""
    submitted = grading / "submitted"
    pairs = []
    if not submitted.is_dir():
        return pairs
    for student_dir in sorted(submitted.iterdir()):
        if not student_dir.is_dir() or (students and student_dir.name not in students):
            continue
        if not STUDENT_ID.match(student_dir.name):
            print(f"skipping {student_dir}: not a valid student id", file=sys.stderr)
            continue
        for assignment in assignments:
            if (student_dir / assignment).is_dir():
                pairs.append((student_dir.name, assignment))
    return pairs


def _parse_timestamp(text: str | None):
    if not text:
        return None
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text)
    except Exception:  # noqa: BLE001 - a bad timestamp file counts as none
        return None


def store(grading: Path, outcome: Outcome) -> None:
    """Write one outcome: autograded notebook, results JSON, gradebook (single writer)."""
    s, a = outcome.student, outcome.assignment
    folder = grading / "autograded" / s / a
    if folder.exists():
        for path in folder.rglob("*"):
            if path.is_file():
                path.chmod(0o644)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / f"{a}.ipynb").write_text(outcome.notebook)
    stamp = grading / "submitted" / s / a / "timestamp.txt"
    if stamp.is_file():
        shutil.copy(stamp, folder / "timestamp.txt")
    results = grading / "results" / s
    results.mkdir(parents=True, exist_ok=True)
    record = asdict(outcome)
    del record["notebook"]
    record["task_points"] = outcome.task_points()
    (results / f"{a}.json").write_text(json.dumps(record, indent=1))
    nb = notebooks.read(outcome.notebook)
    with warnings.catch_warnings(), gradebook.open_gradebook(grading / "gradebook.db") as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy chatter inside nbgrader's API
        gradebook.record_submission(
            gb, s, a, nb, outcome.task_points(), _parse_timestamp(outcome.timestamp)
        )


def _nbgrader(grading: Path, args: list[str], options: Options) -> subprocess.CompletedProcess:
    """Run an nbgrader command on the grading folder (feedback, export)."""
    with tempfile.TemporaryDirectory(prefix="dnnk-nbgrader-") as tmp:
        Path(tmp, "nbgrader_config.py").write_text(
            _nbgrader_config(grading, grading / "gradebook.db", options)
        )
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["JUPYTER_CONFIG_DIR"] = str(Path(tmp) / "jupyter-config")
        return subprocess.run(
            [sys.executable, "-m", "nbgrader", *args],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )


def generate_feedback(grading: Path, assignment: str, options: Options) -> None:
    """``nbgrader generate_feedback <assignment> --force`` on every autograded submission."""
    result = _nbgrader(grading, ["generate_feedback", assignment, "--force"], options)
    if result.returncode != 0:
        print(
            f"nbgrader generate_feedback {assignment} reported errors:\n{result.stderr[-3000:]}",
            file=sys.stderr,
        )


def grade_table(grading: Path, assignments) -> list[dict]:
    """One row per student: points per task, manual points, totals (from the gradebook)."""
    rows = []
    with warnings.catch_warnings(), gradebook.open_gradebook(grading / "gradebook.db") as gb:
        warnings.simplefilter("ignore")
        for student in sorted(s.id for s in gb.students):
            row = {"student": student}
            manual = auto = pending = 0.0
            graded_any = False
            for assignment in assignments:
                try:
                    cells = gradebook.scores(gb, assignment, student)
                except Exception:  # noqa: BLE001 - no submission of this assignment
                    cells = {}
                graded_any |= bool(cells)
                for task in tasks_of(assignment):
                    info = cells.get(task.id)
                    row[task.id] = info["score"] if info else 0.0
                    auto += row[task.id]
                for gid, info in cells.items():
                    if gid not in TASKS:
                        manual += info["score"] or 0.0
                        pending += 1 if info["needs_manual"] else 0
            if not graded_any:
                continue
            row["manual"] = manual
            row["manual_pending"] = int(pending)
            row["total"] = auto + manual
            rows.append(row)
    return rows


def write_table(rows: list[dict], assignments, path: Path) -> None:
    columns = ["student"] + [t.id for a in assignments for t in tasks_of(a)]
    columns += ["manual", "manual_pending", "total"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})


def format_table(rows: list[dict], assignments) -> str:
    """The grade table as text: one column per task (max points in the header)."""
    tasks = [t for a in assignments for t in tasks_of(a)]
    header = ["student"] + [f"{t.id} /{t.points}" for t in tasks] + ["manual", "total"]
    body = [
        [r["student"]]
        + [f"{r.get(t.id, 0):g}" for t in tasks]
        + [f"{r['manual']:g} (+{r['manual_pending']} to grade)", f"{r['total']:g}"]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)) for line in [header] + body
    ]
    return "\n".join(lines)


def grade(
    grading: Path | None = None,
    assignments=None,
    students=None,
    options: Options | None = None,
    release: Path | None = None,
    feedback: bool = True,
    progress: bool = True,
) -> dict:
    """Grade every matching submission; returns ``{(student, assignment): Outcome}``.

    See the module docstring. ``grading`` defaults to :func:`autograder.paths.grading_dir`,
    ``release`` to :func:`autograder.paths.release_dir`.
    """
    from tqdm import tqdm

    grading = Path(grading or grading_dir()).resolve()
    release = Path(release or release_dir()).resolve()
    options = options or Options()
    assignments = [
        a for a in (assignments or ASSIGNMENTS) if (release / a / f"{a}.ipynb").is_file()
    ]
    pairs = find_jobs(grading, assignments, students)
    if not pairs:
        print(f"no submissions under {grading / 'submitted'} for {', '.join(assignments)}")
        return {}
    templates = grading / ".templates"
    templates.mkdir(parents=True, exist_ok=True)
    for assignment in sorted({a for _, a in pairs}):
        release_nb = _release_notebook(release, assignment)
        gradebook.sync_assignment(grading / "gradebook.db", assignment, release_nb)
        template = templates / f"{assignment}.db"
        template.unlink(missing_ok=True)
        gradebook.sync_assignment(template, assignment, release_nb)
    _warm_matplotlib()
    jobs = [
        Job(s, a, str(grading), str(release), str(templates / f"{a}.db"), options) for s, a in pairs
    ]
    outcomes: dict = {}
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=max(1, options.workers), mp_context=context) as pool:
        futures = {pool.submit(grade_submission, job): job for job in jobs}
        bar = tqdm(
            cf.as_completed(futures),
            total=len(jobs),
            desc="grading",
            unit="submission",
            disable=not progress,
        )
        for future in bar:
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - a dead worker fails one submission
                note = f"the grader failed on this submission ({type(error).__name__})"
                nb = _blank(_release_notebook(release, job.assignment))
                annotate(nb, job.assignment, [], [note])
                outcome = Outcome(
                    job.student, job.assignment, "failed", nbformat.writes(nb), notes=[note]
                )
            store(grading, outcome)
            outcomes[(job.student, job.assignment)] = outcome
            bar.set_postfix_str(f"{job.student}/{job.assignment}: {outcome.status}")
    if feedback:
        for assignment in sorted({a for _, a in pairs}):
            generate_feedback(grading, assignment, options)
    rows = grade_table(grading, assignments)
    write_table(rows, assignments, grading / "grades.csv")
    _nbgrader(grading, ["export", "--to", str(grading / "nbgrader_grades.csv")], options)
    return outcomes


def _warm_matplotlib() -> None:
    """Build matplotlib's font cache once, outside any sandbox (sandboxes cannot write it)."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot",
        ],
        capture_output=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.grade",
        description="Grade nbgrader submissions with the hidden checks (see autograder/README.md).",
    )
    parser.add_argument(
        "--assignment",
        action="extend",
        nargs="+",
        choices=ASSIGNMENTS,
        help="assignment to grade (repeatable; default: all)",
    )
    parser.add_argument("--students", nargs="+", help="student ids to grade (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="submissions graded at once")
    parser.add_argument(
        "--grading-dir",
        type=Path,
        help="grading folder (default $DNNK_GRADING_DIR or build/grading)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=int,
        default=Options.cell_timeout,
        help="seconds per notebook cell (nbgrader)",
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=Options.call_timeout,
        help="seconds per call of the student's code (hidden checks)",
    )
    parser.add_argument("--no-feedback", action="store_true", help="skip the HTML feedback")
    args = parser.parse_args(argv)
    options = Options(
        workers=args.workers, cell_timeout=args.cell_timeout, call_timeout=args.call_timeout
    )
    grading = (args.grading_dir or grading_dir()).resolve()
    assignments = args.assignment or list(ASSIGNMENTS)
    start = time.monotonic()
    outcomes = grade(grading, assignments, args.students, options, feedback=not args.no_feedback)
    if not outcomes:
        return 0
    elapsed = time.monotonic() - start
    rows = grade_table(grading, assignments)
    print(format_table(rows, [a for a in assignments if any(a == x for _, x in outcomes)]))
    print(
        f"\n{len(outcomes)} submission(s) in {elapsed:.0f} s "
        f"({60 * len(outcomes) / elapsed:.1f} per minute, {options.workers} workers)"
    )
    print(f"grade table: {grading / 'grades.csv'}; feedback: {grading / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
