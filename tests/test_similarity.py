"""The similarity report (autograder/similarity.py) on a small hand-written class.

No grading run: the notebooks are written straight into a temporary grading folder, copies
of the release notebook of ``bit_width`` with the answer cell of ``bit_width_accumulate``
replaced. Students ``ada`` and ``bob`` hand in the same solution (bob renamed every
variable, reordered the helper functions, re-commented it and put a ``<script>`` in a
comment); ``cy`` wrote an independent honest solution in another style; ``dee`` left the
stub; ``eve``'s notebook is a symbolic link to ada's.
"""

from __future__ import annotations

import csv
import json

import nbformat
import numpy as np
import pytest

from autograder import notebooks, similarity
from autograder.paths import release_dir
from dnnkernels.tasks import TASKS

TASK = TASKS["bit_width_accumulate"]
MARKER = "    # YOUR CODE HERE\n"
SCRIPT = '<script>alert("bob")</script>'

HELPERS_ADA = '''
def _bounds(bits):
    lo = -(2 ** (bits - 1))
    hi = 2 ** (bits - 1) - 1
    return lo, hi


def _wrap(values, bits):
    """Map values into the two's complement range of `bits` bits."""
    modulus = 2**bits
    lo, _ = _bounds(bits)
    return torch.remainder(values - lo, modulus) + lo

'''

BODY_ADA = """\
    lo, hi = _bounds(bits)
    acc = torch.zeros(products.shape[:-1], dtype=torch.int64)
    overflow = torch.zeros(products.shape[:-1], dtype=torch.bool)
    for k in range(products.shape[-1]):
        total = acc + products[..., k]
        outside = (total < lo) | (total > hi)
        overflow |= outside
        if mode == "saturate":
            acc = torch.clamp(total, lo, hi)
        else:
            acc = _wrap(total, bits)
    return acc, overflow
"""

HELPERS_BOB = f'''
def wrap_into_range(x, width):
    """Wrap-around."""
    span = 2**width
    low, _ = limits_of(width)  # {SCRIPT}
    return torch.remainder(x - low, span) + low


def limits_of(width):
    # smallest and largest value
    low = -(2 ** (width - 1))
    high = 2 ** (width - 1) - 1
    return low, high

'''

BODY_BOB = """\
    low, high = limits_of(bits)
    running = torch.zeros(products.shape[:-1], dtype=torch.int64)
    flagged = torch.zeros(products.shape[:-1], dtype=torch.bool)
    for j in range(products.shape[-1]):
        # add the next product to every accumulator at once
        candidate = running + products[..., j]
        out_of_range = (candidate < low) | (candidate > high)
        flagged |= out_of_range
        if mode == "saturate":
            running = torch.clamp(candidate, low, high)
        else:
            running = wrap_into_range(candidate, bits)
    return running, flagged
"""

BODY_CY = """\
    smallest, largest = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    lead = products.shape[:-1]
    if products.shape[-1] == 0:
        return torch.zeros(lead, dtype=torch.int64), torch.zeros(lead, dtype=torch.bool)
    # before the first overflow the accumulator is the exact prefix sum
    prefix = products.cumsum(dim=-1)
    ever = torch.logical_or(prefix < smallest, prefix > largest).any(dim=-1)
    if mode == "wrap":
        return (prefix[..., -1] - smallest) % (1 << bits) + smallest, ever
    state = products.new_zeros(lead)
    for column in products.unbind(dim=-1):
        state = (state + column).clamp(min=smallest, max=largest)
    return state, ever
"""


def _release() -> nbformat.NotebookNode:
    return nbformat.read(release_dir() / "bit_width" / "bit_width.ipynb", as_version=4)


def _stub() -> str:
    return similarity.answer_cells(_release())[TASK.answer_cell_id]


def _solution(helpers: str, body: str) -> str:
    """The stub with its body replaced (signature and docstring kept, as students do)."""
    stub = _stub()
    head, _, _ = stub.partition(MARKER)
    imports, _, rest = head.partition("\n\n\n")
    return imports + "\n" + helpers + "\n" + rest + body


def _write(grading, student: str, answer: str | None) -> None:
    nb = _release()
    if answer is not None:
        for cell in nb.cells:
            if notebooks.grade_id(cell) == TASK.answer_cell_id:
                cell.source = answer
    folder = grading / "submitted" / student / "bit_width"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "bit_width.ipynb")


@pytest.fixture
def grading(tmp_path):
    grading = tmp_path / "grading"
    _write(grading, "ada", _solution(HELPERS_ADA, BODY_ADA))
    _write(grading, "bob", _solution(HELPERS_BOB, BODY_BOB))
    _write(grading, "cy", _solution("", BODY_CY))
    _write(grading, "dee", None)
    eve = grading / "submitted" / "eve" / "bit_width"
    eve.mkdir(parents=True)
    (eve / "bit_width.ipynb").symlink_to(
        grading / "submitted" / "ada" / "bit_width" / "bit_width.ipynb"
    )
    return grading


