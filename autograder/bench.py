"""Grading throughput: submissions per minute, written to BENCHMARKS.md.

Usage::

    python -m autograder.bench [--submissions 8] [--workers 2] [--assignment precision]
                               [--out BENCHMARKS.md]

Builds ``--submissions`` copies of realistic submissions of one assignment in a temporary
grading folder (half the solution, half the solution with one kernel broken: every cell
runs, every hidden check runs), grades them with ``--workers`` worker processes (the full
pipeline: nbgrader autograde, hidden checks, gradebook, feedback, CSV) and writes the
throughput between ``<!-- bench:grading:begin -->`` and ``<!-- bench:grading:end -->`` in
``--out`` (other sections are kept). The load average before and after is recorded: on a
shared machine the figure is a lower bound.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
import torch

from autograder.demo import break_task, solution_notebook
from autograder.grade import grade
from autograder.paths import REPO

BEGIN, END = "<!-- bench:grading:begin -->", "<!-- bench:grading:end -->"
TARGET_PER_MINUTE = 4.0  # on 2 free cores: a class of 200 graded within an hour


def update_section(path: Path, body: str) -> None:
    """Replace (or append) the text between the grading markers of ``path``."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for descendants."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def measure(assignment: str, submissions: int, workers: int) -> dict:
    grading = Path(tempfile.mkdtemp(prefix="dnnk-bench-"))
    try:
        solution = solution_notebook(assignment)
        broken = break_task(solution) if assignment == "precision" else solution
        for i in range(submissions):
            folder = grading / "submitted" / f"student{i:03d}" / assignment
            folder.mkdir(parents=True)
            nbformat.write(solution if i % 2 == 0 else broken, folder / f"{assignment}.ipynb")
        load_before = os.getloadavg()[0]
        cpu_before = _cpu_seconds()
        start = time.monotonic()
        grade(grading, [assignment], None, workers=workers)
        seconds = time.monotonic() - start
        cpu = _cpu_seconds() - cpu_before
        load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(grading, ignore_errors=True)
    return {
        "assignment": assignment,
        "submissions": submissions,
        "workers": workers,
        "seconds": seconds,
        "per_minute": 60 * submissions / seconds,
        "cpu_per_submission": cpu / submissions,
        "load": (load_before, load_after),
    }


def section(result: dict) -> str:
    per_minute = result["per_minute"]
    met = "met" if per_minute >= TARGET_PER_MINUTE else "missed"
    cpu = platform.processor() or platform.machine()
    lines = [
        "## Grading throughput (`autograder`)",
        "",
        f"Measured {dt.date.today().isoformat()} with `python -m autograder.bench` on "
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}.",
        "",
        "| assignment | submissions | workers | wall time (s) | submissions / minute | "
        "target | met |",
        "|---|---|---|---|---|---|---|",
        f"| {result['assignment']} | {result['submissions']} | {result['workers']} | "
        f"{result['seconds']:.0f} | {per_minute:.1f} | >= {TARGET_PER_MINUTE:g} | {met} |",
        "",
        "Each submission goes through the whole pipeline: canonical notebook, `nbgrader "
        "autograde` in a sandboxed kernel (every cell executed), the hidden checks in a "
        "trusted pytest process against a sandboxed runner, the gradebook, `nbgrader "
        "generate_feedback` and the grade tables. Half the submissions are the solution, "
        "half have one kernel broken.",
        "",
        f"CPU time: {result['cpu_per_submission']:.1f} s per submission (all processes), so "
        f"2 idle cores would grade about {120 / result['cpu_per_submission']:.1f} per minute. "
        f"Load average (1 min) before / after: {result['load'][0]:.1f} / "
        f"{result['load'][1]:.1f} (the grader's own processes count in it). "
        "On a shared machine other jobs take part of the CPU, so the measured rate is a "
        "lower bound for 2 free cores.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.bench", description=__doc__)
    parser.add_argument("--submissions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--assignment", default="precision")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    result = measure(args.assignment, args.submissions, args.workers)
    body = section(result)
    update_section(args.out, body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
