"""Formgrader in headless Chromium, offline: math typeset, nothing requested off 127.0.0.1.

A gradebook with one submission of svd_rank (the solution notebook, recorded with the
kit's gradebook code, no grading run) is served by ``python -m autograder.formgrader`` on
127.0.0.1; Chromium (tests/browser.py: every request to another host fails) opens its
formgrade page as an instructor does.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nbformat
import pytest
from browser import Browser, leaves_localhost
from test_term import ASSIGNMENT, Formgrader, needs_release

from autograder import gradebook, notebooks
from autograder.demo import solution_notebook
from autograder.paths import REPO, release_dir


@needs_release
@pytest.mark.browser
def test_formgrader_offline_typesets_math(tmp_path):
    grading = tmp_path / "grading"
    (tmp_path / "home").mkdir()
    release = notebooks.read_release(release_dir(), ASSIGNMENT)
    solution = solution_notebook(ASSIGNMENT)
    assert any("$" in c.source for c in solution.cells if c.cell_type == "markdown")
    db = grading / "gradebook.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gradebook.sync_assignment(db, ASSIGNMENT, release)
        gradebook.record_submission(
            db, "alice", ASSIGNMENT, solution, {"svd_rank_errors": 3.0}, None, release
        )
    folder = grading / "autograded" / "alice" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(solution, folder / f"{ASSIGNMENT}.ipynb")
    with gradebook.open_gradebook(db) as gb:
        sub_id = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "alice").id

    fg = Formgrader(tmp_path)
    try:
        fg.wait_up()
        with Browser(profile=tmp_path / "profile", log=tmp_path / "chromium.log") as browser:
            page = browser.new_page()
            page.goto(f"{fg.base}/formgrader?token={fg.token}")  # logs in (cookie)
            page.goto(f"{fg.base}/formgrader/submissions/{sub_id}")
            typeset = page.wait_for("document.querySelectorAll('mjx-container').length", timeout=60)
            assert typeset, "MathJax typeset nothing on the formgrade page"
            assert page.eval("document.querySelectorAll('mjx-merror').length") == 0
            assert page.eval("typeof MathJax.Hub.Queue") == "function"  # formgrade.js's API
            errors = page.console_errors()
            assert not [e for e in errors if "MathJax" in e], errors
            page.screenshot(REPO / "build" / "formgrader-screenshot.png")
            off = [u for u in page.requests() if leaves_localhost(u)]
            assert not off, f"formgrader requested other hosts: {off}"
            assert not page.failed(), page.failed()
    finally:
        fg.stop()
    assert Path(REPO / "build" / "formgrader-screenshot.png").is_file()