def _task_report(report):
    return next(tr for tr in report.tasks if tr.task.id == TASK.id)


def test_solutions_are_built_from_the_stub():
    stub = _stub()
    assert MARKER in stub
    for helpers, body in [(HELPERS_ADA, BODY_ADA), (HELPERS_BOB, BODY_BOB), ("", BODY_CY)]:
        code = _solution(helpers, body)
        compile(code, "answer", "exec")  # valid Python (compiled, never run)
        assert '"""Sum products in a ``bits``-bit' in code and "NotImplementedError" not in code


def test_near_copies_rank_first_and_the_stub_is_ignored(grading):
    report = similarity.run(grading, ["bit_width"], top=10, progress=False)
    tr = _task_report(report)
    assert tr.compared == ["ada", "bob", "cy"]
    assert tr.stub_only == ["dee"]
    first = tr.pairs[0]
    assert (first.student_a, first.student_b) == ("ada", "bob")
    assert first.similarity > 0.8, first
    others = tr.pairs[1:]
    assert all("cy" in (p.student_a, p.student_b) for p in others)
    assert all(p.similarity < 0.5 for p in others), others
    assert all("dee" not in (p.student_a, p.student_b) for p in tr.pairs)
    # the other tasks of bit_width hold the stub for everyone: nothing to compare
    for other in report.tasks:
        if other.task.id != TASK.id:
            assert other.pairs == [] and other.stub_only == ["ada", "bob", "cy", "dee"]


def test_without_the_stub_as_boilerplate_the_stub_would_match():
    # the check above is meaningful: without the stub as boilerplate, most of dee's cell
    # (the signature and the raise) is found in the cells of those who kept the signature
    sources = {
        "ada": _solution(HELPERS_ADA, BODY_ADA),
        "cy": _solution("", BODY_CY),
        "dee": _stub(),
    }
    bare = similarity.compare_task(TASK, "", sources, top=10)
    dee = [p for p in bare.pairs if "dee" in (p.student_a, p.student_b)]
    assert dee and all(max(p.similarity_a, p.similarity_b) > 0.5 for p in dee), dee
    kept = similarity.compare_task(TASK, _stub(), sources, top=10)
    assert kept.stub_only == ["dee"]


def test_a_symlinked_notebook_is_skipped_with_a_note(grading):
    report = similarity.run(grading, ["bit_width"], progress=False)
    notes = [n for n in report.notes if n.startswith("eve/")]
    assert len(notes) == 1 and "symbolic link" in notes[0], report.notes
    assert all(student != "eve" for _, student in report.sources)


def test_a_symlinked_student_folder_is_skipped_with_a_note(grading):
    (grading / "submitted" / "mal").symlink_to(grading / "submitted" / "ada")
    report = similarity.run(grading, ["bit_width"], progress=False)
    assert any(n.startswith("mal:") and "symbolic link" in n for n in report.notes)
    assert "mal" not in _task_report(report).compared


def test_cli_writes_csv_sorted_and_html_escaped(grading, capsys):
    assert similarity.main(["--grading-dir", str(grading), "--assignment", "bit_width"]) == 0
    rows = list(csv.DictReader((grading / "similarity" / "pairs.csv").open()))
    assert tuple(rows[0]) == similarity.CSV_FIELDS
    ours = [r for r in rows if r["task"] == TASK.id]
    assert (ours[0]["student_a"], ours[0]["student_b"]) == ("ada", "bob")
    scores = [float(r["similarity"]) for r in ours]
    assert scores == sorted(scores, reverse=True)
    page = (grading / "similarity" / "report.html").read_text()
    assert SCRIPT not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;bob&quot;)&lt;/script&gt;" in page
    assert "eve/bit_width: skipped" in page
    assert "ada / bob" in capsys.readouterr().out


def test_highlight_escapes_inside_and_outside_marks():
    code = "a = '<b>'\n</pre><script>x</script>"
    out = similarity.highlight(code, np.array([[0, 12], [6, 20]]))
    assert "<script>" not in out and "</pre>" not in out and "<b>" not in out
    assert out.count("<mark>") == 2


def test_oversized_and_broken_notebooks_are_notes(grading):
    folder = grading / "submitted" / "fay" / "bit_width"
    folder.mkdir(parents=True)
    (folder / "bit_width.ipynb").write_text("{not json")
    nb = json.loads((grading / "submitted" / "ada" / "bit_width" / "bit_width.ipynb").read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == TASK.answer_cell_id:
            cell["source"] = "x = 1\n" * (similarity.CELL_CHARS // 6 + 10)
    big = grading / "submitted" / "gus" / "bit_width"
    big.mkdir(parents=True)
    (big / "bit_width.ipynb").write_text(json.dumps(nb))
    report = similarity.run(grading, ["bit_width"], progress=False)
    assert any(n.startswith("fay/") and "not a readable notebook" in n for n in report.notes)
    assert any(n.startswith("gus/") and "cut to its first" in n for n in report.notes)
    assert len(report.sources[(TASK.id, "gus")]) == similarity.CELL_CHARS
