"""``make release``: source notebooks + src/ -> the student release in ``release/``.

Steps (:func:`build`):

1. each ``source/<a>/<a>.py`` becomes the instructor notebook
   ``build/course/source/<a>/<a>.ipynb`` (nbgrader metadata from the cell tags, solutions
   injected from ``src/``; :mod:`dnnkernels.course.notebooks`);
2. real nbgrader (``nbgrader generate_assignment <a> --force`` through its Python API, with
   the repository's ``nbgrader_config.py``) writes ``build/course/release/<a>/`` and
   registers the assignment, its notebook and cells in the release's own gradebook
   (``build/course/gradebook.db``): never the grading gradebook, which the grader keeps in
   step with ``release/`` (``autograder.gradebook.sync_assignment``, no grade dropped);
3. in each answer cell nbgrader's ``raise NotImplementedError()`` becomes
   ``raise NotImplementedError("<the task's message>")`` (checksums and gradebook follow);
4. the notebooks are normalised (no volatile metadata, sorted keys, nbformat 4.5, stable
   cell IDs), so that the same inputs give the same bytes;
5. the student build of the package, ``release/pyproject.toml`` and ``release/README.md``
   (:mod:`dnnkernels.course.student_package`);
6. everything is written to ``release/``; files there that the build no longer makes go.

:func:`check` (``python -m dnnkernels.course check``) rebuilds into a temporary folder and
compares bytes with ``release/``, and scans ``release/`` for anything secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dnnkernels.course import notebooks
from dnnkernels.course.extract import (
    MARKER_LINE,
    SECRET_MIN_CHARS,
    Exercise,
    all_exercises,
    normalise_line,
    reference_regions,
    solution_regions_of_text,
)
from dnnkernels.course.paths import Layout
from dnnkernels.course.student_package import student_release_files
from dnnkernels.tasks import ASSIGNMENTS, tasks_of

#: files under release/ that are never part of the build (local state of whoever uses it)
IGNORED_PARTS = (
    "__pycache__",
    ".ipynb_checkpoints",
    ".venv",
    ".pytest_cache",
    "build",
    ".DS_Store",
)
IGNORED_SUFFIXES = (".pyc", ".egg-info")


def is_ignored(rel: Path) -> bool:
    return any(p in IGNORED_PARTS or p.endswith(IGNORED_SUFFIXES) for p in rel.parts)


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` that the release owns, by relative POSIX path."""
    root = Path(root)
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not is_ignored(p.relative_to(root))
    }


# ------------------------------------------------------------------------------- nbgrader


def nbgrader_config(repo: Path, course_root: Path, grading: Path):
    """The repository's ``nbgrader_config.py`` with the course root and gradebook set."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(repo)).load_config()
    config.CourseDirectory.root = str(Path(course_root).resolve())
    # nbgrader's raw student versions go to the course root, never into the repository's
    # release/ (which nbgrader_config.py points release_assignment at)
    config.CourseDirectory.release_directory = "release"
    config.CourseDirectory.db_url = f"sqlite:///{Path(grading).resolve() / 'gradebook.db'}"
    return config


@contextlib.contextmanager
def venv_on_path() -> Iterator[None]:
    """This interpreter's ``bin/`` first on ``PATH`` for the duration.

    nbgrader creates a new gradebook by running the ``alembic`` command found on ``PATH``;
    with ``.venv/bin/python`` called directly (as ``make`` does) the venv is not on it.
    """
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before])
    try:
        yield
    finally:
        os.environ["PATH"] = before


def generate_assignment(config, assignment: str) -> None:
    """``nbgrader generate_assignment <assignment> --force`` (nbgrader's own converter)."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    Path(config.CourseDirectory.db_url.removeprefix("sqlite:///")).parent.mkdir(
        parents=True, exist_ok=True
    )
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    converter = GenerateAssignment(coursedir=coursedir, config=config)
    converter.force = True
    converter.log.setLevel(logging.WARNING)
    with venv_on_path():
        result = capture_log(converter)
    if not result["success"]:
        raise RuntimeError(
            f"nbgrader generate_assignment {assignment} failed:\n{result.get('log', '')}\n"
            f"{result.get('error', '')}"
        )


def update_gradebook(config, assignment: str, nb, changed: Iterable[int]) -> None:
    """Store the post-processed source and checksum of changed cells in the gradebook."""
    from nbgrader.api import Gradebook

    with (
        venv_on_path(),
        Gradebook(config.CourseDirectory.db_url, config.CourseDirectory.course_id) as gb,
    ):
        for index in changed:
            cell = nb.cells[index]
            meta = cell.metadata.nbgrader
            source_cell = gb.find_source_cell(meta["grade_id"], assignment, assignment)
            source_cell.source = cell.source
            source_cell.checksum = meta["checksum"]
        gb.db.commit()


# ---------------------------------------------------------------------------------- build


