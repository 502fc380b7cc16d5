"""Grade a class: hidden checks and nbgrader, each submission in its sandbox, on Dask.

Usage (from the repository root)::

    python -m autograder.grade                           # every submission, local cluster
    python -m autograder.grade --assignment precision --students alice bob --workers 2
    python -m autograder.grade --scheduler tcp://HOST:8786   # an existing Dask cluster

Input: nbgrader's layout ``<grading>/submitted/<student>/<assignment>/<assignment>.ipynb``
(with an optional ``timestamp.txt``), where ``<grading>`` is ``$DNNK_GRADING_DIR`` (default
``build/grading``, git-ignored) or ``--grading-dir``. The release in ``release/`` is the
pristine version of every notebook.

Output, in ``<grading>``, written by this process only (Dask workers return records):

- ``gradebook.db``: nbgrader's gradebook, every point recorded (manual grading with
  nbgrader's formgrader works on it as usual);
- ``autograded/<student>/<assignment>/<assignment>.ipynb``: the executed, sanitized
  notebook, with the result of every hidden check printed under the task's graded cell;
- ``feedback/<student>/<assignment>/<assignment>.html``: nbgrader's feedback;
- ``results/<student>/<assignment>.json``: per-check results, notes, logs and stage times;
- ``grades.csv``: student x task points, manual points and totals; ``nbgrader_grades.csv``:
  ``nbgrader export``.

How one submission is graded: :mod:`autograder.job`. Where student code runs:
:mod:`autograder.sandbox`. The command exits with status 1 when a submission could not be
graded (it is listed, and no grade is recorded for it), when the trusted files changed
during the run, or when the sandbox cannot be built (it says why).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder import engine, feedback, gradebook, integrity, notebooks, sandbox, submission
from autograder.course import Roster, roster, sync_roster
from autograder.course import load as load_course
from autograder.export import course_assignments, format_table, grade_table, write_table
from autograder.job import Job, Result, grade_job, trusted_roots
from autograder.limits import Limits
from autograder.paths import grading_dir, release_dir
from dnnkernels.tasks import ASSIGNMENTS

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")


@dataclass
class RunReport:
    """What a grading run did."""

    results: dict = field(default_factory=dict)  #: (student, assignment) -> Result
    failures: list = field(default_factory=list)  #: engine.Failure
    #: roster students without a submission folder for a graded assignment
    absent: list = field(default_factory=list)
    rows: list = field(default_factory=list)  #: the grade table after the run
    problems: list = field(default_factory=list)  #: integrity problems (the run is void)
    seconds: float = 0.0
    #: client-side stage -> {"wall": s, "cpu": s} (CPU of this process and its reaped
    #: children: local workers, their sandboxes, nbgrader's subprocesses)
    timings: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.problems

    def with_status(self, status: str) -> list[str]:
        return sorted(f"{s}/{a}" for (s, a), r in self.results.items() if r.status == status)

    def summary(self) -> str:
        """What every run ends with: counts, then missing, unreadable, timed-out, failed."""
        graded = len(self.with_status("graded"))
        lines = [
            f"{graded} graded, {len(self.results) - graded} not gradable, "
            f"{len(self.failures)} failed"
        ]
        missing = sorted(set(self.with_status("missing")) | set(self.absent))
        lines.append(f"missing (nothing recorded): {', '.join(missing) or 'none'}")
        if self.with_status("unreadable"):
            lines.append(f"unreadable: {', '.join(self.with_status('unreadable'))}")
        spent = sorted(f"{s}/{a}" for (s, a), r in self.results.items() if r.budget_spent)
        lines.append(f"timed out (time budget spent): {', '.join(spent) or 'none'}")
        if not self.failures:
            lines.append("failed: none")
        for failure in self.failures:
            lines.append(
                f"FAILED (not graded, nothing recorded): {failure.student}/{failure.assignment}: "
                f"{failure.reason}"
            )
        lines += [f"PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


def process_cpu() -> float:
    """User + system CPU of this process and of its reaped descendants (``getrusage``)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class _Timed:
    """Wall and CPU time of a block of the client, added to ``timings[name]``."""

    def __init__(self, timings: dict, name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> _Timed:
        self.wall, self.cpu = time.monotonic(), process_cpu()
        return self

    def __exit__(self, *exc) -> None:
        entry = self.timings.setdefault(self.name, {"wall": 0.0, "cpu": 0.0})
        entry["wall"] += time.monotonic() - self.wall
        entry["cpu"] += process_cpu() - self.cpu


# ============================================================================ jobs


def find_jobs(grading: Path, assignments, students) -> list[tuple[str, str]]:
    """(student, assignment) pairs with a submission folder (never followed through a link)."""
    submitted = grading / "submitted"
    pairs = []
    if not submitted.is_dir():
        return pairs
    for student_dir in sorted(submitted.iterdir()):
        if student_dir.is_symlink() or not student_dir.is_dir():
            continue
        if students and student_dir.name not in students:
            continue
        if not STUDENT_ID.match(student_dir.name):
            print(f"skipping {student_dir}: not a valid student id", file=sys.stderr)
            continue
        for assignment in assignments:
            folder = student_dir / assignment
            if folder.is_dir() and not folder.is_symlink():
                pairs.append((student_dir.name, assignment))
    return pairs


def build_job(grading: Path, student: str, assignment: str, limits: Limits, digest: str) -> Job:
    """Read one submission (and the student's other notebooks) into a job."""
    base = grading / "submitted" / student
    sub = submission.read(base / assignment, f"{assignment}.ipynb", limits)
    others = {}
    for other in ASSIGNMENTS:
        if other != assignment and (release_dir() / other / f"{other}.ipynb").is_file():
            extra = submission.read(base / other, f"{other}.ipynb", limits)
            if extra.notebook is not None:
                others[other] = extra.notebook
    return Job(student, assignment, sub, others, limits, digest)


# ============================================================================ the single writer


def _parse_timestamp(text: str | None):
    if not text:
        return None
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text)
    except Exception:  # noqa: BLE001 - a bad timestamp file counts as none
        return None


