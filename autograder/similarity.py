"""Similarity report for instructors: the students' answer cells compared pairwise, per task.

Usage (from the repository root, after a class is graded)::

    python -m autograder.similarity                        # every assignment, top 20 pairs
    python -m autograder.similarity --assignment precision --top 10
    python -m autograder.similarity --grading-dir /path/to/grading

Input: nbgrader's layout ``<grading>/submitted/<student>/<assignment>/<assignment>.ipynb``
(``<grading>`` is ``--grading-dir``, else ``$DNNK_GRADING_DIR``, else ``build/grading``) and
the release notebooks ``release/<assignment>/<assignment>.ipynb``, whose answer cells hold
the stub code every student starts from.

Output, in ``<grading>/similarity/``:

- ``pairs.csv``: for each task, the ``--top`` most similar pairs of students, most similar
  first (columns ``assignment, task, rank, student_a, student_b, similarity,
  similarity_a, similarity_b, overlap_tokens``);
- ``report.html``: the same pairs, each with both answer cells side by side and the shared
  passages marked, plus the students whose cell holds nothing beyond the stub and the
  submissions that were skipped (and why). The page is self-contained and static: every
  piece of student text in it is HTML-escaped, and its Content-Security-Policy forbids
  scripts anyway.

How two cells are compared: with `copydetect <https://pypi.org/project/copydetect/>`_
(winnowing of k-gram fingerprints, the method of MOSS). Each cell is tokenized as Python
and names are replaced by placeholders (variables ``V``, functions ``F``, classes ``O``,
strings ``S``; comments and white space are dropped), so renaming variables, re-indenting,
re-commenting or reordering functions does not hide a copy. Every k-gram of the released
stub (its signature, docstring, ``raise NotImplementedError``) is passed to copydetect as
boilerplate and removed from every student's fingerprints, so keeping the stub is never a
match. ``similarity_a`` is the share of student a's remaining tokens that also occur in
b's cell (and ``similarity_b`` the converse); ``similarity`` is their mean, the sort key.

Safety: the submissions are read as data by :func:`autograder.submission.read` (regular
files only, opened with ``O_NOFOLLOW``, size-capped by ``Limits.notebook_bytes``); a
student folder that is a symbolic link, or whose name is not a plain student id, is
skipped with a note; answer cells are cut at :data:`CELL_CHARS` characters. Nothing a
student wrote is executed or imported.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import itertools
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

import copydetect
import numpy as np
from copydetect import CodeFingerprint, compare_files
from tqdm import tqdm

from autograder import notebooks, submission
from autograder.limits import Limits
from autograder.paths import grading_dir, release_dir
from dnnkernels.tasks import ASSIGNMENTS, Task, tasks_of

#: the same rule as the grader's (``autograder.grade.STUDENT_ID``)
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
#: k: the shortest run of filtered characters that counts as shared (copydetect's default)
NOISE = 25
#: a run of at least this many filtered characters is always found (= NOISE: every k-gram)
GUARANTEE = 25
#: characters of one answer cell that are compared (the rest is cut, with a note)
CELL_CHARS = 100_000
DEFAULT_TOP = 20
CSV_FIELDS = (
    "assignment",
    "task",
    "rank",
    "student_a",
    "student_b",
    "similarity",
    "similarity_a",
    "similarity_b",
    "overlap_tokens",
)


@dataclass
class Pair:
    """Two students' answer cells of one task, compared."""

    task: str
    student_a: str
    student_b: str
    similarity: float  #: mean of similarity_a and similarity_b
    similarity_a: float  #: share of a's fingerprinted tokens found in b
    similarity_b: float
    overlap_tokens: int
    slices_a: np.ndarray  #: 2 x n: starts and ends of the shared passages in a's cell
    slices_b: np.ndarray


@dataclass
class TaskReport:
    """The comparison of one task's answer cells."""

    task: Task
    compared: list[str] = field(default_factory=list)  #: students with code beyond the stub
    stub_only: list[str] = field(default_factory=list)  #: nothing beyond the stub
    pairs: list[Pair] = field(default_factory=list)  #: the top pairs, most similar first
    total_pairs: int = 0


