"""Grading on a real Dask cluster (autograder/engine.py), started with the ``dask`` CLI.

A scheduler and two workers run as separate processes on 127.0.0.1; a small class is
graded through ``python -m autograder.grade --scheduler ...`` while one worker is killed in
the middle of a task. Every submission must be graded exactly once, with the same scores as
a serial run on a local one-worker cluster. A worker whose checkout differs from the
client's must refuse to grade, and the command must exit non-zero and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograder import notebooks
from autograder.demo import break_task, solution_notebook
from autograder.grade import grade, grade_table
from autograder.limits import Limits
from autograder.paths import REPO, release_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops uids: needs root"),
]
ASSIGNMENT = "precision"
BIN = Path(sys.executable).parent


def write_class(grading: Path) -> list[str]:
    solution = solution_notebook(ASSIGNMENT)
    release = notebooks.read_release(release_dir(), ASSIGNMENT)
    versions = {
        "alice": solution,
        "bob": break_task(solution),
        "carol": release,
        "dave": solution,
    }
    for student, nb in versions.items():
        folder = grading / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    return sorted(versions)


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (bounded waits)."""

    def __init__(self, folder: Path, env: dict | None = None) -> None:
        self.folder = folder
        self.file = folder / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"
        self.procs: list[subprocess.Popen] = []
        self.logs = []
        self.scheduler = self._start(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(self.file),
            ],
            "scheduler",
        )
        deadline = time.monotonic() + 60
        while not self.file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.file.is_file(), "the dask scheduler did not start"
        self.address = json.loads(self.file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")

    def _start(self, argv, name, env=None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env or self.env, stdout=log, stderr=log, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def worker(self, name: str, env: dict | None = None) -> subprocess.Popen:
        return self._start(
            [
                str(BIN / "dask"),
                "worker",
                "--scheduler-file",
                str(self.file),
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--name",
                name,
                "--host",
                "127.0.0.1",
            ],
            name,
            env={**self.env, **(env or {})},
        )

    def grade_argv(self, grading: Path, *extra: str) -> list[str]:
        """The class grader's command on this cluster (no feedback pages)."""
        return [sys.executable, "-m", "autograder.grade", "--scheduler", self.address,
                "--grading-dir", str(grading), "--no-feedback", *extra]  # fmt: skip

    def grade(self, grading: Path, timeout: float, env: dict | None = None):
        """Run the grader to its end (bounded); its exit status and output."""
        return subprocess.run(
            self.grade_argv(grading),
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(count, timeout=120)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        for log in self.logs:
            log.close()


def busy_worker_pid(address: str) -> int | None:
    """Pid of a worker process that is running a grading task right now."""
    from distributed import Client

    with Client(address, timeout="30s") as client:
        processing = client.processing()
        busy = [w for w, tasks in processing.items() if tasks]
        if not busy:
            return None
        return client.run(os.getpid, workers=busy[:1])[busy[0]]


def scores(grading: Path) -> dict:
    return {
        r["student"]: {k: v for k, v in r.items() if k.startswith("precision_")}
        for r in grade_table(grading, [ASSIGNMENT])
    }


def test_a_killed_worker_loses_nothing_and_counts_nothing_twice():
    root = Path(tempfile.mkdtemp(prefix="dnnk-test-dask-"))
    try:
        serial = root / "serial"
        students = write_class(serial)
        limits = Limits(submission_seconds=200, cell_seconds=60, call_seconds=20)
        report = grade(
            serial, [ASSIGNMENT], None, limits, workers=1, feedback=False, progress=False
        )
        assert report.ok, report.summary()
        expected = scores(serial)
        assert set(expected) == set(students)

        cluster_grading = root / "cluster"
        write_class(cluster_grading)
        cluster = Cluster(root)
        try:
            cluster.worker("worker-a")
            cluster.worker("worker-b")
            cluster.wait_for_workers(2)
            command = subprocess.Popen(
                cluster.grade_argv(
                    cluster_grading, "--assignment", ASSIGNMENT, "--submission-seconds", "200"
                ),
                cwd=REPO,
                env=cluster.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            killed = None
            deadline = time.monotonic() + 600
            while killed is None and time.monotonic() < deadline and command.poll() is None:
                time.sleep(1.0)
                pid = busy_worker_pid(cluster.address)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)  # the worker process, mid-task
                    killed = pid
            output, _ = command.communicate(timeout=1200)
        finally:
            cluster.stop()
        assert killed is not None, "no worker was ever busy: nothing was killed"
        assert command.returncode == 0, output[-3000:]
        assert scores(cluster_grading) == expected
        results = sorted(p.parent.name for p in (cluster_grading / "results").glob("*/*.json"))
        assert results == students
        with sqlite3.connect(cluster_grading / "gradebook.db") as con:
            rows = con.execute("select count(*) from submitted_assignment").fetchone()[0]
        assert rows == len(students), "a submission was recorded more than once"
        assert "4 graded" in output and "0 failed" in output, output[-2000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_stale_worker_refuses_to_grade_and_the_run_fails():
    root = Path(tempfile.mkdtemp(prefix="dnnk-test-stale-"))
    try:
        grading = root / "grading"
        folder = grading / "submitted" / "erin" / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(solution_notebook(ASSIGNMENT), folder / f"{ASSIGNMENT}.ipynb")
        stale = root / "stale-release"
        shutil.copytree(release_dir(), stale)
        with open(stale / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", "a") as handle:
            handle.write("\n")  # one byte differs from the client's release
        cluster = Cluster(root)
        try:
            cluster.worker("stale", env={"DNNK_RELEASE_DIR": str(stale)})
            cluster.wait_for_workers(1)
            out = cluster.grade(grading, timeout=600)
        finally:
            cluster.stop()
        assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
        assert "FAILED" in out.stdout and "erin/precision" in out.stdout
        assert "differ from the client's" in out.stdout
        assert not (grading / "results" / "erin").exists(), "a failed job was recorded"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_cluster_without_workers_fails_the_run(monkeypatch):
    """No worker ever comes: the run does not wait forever, it lists the job and exits 1."""
    root = Path(tempfile.mkdtemp(prefix="dnnk-test-noworker-"))
    try:
        grading = root / "grading"
        folder = grading / "submitted" / "frank" / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(solution_notebook(ASSIGNMENT), folder / f"{ASSIGNMENT}.ipynb")
        cluster = Cluster(root)
        try:
            out = cluster.grade(grading, timeout=300, env={"DNNK_NO_WORKER_SECONDS": "10"})
        finally:
            cluster.stop()
        assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
        assert "no Dask worker was left" in out.stdout and "frank/precision" in out.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