def store(grading: Path, record: dict) -> Result:
    """Write one result: autograded notebook, results JSON, gradebook."""
    result = Result(**record)
    s, a = result.student, result.assignment
    if not STUDENT_ID.match(s) or a not in ASSIGNMENTS:
        raise ValueError(f"result for an unexpected submission {s!r}/{a!r}")
    folder = grading / "autograded" / s / a
    previous = secret = None
    if (folder / f"{a}.ipynb").is_file():
        try:
            previous = notebooks.read((folder / f"{a}.ipynb").read_bytes())
        except Exception:  # noqa: BLE001 - an unreadable earlier result: nothing to compare
            previous = None
    if (folder / "submission_secret.txt").is_file():
        secret = (folder / "submission_secret.txt").read_text().strip() or None
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    nb = notebooks.read(result.notebook)
    (folder / f"{a}.ipynb").write_text(result.notebook)
    if result.timestamp:
        (folder / "timestamp.txt").write_text(result.timestamp + "\n")
    # nbgrader's release_feedback needs the secret of every submission: the one `nbgrader
    # submit` made, else (zip_collect) the one given before, else a new one (the feedback is
    # then released under a hash no student holds: return it through the LMS)
    secret = result.secret or secret or secrets.token_hex(64)
    (folder / "submission_secret.txt").write_text(secret)
    results = grading / "results" / s
    results.mkdir(parents=True, exist_ok=True)
    data = result.as_dict()
    del data["notebook"]
    data["task_points"] = result.task_points()
    (results / f"{a}.json").write_text(json.dumps(data, indent=1))
    if result.status == "missing":
        # nothing submitted: the student is known, no submission is recorded (every table
        # says missing, never 0)
        with warnings.catch_warnings(), gradebook.open_gradebook(grading / "gradebook.db") as gb:
            warnings.simplefilter("ignore")
            gb.update_or_create_student(s)
        return result
    release_nb = notebooks.read_release(release_dir(), a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy chatter inside nbgrader's API
        gradebook.record_submission(
            grading / "gradebook.db",
            s,
            a,
            nb,
            result.task_points(),
            _parse_timestamp(result.timestamp),
            release_nb,
            previous,
        )
    return result


def _nbgrader_config(root: Path, db: Path) -> str:
    return textwrap.dedent(
        f"""\
        # generated by autograder.grade for one run; do not edit
        c = get_config()  # noqa: F821
        c.CourseDirectory.course_id = {load_course().course_id!r}
        c.CourseDirectory.root = {str(root)!r}
        c.CourseDirectory.db_url = {gradebook.db_url(db)!r}
        c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__"]
        c.HTMLExporter.sanitize_html = True
        """
    )


def _nbgrader(grading: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run an nbgrader command on the grading folder (feedback, export)."""
    with tempfile.TemporaryDirectory(prefix="dnnk-nbgrader-") as tmp:
        Path(tmp, "nbgrader_config.py").write_text(
            _nbgrader_config(grading, grading / "gradebook.db")
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


def generate_feedback(grading: Path, assignment: str) -> None:
    """``nbgrader generate_feedback <assignment> --force`` on every autograded submission."""
    result = _nbgrader(grading, ["generate_feedback", assignment, "--force"])
    if result.returncode != 0:
        print(
            f"nbgrader generate_feedback {assignment} reported errors:\n{result.stderr[-3000:]}",
            file=sys.stderr,
        )
    pages = sorted((grading / "feedback").glob(f"*/{assignment}/*.html"))
    if not pages:
        return
    script = feedback.local_mathjax_script()
    release_nb = notebooks.read_release(release_dir(), assignment)
    bonus = gradebook.bonus_points(release_nb, assignment)
    with warnings.catch_warnings(), gradebook.open_gradebook(grading / "gradebook.db") as gb:
        warnings.simplefilter("ignore")
        for page in pages:
            student = page.parent.parent.name
            try:
                cells = gradebook.scores(gb, assignment, student)
            except Exception:  # noqa: BLE001 - a page of a submission the gradebook lost
                cells = {}
            ungraded = {
                g: bonus.get(g, c["max"] or 0.0) for g, c in cells.items() if c["needs_manual"]
            }
            extra = {g: c["extra"] for g, c in cells.items() if g in bonus}
            text = feedback.localize_mathjax(page.read_text("utf-8"), script)
            page.write_text(feedback.mark_grades(text, ungraded, extra), "utf-8")


# ============================================================================ a run


def sandbox_lib_files() -> list[Path]:
    from autograder.execute import KERNEL_LIB
    from autograder.student import LIB_FILES

    return sorted(set(KERNEL_LIB) | set(LIB_FILES))


def grade(
    grading: Path | None = None,
    assignments=None,
    students=None,
    limits: Limits | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    feedback: bool = True,
    progress: bool = True,
    students_of_course: Roster | None = None,
) -> RunReport:
    """Grade every matching submission (see the module docstring).

    ``students_of_course``: the class (default: the roster of the course configuration);
    its students without a submission are listed as missing.
    """
    start = time.monotonic()
    grading = Path(grading or grading_dir()).resolve()
    release = release_dir()
    limits = limits or Limits.from_env()
    assignments = [
        a for a in (assignments or ASSIGNMENTS) if (release / a / f"{a}.ipynb").is_file()
    ]
    report = RunReport()
    pairs = find_jobs(grading, assignments, students)
    if not pairs:
        print(f"no submissions under {grading / 'submitted'} for {', '.join(assignments)}")
        return report
    if sandbox.insecure():
        sandbox.warn_insecure()
    else:
        sandbox.probe(release / "dnnkernels", sandbox_lib_files())  # fail closed
    course = load_course()
    students_of_course = roster() if students_of_course is None else students_of_course
    with warnings.catch_warnings(), gradebook.open_gradebook(grading / "gradebook.db") as gb:
        warnings.simplefilter("ignore")
        sync_roster(gb, students_of_course)
    for assignment in sorted({a for _, a in pairs}):
        release_nb = notebooks.read_release(release, assignment)
        gradebook.sync_assignment(
            grading / "gradebook.db", assignment, release_nb, course.duedate(assignment)
        )
    found = set(pairs)
    report.absent = sorted(
        f"{s}/{a}"
        for s in students_of_course
        if not students or s in students
        for a in sorted({a for _, a in pairs})
        if (s, a) not in found
    )
    digest = integrity.manifest(trusted_roots())
    environment = integrity.environment_fingerprint()
    jobs = [build_job(grading, s, a, limits, digest) for s, a in pairs]

    def keep(record: dict) -> None:
        with _Timed(report.timings, "store (gradebook, files)"):
            result = store(grading, record)
        report.results[(result.student, result.assignment)] = result

    with _Timed(report.timings, "jobs (cluster, sandboxes)"):
        with engine.connect(scheduler, workers) as client:
            report.failures = engine.run(client, jobs, grade_job, keep, progress=progress)
    with _Timed(report.timings, "feedback (nbgrader generate_feedback)"):
        if feedback:
            for assignment in sorted({a for (_, a) in report.results}):
                generate_feedback(grading, assignment)
    with _Timed(report.timings, "grade tables and export"):
        # the whole class and every assignment, whatever this run graded
        everything = course_assignments()
        report.rows = grade_table(grading, everything, students_of_course)
        write_table(report.rows, everything, grading / "grades.csv")
        _nbgrader(grading, ["export", "--to", str(grading / "nbgrader_grades.csv")])
    if integrity.manifest(trusted_roots()) != digest:
        report.problems.append("the trusted files (autograder/, release/) changed during the run")
    if integrity.environment_fingerprint() != environment:
        report.problems.append("the Python environment changed during the run")
    report.seconds = time.monotonic() - start
    return report


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
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
    parser.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:8786)")
    parser.add_argument(
        "--grading-dir",
        type=Path,
        help="grading folder (default $DNNK_GRADING_DIR or build/grading)",
    )
    defaults = Limits()
    for name, help_text in [
        ("submission_seconds", "wall-clock budget of one submission"),
        ("cell_seconds", "seconds per notebook cell"),
        ("call_seconds", "seconds per call of the student's code (hidden checks)"),
    ]:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=float,
            default=None,
            help=f"{help_text} (default {getattr(defaults, name):g})",
        )
    parser.add_argument("--no-feedback", action="store_true", help="skip the HTML feedback")
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code WITHOUT the sandbox (trusted code only; warns on every run)",
    )
    args = parser.parse_args(argv)
    if args.no_sandbox:
        os.environ[sandbox.INSECURE_ENV] = "1"
    limits = Limits.from_env(
        submission_seconds=args.submission_seconds,
        cell_seconds=args.cell_seconds,
        call_seconds=args.call_seconds,
    )
    grading = (args.grading_dir or grading_dir()).resolve()
    assignments = args.assignment or list(ASSIGNMENTS)
    try:
        report = grade(
            grading,
            assignments,
            args.students,
            limits,
            workers=args.workers,
            scheduler=args.scheduler,
            feedback=not args.no_feedback,
        )
    except sandbox.SandboxUnavailable as error:
        print(f"grading stopped: {error}", file=sys.stderr)
        return 1
    if not report.results and not report.failures:
        return 0
    graded = [a for a in ASSIGNMENTS if a in {a for (_, a) in report.results}]
    print(format_table(report.rows, graded))
    count = len(report.results) + len(report.failures)
    print(
        f"\n{count} submission(s) in {report.seconds:.0f} s "
        f"({60 * count / report.seconds:.1f} per minute)"
    )
    print(report.summary())
    print(f"grade table: {grading / 'grades.csv'}; feedback: {grading / 'feedback'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
