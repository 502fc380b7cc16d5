"""Command line of the course tooling (``make release``, ``make solutions``).

python -m dnnkernels.course release      # source/ + src/ -> release/ (via nbgrader)
python -m dnnkernels.course solutions    # executed solutions -> build/solutions/
python -m dnnkernels.course check        # release/ fresh and free of secrets?
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dnnkernels.course.paths import Layout, find_repo
from dnnkernels.tasks import ASSIGNMENTS


def _layout(args: argparse.Namespace) -> Layout:
    if args.repo:
        return Layout(find_repo(args.repo))
    try:
        return Layout(find_repo(Path.cwd()))
    except FileNotFoundError:
        return Layout(find_repo())  # the clone this package was installed from (-e)


def cmd_release(args: argparse.Namespace) -> int:
    from dnnkernels.course.release import release

    layout = _layout(args)
    start = time.perf_counter()
    release(layout, progress=lambda m: print(f"release: {m}", flush=True))
    print(f"release: done in {time.perf_counter() - start:.1f} s -> {layout.release}")
    return 0


def cmd_solutions(args: argparse.Namespace) -> int:
    from dnnkernels.course.solutions import run_solutions

    layout = _layout(args)
    runs = run_solutions(layout, args.assignment or ASSIGNMENTS, args.out)
    print("solution notebooks (seconds to execute):")
    for run in runs:
        status = "ok" if run.error is None else "FAILED"
        print(f"  {run.assignment:<10} {run.seconds:7.1f} s  {status}  {run.path}")
    failures = [r.error for r in runs if r.error]
    if failures:
        print("\nsolutions: FAILED\n  " + "\n  ".join(failures), file=sys.stderr)
        print("(the partly executed notebooks are saved as <a>.failed.ipynb)", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from dnnkernels.course.release import check

    layout = _layout(args)
    problems = check(layout)
    if problems:
        print(f"check: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("check: release/ is fresh and holds no solution, hidden test or autograder file")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dnnkernels.course",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo", type=Path, help="repository root (default: found from cwd)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="generate release/ with nbgrader").set_defaults(run=cmd_release)
    sol = sub.add_parser("solutions", help="execute the solution notebooks")
    sol.add_argument(
        "--assignment",
        action="append",
        choices=ASSIGNMENTS,
        help="only this assignment (repeatable)",
    )
    sol.add_argument("--out", type=Path, help="output folder (default build/solutions)")
    sol.set_defaults(run=cmd_solutions)
    sub.add_parser("check", help="release/ fresh and secret-free?").set_defaults(run=cmd_check)
    args = parser.parse_args(argv)
    from dnnkernels.course.extract import ExerciseError
    from dnnkernels.course.notebooks import NotebookError

    try:
        return args.run(args)
    except (ExerciseError, NotebookError, FileNotFoundError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
