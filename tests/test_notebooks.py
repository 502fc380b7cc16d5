"""Canonical notebooks and runner payloads (autograder/notebooks.py)."""

from __future__ import annotations

import copy

import attacks
import nbformat
import pytest

from autograder import notebooks
from autograder.paths import release_dir

needs_release = pytest.mark.skipif(
    not (release_dir() / "precision" / "precision.ipynb").is_file(),
    reason="release/ is not built (make release)",
)


def release_notebook():
    return notebooks.read_release(release_dir(), "precision")


@needs_release
def test_canonicalise_repairs_graded_cells():
    release = release_notebook()
    nb = copy.deepcopy(release)
    del nb.cells[attacks.index(nb, "precision_im2col")]  # deleted
    dup = copy.deepcopy(attacks.find(nb, "precision_fft_answer"))
    dup.source = "first = True"
    nb.cells.insert(attacks.index(nb, "precision_fft_answer"), dup)  # duplicated
    check = attacks.find(nb, "precision_fft")
    check.cell_type = "markdown"  # retyped
    check.pop("outputs", None)
    check.pop("execution_count", None)
    attacks.find(nb, "precision_matmul_svd").source = "pass"  # locked cell edited
    nb.cells.append(nbformat.v4.new_code_cell("extra = 1"))  # student's own cell
    fixed, notes = notebooks.canonicalise(nb, release)
    ids = [notebooks.grade_id(c) for c in fixed.cells if notebooks.grade_id(c)]
    assert ids == [notebooks.grade_id(c) for c in release.cells if notebooks.grade_id(c)]
    assert attacks.find(fixed, "precision_fft_answer").source == "first = True"
    assert attacks.find(fixed, "precision_fft").cell_type == "code"
    svd = attacks.find(fixed, "precision_matmul_svd").source
    assert svd == attacks.find(release, "precision_matmul_svd").source
    assert fixed.cells[-1].source == "extra = 1"
    assert len(notes) == 3
    nbformat.validate(fixed)
    cells, _ = notebooks.payload_cells(fixed, release)
    assert [c["kind"] for c in cells][:2] == ["setup", "answer"]
    assert cells[0]["source"] == attacks.find(release, "setup_1").source
