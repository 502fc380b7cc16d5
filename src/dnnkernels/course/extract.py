"""Find each exercise's reference in ``src/dnnkernels`` and its solution region.

An exercise (see :mod:`dnnkernels.tasks`) is one top-level function or class of its module.
Its reference body sits between the marker lines ``### BEGIN SOLUTION`` and
``### END SOLUTION``, indented to the body level:

- a function: exactly one region, holding every statement of the body after the docstring;
- a class: exactly one region in each method that has one (at least one method), nothing
  outside methods.

From here the course tooling generates the notebook answer cell (the whole definition, with
the import lines of the names it uses) and the student build's stub (the region replaced).
Every violation raises :class:`ExerciseError` naming the task, the file and the line.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dnnkernels.tasks import TASKS, Task

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
# nbgrader treats any line that contains these words as a delimiter, so do we
_BEGIN_WORDS = "BEGIN SOLUTION"
_END_WORDS = "END SOLUTION"
# a marker anywhere in a line: nbgrader takes any line holding the words for a delimiter,
# so nothing released may hold them, not even in prose
MARKER_LINE = re.compile(r"\b(BEGIN|END) (SOLUTION|HIDDEN TESTS|REFERENCE ONLY)\b")
# reference-only regions: the body of a helper that is not an exercise itself but would
# answer one (the naive loop of accumulator.accumulate); cut from the student build
REFERENCE_BEGIN = "### BEGIN REFERENCE ONLY"
REFERENCE_END = "### END REFERENCE ONLY"
_REFERENCE_LINE = re.compile(r"^(\s*)#+\s*(BEGIN|END) REFERENCE ONLY\b")
#: short lines of a solution (``return y``) are too common to count as secret
SECRET_MIN_CHARS = 25


class ExerciseError(ValueError):
    """An exercise is missing from ``src/`` or its solution markers are malformed."""


@dataclass(frozen=True)
class Region:
    """One solution region: the marker lines and the function that holds them (1-based)."""

    function: str  # "conv2d_im2col" or "SVDLinear.forward"
    begin: int  # line of ``### BEGIN SOLUTION``
    end: int  # line of ``### END SOLUTION``
    indent: str
    params: tuple[str, ...]  # how a stub passes its arguments on (``self``, ``x``, ``b=b``)


@dataclass(frozen=True)
class Exercise:
    """The reference of one task, as found in its module."""

    task: Task
    path: Path
    kind: str  # "function" or "class"
    start: int  # first line (first decorator), 1-based
    end: int  # last line (the last END marker at the latest), 1-based
    lines: tuple[str, ...] = field(repr=False)  # all lines of the module
    regions: tuple[Region, ...]
    docstring: str | None
    imports: tuple[str, ...]  # import lines of the names the definition uses

    @property
    def source(self) -> str:
        """The whole definition: decorators, signature, docstring and body."""
        return "\n".join(self.lines[self.start - 1 : self.end])

    def solution_lines(self) -> list[str]:
        """The lines strictly between the markers of every region."""
        return [line for r in self.regions for line in self.lines[r.begin : r.end - 1]]


def module_path(src: Path, module: str) -> Path:
    """``src/dnnkernels/<module>.py`` for ``src`` = the ``src/dnnkernels`` folder."""
    return Path(src) / f"{module}.py"


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _extent(lines: list[str], node: ast.AST) -> tuple[int, int]:
    """First and last line of a definition, with trailing comment lines of its body.

    ``ast`` ends a definition at its last statement; an END marker after that statement is a
    comment that still belongs to the body (it is indented deeper than the ``def``).
    """
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    depth = len(_indent(lines[node.lineno - 1]))
    end = node.end_lineno
    for number in range(node.end_lineno + 1, len(lines) + 1):
        line = lines[number - 1]
        if not line.strip():
            continue
        if len(_indent(line)) > depth and line.lstrip().startswith("#"):
            end = number
            continue
        break
    return start, end


def _call_params(args: ast.arguments) -> tuple[str, ...]:
    """How a stub forwards its own arguments: positionally where possible."""
    params: list[str] = [a.arg for a in args.posonlyargs + args.args]
    if args.vararg is not None:
        params.append(f"*{args.vararg.arg}")
    params += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    if args.kwarg is not None:
        params.append(f"**{args.kwarg.arg}")
    return tuple(params)


def _markers(lines: list[str], first: int, last: int) -> tuple[list[int], list[int]]:
    begins = [n for n in range(first, last + 1) if _BEGIN_WORDS in lines[n - 1]]
    ends = [
        n
        for n in range(first, last + 1)
        if _END_WORDS in lines[n - 1] and _BEGIN_WORDS not in lines[n - 1]
    ]
    return begins, ends


def _region(
    task: Task,
    rel: str,
    lines: list[str],
    fn: ast.FunctionDef | ast.AsyncFunctionDef,
    qualname: str,
    whole_body: bool,
) -> Region | None:
    """The one solution region of a function body (None if it has none and may have none)."""
    first, last = _extent(lines, fn)
    begins, ends = _markers(lines, first, last)
    where = f"Task {task.id}: `{qualname}` in {rel}"
    if not begins and not ends:
        if whole_body:
            raise ExerciseError(
                f"{where} (line {fn.lineno}) has no `{BEGIN}` / `{END}` lines; put the "
                "reference body between them"
            )
        return None
    if len(begins) != 1 or len(ends) != 1:
        raise ExerciseError(
            f"{where}: expected exactly one `{BEGIN}` and one `{END}` line in the body, "
            f"found {len(begins)} (lines {begins}) and {len(ends)} (lines {ends})"
        )
    begin, end = begins[0], ends[0]
    if not begin < end:
        raise ExerciseError(f"{where}: `{END}` (line {end}) comes before `{BEGIN}` (line {begin})")
    body = [s for s in fn.body if not _is_docstring(s)] if whole_body else []
    indent = _indent(lines[fn.body[0].lineno - 1])
    for number, marker in ((begin, BEGIN), (end, END)):
        if lines[number - 1] != indent + marker:
            raise ExerciseError(
                f"{where}, line {number}: expected the marker line {indent + marker!r} "
                f"(indented to the body), got {lines[number - 1]!r}"
            )
    for stmt in body:
        if stmt.lineno < begin or stmt.end_lineno > end:
            raise ExerciseError(
                f"{where}, line {stmt.lineno}: code outside `{BEGIN}` / `{END}`; the whole "
                "body after the docstring must be the solution (argument checks belong in "
                "the public dispatcher)"
            )
    return Region(qualname, begin, end, indent, _call_params(fn.args))


def _module_bindings(tree: ast.Module, module: str) -> dict[str, str]:
    """For each name bound at the top of a module: the import line that provides it."""
    bindings: dict[str, str] = {}

    def visit(stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        bindings[alias.asname] = f"import {alias.name} as {alias.asname}"
                    else:
                        top = alias.name.split(".")[0]
                        bindings.setdefault(top, f"import {alias.name}")
            elif isinstance(stmt, ast.ImportFrom):
                if stmt.module == "__future__":
                    continue
                base = stmt.module or ""
                if stmt.level:
                    base = "dnnkernels" + ("." + base if base else "")
                for alias in stmt.names:
                    name = alias.asname or alias.name
                    text = f"from {base} import {alias.name}"
                    bindings[name] = text + (f" as {alias.asname}" if alias.asname else "")
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bindings[stmt.name] = f"from dnnkernels.{module} import {stmt.name}"
            elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    for node in ast.walk(target):
                        if isinstance(node, ast.Name):
                            bindings[node.id] = f"from dnnkernels.{module} import {node.id}"
            elif isinstance(stmt, ast.If | ast.Try):
                visit(stmt.body)
                visit(getattr(stmt, "orelse", []))

    visit(tree.body)
    return bindings


def _sorted_imports(lines: set[str]) -> tuple[str, ...]:
    """Import lines in isort order: standard library, other packages, then dnnkernels.

    Within a section ``import x`` lines come before ``from x import y`` lines; a blank line
    separates the sections.
    """

    def section(line: str) -> int:
        top = line.split()[1].split(".")[0]
        if top == "dnnkernels":
            return 2
        return 0 if top in sys.stdlib_module_names else 1

    def key(line: str) -> tuple[int, str]:
        return (0 if line.startswith("import ") else 1, line.split()[1], line)

    out: list[str] = []
    for number in range(3):
        group = sorted((x for x in lines if section(x) == number), key=key)
        if group and out:
            out.append("")
        out += group
    return tuple(out)


def _used_imports(task: Task, tree: ast.Module, node: ast.AST) -> tuple[str, ...]:
    """Import lines for the module-level names that a definition uses.

    Exercises of the same assignment are left out: the student defines them in earlier
    cells of the same notebook, and importing the stub would shadow their own version.
    """
    bindings = _module_bindings(tree, task.module)
    same_assignment = {t.name for t in TASKS.values() if t.assignment == task.assignment}
    used: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in bindings and sub.id != task.name:
            if sub.id in same_assignment and bindings[sub.id].startswith("from dnnkernels."):
                continue
            used.add(bindings[sub.id])
    return _sorted_imports(used)


def find_exercise(task: Task, src: Path) -> Exercise:
    """Locate and validate the reference of ``task`` in ``src`` (the ``dnnkernels`` folder).

    Raises:
        ExerciseError: the module or the definition is missing, or the markers are malformed.
    """
    path = module_path(src, task.module)
    rel = f"src/dnnkernels/{task.module}.py"
    if not path.is_file():
        raise ExerciseError(
            f"Task {task.id}: {rel} does not exist (yet); it must define `{task.name}` with "
            f"its body between `{BEGIN}` and `{END}`"
        )
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text, filename=str(path))
    nodes = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and n.name == task.name
    ]
    if not nodes:
        raise ExerciseError(
            f"Task {task.id}: {rel} has no top-level function or class `{task.name}` (yet)"
        )
    if len(nodes) > 1:
        raise ExerciseError(
            f"Task {task.id}: {rel} defines `{task.name}` {len(nodes)} times "
            f"(lines {[n.lineno for n in nodes]})"
        )
    node = nodes[0]
    start, end = _extent(lines, node)
    docstring = ast.get_docstring(node, clean=False)
    if isinstance(node, ast.ClassDef):
        kind = "class"
        regions = []
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                region = _region(
                    task,
                    rel,
                    lines,
                    stmt,
                    f"{node.name}.{stmt.name}",
                    whole_body=False,
                )
                if region is not None:
                    regions.append(region)
        if not regions:
            raise ExerciseError(
                f"Task {task.id}: class `{task.name}` in {rel} (line {node.lineno}) has no "
                f"method with `{BEGIN}` / `{END}` lines"
            )
        inside = {n for r in regions for n in range(r.begin, r.end + 1)}
        begins, ends = _markers(lines, start, end)
        stray = sorted(set(begins + ends) - inside)
        if stray:
            raise ExerciseError(
                f"Task {task.id}: class `{task.name}` in {rel} has marker lines outside its "
                f"methods' bodies (lines {stray})"
            )
    else:
        kind = "function"
        regions = [_region(task, rel, lines, node, node.name, whole_body=True)]
    if docstring is None:
        raise ExerciseError(
            f"Task {task.id}: `{task.name}` in {rel} has no docstring; the student stub keeps "
            "the docstring (shapes, dtypes, formula), so write one"
        )
    end = max([end] + [r.end for r in regions])
    return Exercise(
        task=task,
        path=path,
        kind=kind,
        start=start,
        end=end,
        lines=tuple(lines),
        regions=tuple(regions),
        docstring=docstring,
        imports=_used_imports(task, tree, node),
    )


def answer_source(exercise: Exercise) -> str:
    """The notebook answer cell of a task: the import lines it needs, then the definition."""
    parts = []
    if exercise.imports:
        parts.append("\n".join(exercise.imports))
    parts.append(exercise.source)
    return "\n\n\n".join(parts)


def normalise_line(line: str) -> str:
    """A code line compared for secrets: stripped, whitespace runs collapsed."""
    return " ".join(line.split())


def solution_regions_of_text(lines: list[str]) -> list[tuple[int, int]]:
    """(begin, end) line pairs (1-based) of the marker regions of a text, in order."""
    regions = []
    begin = None
    for number, line in enumerate(lines, 1):
        if _BEGIN_WORDS in line:
            begin = number
        elif _END_WORDS in line and begin is not None:
            regions.append((begin, number))
            begin = None
    return regions


@dataclass(frozen=True)
class ReferenceRegion:
    """A reference-only region of a module (1-based marker lines) and its function."""

    function: str  # the innermost enclosing def, "accumulate_loop" or "Class.method"
    begin: int
    end: int
    indent: str


def reference_regions(text: str, where: str) -> list[ReferenceRegion]:
    """The reference-only regions of a module's text, in order.

    A region sits between ``### BEGIN REFERENCE ONLY`` and ``### END REFERENCE ONLY``, both
    at the same indentation, inside one function body (not nested in another region).

    Raises:
        ExerciseError: an unmatched or misplaced marker, naming ``where`` and the line.
    """
    lines = text.splitlines()
    regions: list[ReferenceRegion] = []
    begin: tuple[int, str] | None = None
    for number, line in enumerate(lines, 1):
        match = _REFERENCE_LINE.match(line)
        if not match:
            continue
        indent, kind = match.group(1), match.group(2)
        if kind == "BEGIN":
            if begin is not None:
                raise ExerciseError(
                    f"{where}, line {number}: BEGIN REFERENCE ONLY inside the region opened "
                    f"at line {begin[0]}"
                )
            begin = (number, indent)
            continue
        if begin is None or begin[1] != indent:
            raise ExerciseError(
                f"{where}, line {number}: END REFERENCE ONLY without a BEGIN at the same "
                "indentation"
            )
        regions.append(ReferenceRegion("", begin[0], number, indent))
        begin = None
    if begin is not None:
        raise ExerciseError(f"{where}, line {begin[0]}: BEGIN REFERENCE ONLY is never closed")
    if not regions:
        return regions
    functions: list[tuple[int, int, str]] = []  # (first body line, last line, qualified name)

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                functions.append((child.body[0].lineno, _extent(lines, child)[1], name))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(ast.parse(text), "")
    placed = []
    for region in regions:
        around = [f for f in functions if f[0] <= region.begin and region.end <= f[1]]
        if not around:
            raise ExerciseError(
                f"{where}, line {region.begin}: a reference-only region must be inside a "
                "function body"
            )
        name = max(around, key=lambda f: f[0])[2]  # the innermost function
        placed.append(ReferenceRegion(name, region.begin, region.end, region.indent))
    return placed


def all_exercises(src: Path, tasks: list[Task] | None = None) -> dict[str, Exercise]:
    """Every exercise by task ID (all tasks by default); raises on the first missing one."""
    chosen = list(TASKS.values()) if tasks is None else tasks
    return {t.id: find_exercise(t, src) for t in chosen}
