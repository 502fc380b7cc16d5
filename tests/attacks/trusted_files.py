"""Damage the grader from inside: append code to the hidden checks and the grading driver,
rewrite the real gradebook with sqlite3, delete the grade table, forge results, copy the
hidden checks into the notebook's output. Every kernel is honest: all points deserved,
nothing changed anywhere but the grader's own writes."""

from attacks import FULL, add_cell, append_to_answer
from attacks._escape import ESCAPE

STUDENT = "attack_trusted_files"
DESERVED = dict(FULL)

DAMAGE = (
    ESCAPE
    + """
import glob as _glob
import os as _os
import sqlite3 as _sqlite3

_REPO, _GRADING = {repo!r}, {grading!r}


def _try(label, action):
    try:
        action()
        print("ESCAPED:", label)
    except Exception as _error:
        print("blocked:", label, type(_error).__name__)


def _append(path, text):
    with open(path, "a") as _handle:
        _handle.write(text)


def _gradebook():
    _con = _sqlite3.connect(_GRADING + "/gradebook.db")
    _con.execute("update grade set manual_score = 99")
    _con.commit()


_try("plant conftest", lambda: _append(_REPO + "/autograder/hidden/conftest.py", "\\nPLANTED = 1\\n"))
_try("plant grade.py", lambda: _append(_REPO + "/autograder/grade.py", "\\nPLANTED = 1\\n"))
_try("plant the student build", lambda: _append(_os.path.dirname(__import__("dnnkernels").__file__) + "/conv2d.py", "\\nPLANTED = 1\\n"))
_try("rewrite gradebook", _gradebook)
_try("delete grades.csv", lambda: _os.remove(_GRADING + "/grades.csv"))
def _forge():
    _paths = _glob.glob(_GRADING + "/results/*/*.json")
    if not _paths:
        raise FileNotFoundError("no results to forge")
    for _path in _paths:
        with open(_path, "w") as _handle:
            _handle.write("{{}}")


_try("forge results", _forge)
_try("read hidden checks", lambda: print(open(_REPO + "/autograder/hidden/test_precision.py").read()))
"""
)


def build(ctx):
    fill = {"repo": str(ctx.repo), "grading": str(ctx.grading)}
    nb = append_to_answer(ctx.solution, "precision_matmul_log", DAMAGE.format(**fill))
    return add_cell(nb, DAMAGE.format(**fill))