@dataclass
class Build:
    """The result of :func:`build`."""

    files: dict[str, bytes]  # release files by relative path
    exercises: dict[str, Exercise]
    course_root: Path
    db_url: str
    instructor: dict[str, Path] = field(default_factory=dict)  # assignment -> instructor nb


def _extra_files(folder: Path) -> list[Path]:
    """Files of ``source/<a>/`` that ship with the notebook (images, data; not the .py)."""
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".py" and not is_ignored(p.relative_to(folder))
    ]


def instructor_notebooks(
    layout: Layout,
    exercises: dict[str, Exercise],
    out: Path,
    assignments: Iterable[str] = ASSIGNMENTS,
    command: str = "make release",
    extra: str = notebooks.STUDENT_NOTE,
) -> dict[str, Path]:
    """Write ``out/<a>/<a>.ipynb`` (solutions injected) and the assignment's other files."""
    written = {}
    for assignment in assignments:
        nb = notebooks.build_notebook(
            assignment,
            layout.source_notebook(assignment),
            {t.id: exercises[t.id] for t in tasks_of(assignment)},
            notebooks.notice_text(assignment, command, extra),
        )
        folder = Path(out) / assignment
        if folder.exists():
            shutil.rmtree(folder)
        written[assignment] = notebooks.write(nb, folder / f"{assignment}.ipynb")
        for extra_file in _extra_files(layout.source / assignment):
            target = folder / extra_file.relative_to(layout.source / assignment)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(extra_file, target)
    return written


def build(
    layout: Layout,
    course_root: Path,
    grading: Path,
    progress: Callable[[str], None] = lambda message: None,
) -> Build:
    """Generate the whole release in memory (nbgrader works in ``course_root``).

    Args:
        layout: the repository.
        course_root: nbgrader's course root for this build (``build/course`` or a temporary
            folder); its ``source/`` and ``release/`` are rewritten.
        grading: the folder of the gradebook that registers the assignments.
        progress: called with a short message before each step.

    Raises:
        ExerciseError: an exercise is missing from src/ or its markers are malformed.
        NotebookError: a source notebook breaks the tag conventions.
    """
    progress("extracting the exercises from src/")
    exercises = all_exercises(layout.src)
    config = nbgrader_config(layout.repo, course_root, grading)
    progress("building the instructor notebooks")
    instructor = instructor_notebooks(layout, exercises, Path(course_root) / "source")
    files: dict[str, bytes] = {}
    for assignment in ASSIGNMENTS:
        progress(f"nbgrader generate_assignment {assignment}")
        generate_assignment(config, assignment)
        released = Path(course_root) / "release" / assignment
        for rel, data in tree_files(released).items():
            if rel == f"{assignment}.ipynb":
                nb = notebooks.read(released / rel)
                changed = notebooks.postprocess_release(nb)
                update_gradebook(config, assignment, nb, changed)
                data = notebooks.dumps(notebooks.normalise(nb)).encode("utf-8")
            files[f"{assignment}/{rel}"] = data
    progress("building the student package")
    files.update(student_release_files(layout.src, layout.repo / "pyproject.toml", exercises))
    return Build(files, exercises, Path(course_root), config.CourseDirectory.db_url, instructor)


