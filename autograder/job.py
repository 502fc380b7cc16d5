"""Grading one submission on a worker: the job that travels, and the record that comes back.

A :class:`Job` carries everything a worker needs that is not in its own checkout: the
submission's bytes (read safely by the client, :mod:`autograder.submission`), the student's
other notebooks (cross-notebook imports), the limits, and the digest of the trusted tree
the client grades with (:mod:`autograder.integrity`): a worker whose checkout differs
refuses the job, and a job that changed the trusted tree stops the run.

:func:`grade_job` grades it inside the job's sandboxes, under one wall-clock budget
(``Limits.submission_seconds``) that does not depend on what the student adds:

1. the notebook is parsed and repaired against the release (:mod:`autograder.notebooks`);
2. the hidden checks run first (they decide the kernel points), in this trusted process,
   against the student's answer cells in a sandboxed runner (:mod:`autograder.hidden`);
3. nbgrader executes the notebook with its kernel in a second sandbox
   (:mod:`autograder.execute`), in the time that is left, for the outputs instructors
   grade by hand;
4. the check results are printed under each task's cell, the notebook is sanitized.

It returns a plain record (:class:`Result`): scores, feedback lines, notes, logs and the
time and CPU each stage took. It never writes the gradebook, the grade table or the
feedback folder: the client is their only writer.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from autograder import assets, feedback, integrity, notebooks, sandbox
from autograder.execute import KERNEL_LIB, execute_notebook
from autograder.hidden import run_hidden
from autograder.limits import Limits
from autograder.paths import REPO, release_dir
from autograder.student import Payload
from autograder.submission import Submission
from dnnkernels.tasks import tasks_of

#: share of the budget kept for executing the notebook after the hidden checks
EXECUTION_SHARE = 0.5


def trusted_roots() -> list[Path]:
    """What a job's outcome depends on besides the submission (hashed into the manifest)."""
    return [REPO / "autograder", release_dir()]


@dataclass
class Job:
    """One submission to grade (plain data: it travels to Dask workers)."""

    student: str
    assignment: str
    submission: Submission
    others: dict[str, bytes]  #: the student's other notebooks, by assignment
    limits: Limits
    manifest: str  #: :func:`integrity.manifest` of :func:`trusted_roots` on the client

    @property
    def key(self) -> str:
        return f"{self.student}/{self.assignment}"


@dataclass
class Result:
    """What a worker sends back about one submission (plain data)."""

    student: str
    assignment: str
    status: str  #: graded | missing | unreadable
    notebook: str  #: the autograded notebook (JSON), feedback included, sanitized
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    timestamp: str | None = None
    secret: str | None = None
    stages: dict = field(default_factory=dict)  #: stage -> {"wall": s, "cpu": s}
    budget_spent: bool = False
    log: str = ""

    def task_points(self) -> dict[str, float]:
        points = {t.id: 0.0 for t in tasks_of(self.assignment)}
        for check in self.checks:
            if check.get("task") in points:
                points[check["task"]] += float(check.get("earned", 0.0))
        return points

    def as_dict(self) -> dict:
        return asdict(self)


