"""Look for classmates: other jobs' folders in /tmp, other processes in /proc (their
environment, command line and files), the grader's folders by their real paths, and signal
every process in sight. The kernels are honest; nothing of another student may show up in
this submission's feedback, and every other grade stays as it is."""

from attacks import FULL, add_cell, append_to_answer
from attacks._escape import ESCAPE

STUDENT = "attack_neighbours"
DESERVED = dict(FULL)

SNOOP = (
    ESCAPE
    + """
import glob as _glob
import os as _os

_found = []
for _pattern in ["/tmp/*", "/tmp/*/*", "/proc/[0-9]*/root/submission/*/*.ipynb",
                 "/proc/[0-9]*/cwd/*", {grading!r} + "/submitted/*/*/*.ipynb", "/home/*", "/root/*"]:
    _found += _glob.glob(_pattern)
for _pid in [p for p in _os.listdir("/proc") if p.isdigit()]:
    for _what in ("environ", "cmdline"):
        try:
            _found.append(open("/proc/" + _pid + "/" + _what, "rb").read()[:200].decode("latin-1"))
        except Exception:
            pass
print("NEIGHBOURS:", _found)
"""
)

KILL_ALL = (
    ESCAPE
    + """
import os as _os
import signal as _signal

for _pid in range(2, 4096):
    if _pid != _os.getpid():
        try:
            _os.kill(_pid, _signal.SIGKILL)
        except Exception:
            pass
try:
    _os.kill(-1, _signal.SIGKILL)
except Exception as _error:
    print("kill -1:", type(_error).__name__)
"""
)


def build(ctx):
    nb = append_to_answer(
        ctx.solution, "precision_matmul_svd", SNOOP.format(grading=str(ctx.grading))
    )
    return add_cell(nb, SNOOP.format(grading=str(ctx.grading)) + KILL_ALL)