@dataclass
class Report:
    """Everything the report shows."""

    tasks: list[TaskReport] = field(default_factory=list)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)  #: (task, student)
    notes: list[str] = field(default_factory=list)  #: skipped submissions and cut cells


# ---- reading -------------------------------------------------------------------------------


def _cell_text(cell) -> str | None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    return source if isinstance(source, str) else None


def answer_cells(nb) -> dict[str, str]:
    """grade_id -> source of the answer cells of a parsed notebook (first occurrence)."""
    found: dict[str, str] = {}
    for cell in nb.get("cells", []):
        try:
            if not notebooks.is_answer(cell):
                continue
        except (AttributeError, TypeError):
            continue
        gid = notebooks.grade_id(cell)
        text = _cell_text(cell)
        if gid not in found and text is not None:
            found[gid] = text
    return found


def _students(submitted: Path, notes: list[str]) -> list[str]:
    try:
        names = sorted(os.listdir(submitted))
    except FileNotFoundError:
        notes.append(f"{submitted} does not exist: nothing to compare")
        return []
    students = []
    for name in names:
        path = submitted / name
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            notes.append(f"{name}: skipped, the student folder is a symbolic link")
        elif not stat.S_ISDIR(mode):
            continue
        elif not STUDENT_ID.match(name):
            notes.append(f"{name!r}: skipped, not a student id")
        else:
            students.append(name)
    return students


def read_answers(
    grading: Path, assignment: str, limits: Limits, notes: list[str]
) -> dict[str, dict[str, str]]:
    """student -> (answer grade_id -> source) for one assignment, read safely."""
    answers: dict[str, dict[str, str]] = {}
    notebook_name = f"{assignment}.ipynb"
    for student in _students(grading / "submitted", notes):
        sub = submission.read(grading / "submitted" / student / assignment, notebook_name, limits)
        if sub.notebook is None:
            if sub.notebook_problem != "missing":
                notes.append(
                    f"{student}/{assignment}: skipped, {notebook_name}: {sub.notebook_problem}"
                )
            continue
        try:
            nb = notebooks.read(sub.notebook)
        except Exception as error:  # any parse error: the file is data, not trusted
            notes.append(
                f"{student}/{assignment}: skipped, {notebook_name} is not a readable notebook "
                f"({type(error).__name__})"
            )
            continue
        cells = answer_cells(nb)
        for gid, text in list(cells.items()):
            if len(text) > CELL_CHARS:
                notes.append(
                    f"{student}/{assignment}: cell {gid} cut to its first {CELL_CHARS} "
                    f"of {len(text)} characters"
                )
                cells[gid] = text[:CELL_CHARS]
        answers[student] = cells
    return answers


# ---- comparing -----------------------------------------------------------------------------


def _fingerprint(code: str, boilerplate: np.ndarray, window: int) -> CodeFingerprint:
    # `file` only names the cell (no file is opened: the code comes from `fp`)
    return CodeFingerprint(
        "answer.py",
        NOISE,
        window,
        boilerplate=boilerplate,
        language="python",
        fp=io.StringIO(code),
    )


def boilerplate_hashes(stub: str) -> np.ndarray:
    """Every k-gram hash of the released stub, as copydetect's boilerplate (window 1)."""
    hashes = _fingerprint(stub, np.array([], dtype=np.int64), 1).hashes
    return np.unique(np.array(sorted(hashes), dtype=np.int64))


def _fingerprints(task: Task, stub: str, sources: dict[str, str]) -> tuple[TaskReport, dict]:
    report = TaskReport(task)
    boilerplate = boilerplate_hashes(stub)
    prints = {}
    for student in sorted(sources):
        fp = _fingerprint(sources[student], boilerplate, GUARANTEE - NOISE + 1)
        if fp.hashes and fp.token_coverage > 0:
            prints[student] = fp
            report.compared.append(student)
        else:
            report.stub_only.append(student)
    return report, prints


