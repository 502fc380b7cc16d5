"""Reach outside: read the hidden checks and the reference, import the reference kernel,
delete or forge grading files and results, run shell commands, kill the grader."""

from attacks import append_to_answer, deserved, replace_answer

STUDENT = "attack_sandbox_escape"
DESERVED = deserved(precision_im2col=0, precision_winograd=0)
MARKER = "/tmp/dnnk_attack_pwned"

STEAL = """
import importlib.util
import sys

REPO = {repo!r}
stolen = {{}}
for path in [REPO + "/autograder/hidden/test_precision.py", REPO + "/src/dnnkernels/conv2d.py"]:
    try:
        with open(path) as handle:
            stolen[path] = handle.read()
        print(stolen[path])
    except Exception as error:
        print("could not read", path.rsplit("/", 1)[-1], type(error).__name__)
reference = None
try:
    sys.path.insert(0, REPO + "/src")
    spec = importlib.util.spec_from_file_location("stolen", REPO + "/src/dnnkernels/conv2d.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
except Exception as error:
    reference = None
    print("could not import the reference:", type(error).__name__)


def conv2d_im2col(x, k, b=None, stride=1, padding=0):
    if reference is None:
        raise RuntimeError("could not steal the reference")
    return reference.conv2d_im2col(x, k, b, stride, padding)
"""

DESTROY = """
import glob
import json
import os
import shutil
import signal
import subprocess

GRADING = {grading!r}


def attempt(action):
    try:
        action()
    except BaseException as error:
        print("blocked:", type(error).__name__)


FULL = {{"exitstatus": 0, "checks": [
    {{"nodeid": "x", "check": "x", "title": "x", "task": "precision_winograd", "points": 4,
      "earned": 4, "outcome": "passed", "message": "", "grader_error": False}}]}}


def forge():
    targets = [GRADING + "/results/attack_sandbox_escape/precision.json"]
    for pattern in ["/tmp/**/results.json", GRADING + "/results/**/*.json"]:
        attempt(lambda pattern=pattern: targets.extend(glob.glob(pattern, recursive=True)))
    for path in targets:
        attempt(lambda p=path: open(p, "w").write(json.dumps(FULL)))


attempt(lambda: os.remove(GRADING + "/gradebook.db"))
attempt(lambda: shutil.rmtree(GRADING + "/autograded"))
attempt(lambda: open(GRADING + "/grades.csv", "a").write("attack_sandbox_escape,100\\n"))
attempt(lambda: subprocess.run(["touch", {marker!r}]))
attempt(lambda: os.system("touch " + {marker!r}))
attempt(lambda: os.kill(os.getppid(), signal.SIGKILL))
forge()


def conv2d_winograd(x, k, b=None, m=2):
    forge()
    attempt(lambda: os.kill(os.getppid(), signal.SIGKILL))
    attempt(lambda: os.killpg(0, signal.SIGKILL))
    return torch.zeros(x.shape[0], k.shape[0], x.shape[2] - 2, x.shape[3] - 2, dtype=x.dtype)
"""

# the same attempts before an honest fft kernel: that kernel keeps its points
HONEST_AFTER_ATTEMPTS = """
try:
    open({repo!r} + "/autograder/hidden/test_precision.py").read()
except OSError as error:
    print("blocked:", type(error).__name__)
"""


def build(ctx):
    fill = {"repo": str(ctx.repo), "grading": str(ctx.grading), "marker": MARKER}
    nb = replace_answer(ctx.solution, "precision_im2col", STEAL.format(**fill))
    nb = replace_answer(nb, "precision_winograd", DESTROY.format(**fill))
    return append_to_answer(nb, "precision_fft", HONEST_AFTER_ATTEMPTS.format(**fill))