def sync(target: Path, files: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """Make ``target`` hold exactly ``files`` (ignored local state aside).

    Returns:
        ``(written, deleted)`` relative paths.
    """
    target = Path(target)
    current = tree_files(target)
    deleted = sorted(set(current) - set(files))
    for rel in deleted:
        (target / rel).unlink()
    for folder in sorted({(target / rel).parent for rel in deleted}, reverse=True):
        while folder != target and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    written = []
    for rel, data in sorted(files.items()):
        if current.get(rel) != data:
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(rel)
    return written, deleted


def release(layout: Layout, progress: Callable[[str], None] = print) -> Build:
    """``make release``: build into ``build/course`` (and its gradebook), write ``release/``."""
    result = build(layout, layout.course, layout.course, progress)
    problems = scan_files(layout, result.files, result.exercises)
    if problems:
        raise RuntimeError(
            "not written: release/ would leak solutions:\n  " + "\n  ".join(problems)
        )
    written, deleted = sync(layout.release, result.files)
    progress(
        f"release/: {len(result.files)} files, {len(written)} written, {len(deleted)} deleted "
        f"(gradebook: {result.db_url.removeprefix('sqlite:///')})"
    )
    return result


# ------------------------------------------------------------------------------- checking


def _texts_of(data: bytes, rel: str) -> list[str]:
    """The text lines of a release file (cell sources and outputs for notebooks)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    if not rel.endswith(".ipynb"):
        return text.splitlines()
    lines: list[str] = []
    for cell in json.loads(text).get("cells", []):
        lines += "".join(cell.get("source", "")).splitlines()
        for output in cell.get("outputs", []):
            lines += "".join(output.get("text", "")).splitlines()
            for value in output.get("data", {}).values():
                if isinstance(value, str | list):
                    lines += "".join(value).splitlines()
            lines += output.get("traceback", [])
    return lines


def secret_set(layout: Layout, exercises: dict[str, Exercise]) -> set[str]:
    """Normalised lines (>= SECRET_MIN_CHARS) found only inside solution regions.

    Inside: the solution regions of every exercise in ``src/``, the reference-only regions
    of ``src/`` (see :func:`dnnkernels.course.student_package.cut_reference_only`) and the
    solution regions of the manually graded cells of the source notebooks (the whole cell
    when it has no markers). Outside: every other line of ``src/`` and of the source
    notebooks.
    """
    inside: set[str] = set()
    outside: set[str] = set()
    in_exercise: dict[Path, set[int]] = {}
    for exercise in exercises.values():
        numbers = in_exercise.setdefault(exercise.path.resolve(), set())
        for region in exercise.regions:
            numbers.update(range(region.begin, region.end + 1))
        inside.update(normalise_line(x) for x in exercise.solution_lines())
    for path in sorted(layout.src.rglob("*.py")):
        numbers = in_exercise.get(path.resolve(), set())
        text = path.read_text(encoding="utf-8")
        reference = {
            n
            for r in reference_regions(text, str(path.relative_to(layout.src)))
            for n in range(r.begin + 1, r.end)
        }
        for number, line in enumerate(text.splitlines(), 1):
            if number in reference:
                inside.add(normalise_line(line))
            elif number not in numbers:
                outside.add(normalise_line(line))
    for assignment in ASSIGNMENTS:
        path = layout.source_notebook(assignment)
        if not path.is_file():
            continue
        for cell in notebooks.read_source(path).cells:
            lines = cell.source.splitlines()
            role, _ = notebooks.role_of(cell)
            regions = solution_regions_of_text(lines) if role == "manual" else []
            if role == "manual" and not regions:
                regions = [(0, len(lines) + 1)]
            secret_numbers = {n for b, e in regions for n in range(b + 1, e)}
            for number, line in enumerate(lines, 1):
                target = inside if number in secret_numbers else outside
                target.add(normalise_line(line))
    return {line for line in inside - outside if len(line) >= SECRET_MIN_CHARS}


def scan(layout: Layout, release_dir: Path, exercises: dict[str, Exercise]) -> list[str]:
    """Everything secret found in ``release_dir``: one message per finding (empty if clean).

    Looks for solution and hidden-test marker lines, the reference lines of every solution
    (:func:`secret_set`), and any file of ``autograder/`` (same bytes, or a hidden test's
    file name).
    """
    return scan_files(layout, tree_files(release_dir), exercises)


def scan_files(
    layout: Layout, files: dict[str, bytes], exercises: dict[str, Exercise]
) -> list[str]:
    """:func:`scan` of release files given by relative path and bytes."""
    secrets = secret_set(layout, exercises)
    problems = []
    for rel, data in files.items():
        for line in _texts_of(data, rel):
            if MARKER_LINE.search(line):
                problems.append(f"{rel}: marker line {line.strip()!r}")
            elif normalise_line(line) in secrets:
                problems.append(f"{rel}: reference solution line {line.strip()!r}")
    hidden = tree_files(layout.autograder)
    hidden_hashes = {hashlib.sha256(d).hexdigest(): r for r, d in hidden.items() if d.strip()}
    hidden_names = {Path(r).name for r in hidden if Path(r).name.startswith("test_")}
    for rel, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        if digest in hidden_hashes:
            problems.append(f"{rel}: a copy of autograder/{hidden_hashes[digest]}")
        if Path(rel).name in hidden_names:
            problems.append(f"{rel}: has the name of a hidden test file of autograder/")
    return problems


def check(layout: Layout, progress: Callable[[str], None] = lambda m: None) -> list[str]:
    """Problems with ``release/``: stale against source/ and src/, or leaking secrets.

    Rebuilds the release in a temporary folder (with a temporary gradebook, so the real one
    is untouched) and compares bytes file by file.
    """
    problems = []
    with tempfile.TemporaryDirectory(prefix="dnnk-release-check-") as tmp:
        result = build(layout, Path(tmp) / "course", Path(tmp) / "grading", progress)
    current = tree_files(layout.release)
    for rel in sorted(set(current) | set(result.files)):
        if rel not in current:
            problems.append(f"release/{rel}: missing (run `make release`)")
        elif rel not in result.files:
            problems.append(f"release/{rel}: stale, no longer generated (run `make release`)")
        elif current[rel] != result.files[rel]:
            problems.append(f"release/{rel}: differs from a fresh build (run `make release`)")
    problems += [f"release/{p}" for p in scan(layout, layout.release, result.exercises)]
    return problems