def _compare(report: TaskReport, prints: dict, top: int, progress: tqdm | None) -> TaskReport:
    pairs = []
    for a, b in itertools.combinations(report.compared, 2):
        overlap, (sim_a, sim_b), (slices_a, slices_b) = compare_files(prints[a], prints[b])
        report.total_pairs += 1
        if progress is not None:
            progress.update(1)
        if overlap <= 0:
            continue
        sim_a, sim_b = float(sim_a), float(sim_b)
        pairs.append(
            Pair(
                report.task.id,
                a,
                b,
                (sim_a + sim_b) / 2,
                sim_a,
                sim_b,
                int(overlap),
                slices_a,
                slices_b,
            )
        )
    pairs.sort(key=lambda p: (-p.similarity, -p.overlap_tokens, p.student_a, p.student_b))
    report.pairs = pairs[:top]
    return report


def compare_task(
    task: Task,
    stub: str,
    sources: dict[str, str],
    top: int,
    progress: tqdm | None = None,
) -> TaskReport:
    """Compare every pair of ``sources`` (student -> answer cell) of one task.

    The students whose cell holds nothing beyond ``stub`` (no fingerprint left once the
    stub's are removed) are listed in ``stub_only`` and take part in no pair.
    """
    report, prints = _fingerprints(task, stub, sources)
    return _compare(report, prints, top, progress)