def blank(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without outputs."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def canonical_notebook(data: bytes | None, problem: str | None, release_nb, name: str):
    """(status, canonical notebook, notes) of a submitted notebook's bytes."""
    if data is None:
        if problem == "missing":
            return "missing", blank(release_nb), [f"no {name} was submitted: nothing to grade"]
        return "unreadable", blank(release_nb), [f"{name} was not read: {problem}"]
    try:
        canonical, notes = notebooks.canonicalise(notebooks.read(data), release_nb)
        nbformat.validate(canonical)
    except Exception as error:  # noqa: BLE001 - any unreadable file
        # the message names the kind of problem, never the file's content
        return (
            "unreadable",
            blank(release_nb),
            [f"{name} could not be read as a notebook ({type(error).__name__})"],
        )
    return "graded", canonical, notes


def _spec_factory(job: Job, canonical, others: dict[str, str]):
    """Builds the kernel's sandbox spec (see :class:`autograder.execute.SandboxedKernelManager`)."""
    a = job.assignment
    work = sandbox.INSIDE_WORK
    common_files = {f"{work}/{a}/{a}.ipynb": nbformat.writes(canonical).encode()}
    for name, data in job.submission.extra.items():
        common_files[f"{work}/{a}/{name}"] = data
    for other, text in others.items():
        common_files[f"{work}/{other}/{other}.ipynb"] = text.encode()
    common_files.update(assets.font_files())
    config = {
        "sys_path": [sandbox.INSIDE_STUDENT],
        "allow_write": [work, sandbox.INSIDE_TMP],
        "output_chars": job.limits.output_chars,
        "threads": job.limits.threads,
    }
    common_env = {
        "DNNK_KERNEL": json.dumps(config),
        "IPYTHONDIR": f"{sandbox.INSIDE_TMP}/ipython",
        "JUPYTER_CONFIG_DIR": f"{sandbox.INSIDE_TMP}/jupyter",
        "JUPYTER_RUNTIME_DIR": f"{sandbox.INSIDE_TMP}/jupyter/runtime",
        "JUPYTER_DATA_DIR": f"{sandbox.INSIDE_TMP}/jupyter/data",
        "DNNK_STUDENT_WORK": work,
        "NBGRADER_EXECUTION": "autograde",
    }

    def factory(argv, files=(), env=()) -> sandbox.Spec:
        return sandbox.Spec(
            argv=argv,
            student_build=release_dir() / "dnnkernels",
            lib_files=KERNEL_LIB,
            limits=job.limits,
            files={**common_files, **dict(files)},
            env={**common_env, **dict(env)},
            cwd=f"{work}/{a}",
            data_dir=assets.data_dir(),
            ipc=True,
        )

    return factory


class _Stage:
    """Wall and CPU time of a stage (CPU of this thread plus what the stage reports)."""

    def __init__(self, stages: dict, name: str) -> None:
        self.stages, self.name, self.extra_cpu = stages, name, 0.0

    def __enter__(self) -> _Stage:
        self.wall, self.cpu = time.monotonic(), time.thread_time()
        return self

    def __exit__(self, *exc) -> None:
        self.stages[self.name] = {
            "wall": time.monotonic() - self.wall,
            "cpu": time.thread_time() - self.cpu + self.extra_cpu,
        }


def check_manifest(expected: str) -> None:
    got = integrity.manifest(trusted_roots())
    if got != expected:
        raise integrity.TrustedTreeChanged(
            f"this worker's trusted files (autograder/, release/) differ from the client's "
            f"(digest {got[:12]} here, {expected[:12]} expected): update its checkout"
        )


def grade_job(job: Job) -> dict:
    """Grade one submission (see the module docstring); returns :meth:`Result.as_dict`.

    Raises (and so fails the task, which the client lists) only when grading itself is
    impossible: a stale or tampered trusted tree, or a sandbox that cannot be built.
    """
    start = time.monotonic()
    deadline = start + job.limits.submission_seconds
    stages: dict = {}
    check_manifest(job.manifest)
    a = job.assignment
    sub = job.submission
    with _Stage(stages, "canonicalise"):
        release_nb = notebooks.read_release(release_dir(), a)
        status, canonical, notes = canonical_notebook(
            sub.notebook, sub.notebook_problem, release_nb, f"{a}.ipynb"
        )
        notes += [f"not copied into the sandbox: {s}" for s in sub.skipped]
        others = {}
        for other, data in job.others.items():
            st, nb, _ = canonical_notebook(
                data, None, notebooks.read_release(release_dir(), other), other
            )
            if st == "graded":
                others[other] = nbformat.writes(nb)
    checks: list = []
    executed = None
    budget_spent = False
    logs = []
    if status == "graded":
        with _Stage(stages, "hidden checks") as stage:
            cells, cell_notes = notebooks.payload_cells(canonical, release_nb)
            payload = Payload(a, cells, cell_notes, {a: nbformat.writes(canonical), **others})
            hidden_deadline = deadline - EXECUTION_SHARE * (deadline - time.monotonic())
            checks, note, stats = run_hidden(payload, job.limits, hidden_deadline)
            stage.extra_cpu = stats["runner_cpu"]
            logs.append(stats["log"])
            if note:
                notes.append(note)
            if any("budget" in (c.get("message") or "") for c in checks):
                budget_spent = True
        with _Stage(stages, "execute") as stage:
            factory = _spec_factory(job, canonical, others)
            executed, report = execute_notebook(blank(canonical), factory, job.limits, deadline)
            stage.extra_cpu = report["cpu"]
            logs.append(report["log"])
            budget_spent |= report["budget_spent"]
            if report["error"]:
                notes.append(
                    f"the notebook could not be executed to the end: {report['error']}; "
                    "the hidden checks above still graded your code"
                )
    if budget_spent:
        notes.append(
            f"grading this submission reached its time budget ({job.limits.submission_seconds:g}"
            " s): what ran before counts, the rest was not run"
        )
    with _Stage(stages, "annotate"):
        if executed is None:
            executed = blank(canonical)
        feedback.annotate(executed, a, checks, notes)
        feedback.sanitize(executed)
        text = nbformat.writes(executed)
    check_manifest(job.manifest)
    stages["total"] = {"wall": time.monotonic() - start}
    return Result(
        job.student,
        a,
        status,
        text,
        checks,
        notes,
        sub.timestamp,
        sub.secret,
        stages,
        budget_spent,
        "\n".join(logs)[-40000:],
    ).as_dict()