def run(
    grading: Path,
    assignments: list[str] | tuple[str, ...] = ASSIGNMENTS,
    top: int = DEFAULT_TOP,
    release: Path | None = None,
    limits: Limits | None = None,
    progress: bool = True,
) -> Report:
    """Compare the answer cells of every task of ``assignments``; no file is written."""
    release = release_dir() if release is None else release
    limits = Limits.from_env() if limits is None else limits
    report = Report()
    work = []
    for assignment in assignments:
        released = notebooks.read_release(release, assignment)
        stubs = answer_cells(released)
        answers = read_answers(grading, assignment, limits, report.notes)
        for task in tasks_of(assignment):
            gid = task.answer_cell_id
            sources = {}
            for student, cells in answers.items():
                if gid in cells:
                    sources[student] = cells[gid]
                else:
                    report.notes.append(f"{student}/{assignment}: no answer cell {gid}")
            for student, text in sources.items():
                report.sources[(task.id, student)] = text
            work.append(_fingerprints(task, stubs.get(gid, ""), sources))
    total = sum(len(tr.compared) * (len(tr.compared) - 1) // 2 for tr, _ in work)
    with tqdm(total=total, desc="comparing", unit="pair", disable=not progress) as bar:
        for task_report, prints in work:
            report.tasks.append(_compare(task_report, prints, top, bar))
    return report


# ---- writing -------------------------------------------------------------------------------


def write_csv(report: Report, path: Path) -> None:
    """The top pairs of every task, most similar first (see the module docstring)."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_FIELDS)
        for tr in report.tasks:
            for rank, p in enumerate(tr.pairs, 1):
                writer.writerow(
                    [
                        tr.task.assignment,
                        tr.task.id,
                        rank,
                        p.student_a,
                        p.student_b,
                        f"{p.similarity:.4f}",
                        f"{p.similarity_a:.4f}",
                        f"{p.similarity_b:.4f}",
                        p.overlap_tokens,
                    ]
                )


def highlight(code: str, slices: np.ndarray) -> str:
    """``code`` HTML-escaped, with the passages in ``slices`` (2 x n) inside ``<mark>``."""
    spans = []
    if slices.size:
        for start, end in sorted(zip(slices[0].tolist(), slices[1].tolist(), strict=True)):
            start, end = max(0, int(start)), min(len(code), int(end))
            if end <= start:
                continue
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
    parts, at = [], 0
    for start, end in spans:
        parts.append(html.escape(code[at:start]))
        parts.append("<mark>" + html.escape(code[start:end]) + "</mark>")
        at = end
    parts.append(html.escape(code[at:]))
    return "".join(parts)


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 110em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.side { display: flex; gap: 1em; }
.side > div { flex: 1; min-width: 0; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 85%; }
mark { background: #ffd37a; }
.muted { color: #666; }
"""

HOW_TO_READ = (
    "Each row compares two students' answer cells of one task, with copydetect (winnowed "
    "k-gram fingerprints over the tokenized code: variable and function names, comments and "
    "white space do not count, and the order of functions does not matter). The released stub "
    "is ignored. <em>similarity a</em> is the share of a's code also found in b's cell "
    "(<em>b</em> the converse); rows are sorted by their mean. A high score says the two "
    "cells share long token sequences; it is a reason to read both cells, not a finding: "
    "short tasks have few ways to be written, and code from the course material is shared "
    "by everyone. A low score does not prove independent work either. In the code below, "
    "a marked docstring or string counts as one token only, and a few shared tokens where "
    "the kept signature meets a student's first line are normal."
)


def render_html(report: Report, grading: Path) -> str:
    """The report page (static, self-contained, every student text escaped)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        "<title>Similarity report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Similarity of answer cells</h1>",
        f'<p class="muted">Grading folder: {e(str(grading))}; '
        f"copydetect {e(copydetect.__version__)}, k = {NOISE}.</p>",
        f"<p>{HOW_TO_READ}</p>",
    ]
    if report.notes:
        out.append("<h2>Skipped or cut</h2><ul>")
        out.extend(f"<li>{e(n)}</li>" for n in report.notes)
        out.append("</ul>")
    for tr in report.tasks:
        t = tr.task
        out.append(f'<h2 id="{e(t.id)}">{e(t.id)}: {e(t.title)}</h2>')
        out.append(
            f"<p>{len(tr.compared)} cells with code beyond the stub, {tr.total_pairs} pairs "
            f"compared, the {len(tr.pairs)} most similar with any overlap below.</p>"
        )
        if tr.stub_only:
            out.append(
                "<p>Nothing beyond the released stub (not compared): "
                + ", ".join(e(s) for s in tr.stub_only)
                + "</p>"
            )
        if not tr.pairs:
            continue
        out.append(
            "<table><tr><th>#</th><th>student a</th><th>student b</th><th>similarity</th>"
            "<th>similarity a</th><th>similarity b</th><th>shared tokens</th></tr>"
        )
        for rank, p in enumerate(tr.pairs, 1):
            out.append(
                f'<tr><td class="num"><a href="#{e(t.id)}-{rank}">{rank}</a></td>'
                f"<td>{e(p.student_a)}</td><td>{e(p.student_b)}</td>"
                f'<td class="num">{p.similarity:.0%}</td>'
                f'<td class="num">{p.similarity_a:.0%}</td>'
                f'<td class="num">{p.similarity_b:.0%}</td>'
                f'<td class="num">{p.overlap_tokens}</td></tr>'
            )
        out.append("</table>")
        for rank, p in enumerate(tr.pairs, 1):
            code_a = report.sources.get((t.id, p.student_a), "")
            code_b = report.sources.get((t.id, p.student_b), "")
            out.append(
                f'<details id="{e(t.id)}-{rank}"><summary>#{rank} {e(p.student_a)} and '
                f"{e(p.student_b)}: {p.similarity:.0%}</summary>"
                f'<div class="side"><div><h4>{e(p.student_a)}</h4>'
                f"<pre><code>{highlight(code_a, p.slices_a)}</code></pre></div>"
                f"<div><h4>{e(p.student_b)}</h4>"
                f"<pre><code>{highlight(code_b, p.slices_b)}</code></pre></div></div>"
                "</details>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(report: Report, grading: Path) -> tuple[Path, Path]:
    """Write ``similarity/pairs.csv`` and ``similarity/report.html`` under ``grading``."""
    folder = grading / "similarity"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = folder / "pairs.csv", folder / "report.html"
    write_csv(report, csv_path)
    html_path.write_text(render_html(report, grading), encoding="utf-8")
    return csv_path, html_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.similarity",
        description="Pairwise similarity of the students' answer cells, per task.",
    )
    parser.add_argument("--grading-dir", type=Path, help="default: $DNNK_GRADING_DIR")
    parser.add_argument(
        "--assignment", nargs="+", choices=ASSIGNMENTS, help="default: every assignment"
    )
    parser.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help="pairs kept per task (default 20)"
    )
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    grading = (args.grading_dir or grading_dir()).resolve()
    report = run(grading, args.assignment or ASSIGNMENTS, args.top, progress=True)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    csv_path, html_path = write(report, grading)
    for tr in report.tasks:
        if tr.pairs:
            p = tr.pairs[0]
            print(
                f"{tr.task.id}: most similar {p.student_a} / {p.student_b} "
                f"{p.similarity:.0%} ({tr.total_pairs} pairs)"
            )
    print(f"wrote {csv_path}\nwrote {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
