"""What students and instructors read: check lines, grader notes, sanitized notebooks.

- :func:`annotate` prints each task's hidden-check results under its graded cell (plain
  text stream outputs) and puts the grader's notes in a markdown cell on top, every note
  escaped so that nothing a student wrote (a file name, an error message) is markup.
- :func:`sanitize` cleans a notebook with bleach against an allow-list (:data:`SAFE_TAGS`):
  markdown and raw cells are rendered as nbconvert renders them and, if the rendering holds
  anything unsafe (``<script>``, event handlers, ``javascript:`` links written in markdown
  syntax), replaced by the cleaned HTML; HTML and markdown outputs are cleaned, and
  nbconvert's ``SanitizeHTML`` preprocessor removes every other rich output type but plain
  text, PNG/JPEG, LaTeX and JSON (JavaScript, SVG, widgets). The grader stores only
  sanitized notebooks, so feedback pages and nbgrader's formgrader (whose templates render
  graded cells without nbconvert's ``sanitize_html``) show no live student markup.
"""

from __future__ import annotations

import html
import re

import bleach
import nbformat
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown import markdown2html
from nbconvert.preprocessors.sanitize import SanitizeHTML

from autograder import notebooks
from dnnkernels.tasks import TASKS, tasks_of

FEEDBACK_HEADER = (
    "Hidden checks of {task}: {earned:g} / {points:g} points\n"
    "(run on other inputs than the visible checks above; they decide this cell's points)\n"
)


def feedback_text(task_id: str, checks: list) -> str:
    """The per-check lines appended under a task's graded cell."""
    mine = [c for c in checks if c.get("task") == task_id]
    earned = sum(float(c.get("earned", 0)) for c in mine)
    points = TASKS[task_id].points
    lines = [FEEDBACK_HEADER.format(task=task_id, earned=earned, points=points)]
    if not mine:
        lines.append("  x no hidden check could run for this task (0 points)\n")
    previous = None
    for c in mine:
        mark = "\u2713" if c.get("outcome") == "passed" else "\u2717"
        text = f"  {mark} {c.get('title', c.get('check'))}"
        if c.get("outcome") != "passed":
            message = c.get("message") or c.get("outcome")
            text += ": same error as above" if message == previous else f": {message}"
            previous = message
        text += f" ({float(c.get('earned', 0)):g} / {float(c.get('points', 0)):g})\n"
        lines.append(text)
    return "".join(lines)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def plain_markdown(text: str) -> str:
    """``text`` as markdown that renders as itself: HTML escaped, markdown syntax escaped."""
    return _MARKDOWN.sub(r"\\\1", html.escape(str(text), quote=True)).replace("\n", " ")


def annotate(nb, assignment: str, checks: list, notes: list[str]) -> None:
    """Append the hidden-check feedback to each task's graded cell; notes on top."""
    homeless = []
    for task in tasks_of(assignment):
        text = feedback_text(task.id, checks)
        cell = next((c for c in nb.cells if notebooks.grade_id(c) == task.id), None)
        if cell is None or cell.cell_type != "code":
            homeless.append(text)
            continue
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
    if notes or homeless:
        body = "**Grader notes**\n\n" + "".join(f"- {plain_markdown(n)}\n" for n in notes)
        if homeless:
            body += "\n" + "\n".join(f"```\n{t.replace('`', chr(39))}```" for t in homeless)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(body))


#: what a cleaned cell may keep: formatting, tables, images; no scripts, forms, frames,
#: styles or event handlers, and links only to http(s), mailto and notebook attachments
SAFE_TAGS = frozenset(bleach.sanitizer.ALLOWED_TAGS) | {
    "p",
    "div",
    "span",
    "br",
    "hr",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "sub",
    "sup",
    "del",
    "ins",
    "s",
    "u",
    "small",
    "kbd",
    "samp",
    "var",
    "q",
    "cite",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "caption",
    "colgroup",
    "col",
    "img",
    "figure",
    "figcaption",
    "details",
    "summary",
}
SAFE_ATTRIBUTES = {
    "a": ["href", "title"],
    "img": ["src", "alt", "title", "width", "height"],
    "th": ["colspan", "rowspan", "align"],
    "td": ["colspan", "rowspan", "align"],
    "*": ["class", "title"],
}
SAFE_PROTOCOLS = frozenset({"http", "https", "mailto", "attachment"})


def clean_html(html_text: str) -> str:
    """``html_text`` with everything but :data:`SAFE_TAGS` and their safe attributes escaped."""
    return bleach.clean(
        html_text,
        tags=SAFE_TAGS,
        attributes=SAFE_ATTRIBUTES,
        protocols=SAFE_PROTOCOLS,
        strip=False,
        strip_comments=True,
    )


def clean_markdown(source: str) -> str:
    """A markdown cell's source that renders safely.

    The source is rendered as nbconvert renders it; if the cleaned rendering differs (a
    script, a handler, a ``javascript:`` link in markdown syntax), the cell's source becomes
    the cleaned HTML (which renders the same way everywhere); otherwise it is kept as is.
    """
    rendered = markdown2html(source)
    cleaned = clean_html(rendered)
    return source if cleaned == rendered else cleaned


def sanitize(nb) -> None:
    """Clean every cell of ``nb`` in place (see the module docstring)."""
    cleaner = SanitizeHTML(
        tags=sorted(SAFE_TAGS), attributes=SAFE_ATTRIBUTES, strip=False, strip_comments=True
    )
    resources: dict = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type in ("markdown", "raw"):
            cell.source = clean_markdown(cell.source)
        else:
            cleaner.preprocess_cell(cell, resources, index)
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                for key in ("text/html", "text/markdown"):
                    if key in output.get("data", {}):
                        output["data"][key] = clean_html(
                            markdown2html(output["data"][key])
                            if key == "text/markdown"
                            else output["data"][key]
                        )
    for cell in nb.cells:  # pasted images: PNG and JPEG only
        attachments = cell.get("attachments")
        if not isinstance(attachments, dict):
            cell.pop("attachments", None)
            continue
        kept = {}
        for name, bundle in attachments.items():
            if isinstance(bundle, dict):
                safe = {k: v for k, v in bundle.items() if k in ("image/png", "image/jpeg")}
                if safe:
                    kept[name] = safe
        cell["attachments"] = kept
        if not kept:
            del cell["attachments"]


# ---- MathJax served with the page -------------------------------------------------------

# nbconvert's template loads MathJax 2 from a CDN (raw TeX offline); feedback pages carry
# their own copy of MathJax 3's self-contained SVG build (fonts as paths, no further
# requests), from the sphinx-mathjax-offline package the book uses too.
_CDN_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MATHJAX_CONFIG = (
    "<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
    "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, "
    "processEnvironments: true}, options: {enableMenu: false}};</script>\n"
)


def local_mathjax_script() -> str:
    """MathJax 3 ``tex-svg.js`` (about 2 MB), read from the installed sphinx-mathjax-offline."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "feedback: the local MathJax copy (PyPI sphinx-mathjax-offline) is not installed"
        )
    script = Path(spec.origin).parent / "static" / "mathjax" / "tex-svg.js"
    return script.read_text(encoding="utf-8")


def localize_mathjax(page: str, script: str) -> str:
    """Replace the CDN MathJax of an nbconvert HTML page (in its ``<head>``) by ``script``.

    ``</script>`` never occurs in the minified MathJax build, so it is inlined as is. Raises
    ``ValueError`` when the page has neither that block in its head nor the local one."""
    head_end = page.find("</head>")
    match = _CDN_BLOCK.search(page, 0, head_end if head_end >= 0 else len(page))
    if match is None and _MATHJAX_CONFIG in page:
        return page  # already local (a page nbgrader did not regenerate)
    if match is None:
        raise ValueError("feedback: no MathJax block in the page's head to replace")
    if "</script" in script.lower():
        raise ValueError("feedback: the MathJax script cannot be inlined (holds </script>)")
    block = _MATHJAX_CONFIG + "<script>" + script + "</script>"
    return page[: match.start()] + block + page[match.end() :]


# ---- grades as the student reads them ----------------------------------------------------

_TOC_SCORE = r'(<a href="#{gid}">[^<]*</a> )\(Score: [0-9.]+ / [0-9.]+\)'
_CELL_SCORE = r'(<a name="{gid}"></a>.{{0,600}}?)Score: [0-9.]+ / [0-9.]+( <a href="#top">)'


def mark_grades(page: str, ungraded: dict[str, float], bonus: dict[str, float]) -> str:
    """nbgrader's feedback page with the truth about hand-graded and bonus cells.

    Args:
        ungraded: grade id -> points of a cell not graded yet (nbgrader shows "0.0 / 3.0").
        bonus: grade id -> extra credit earned in a bonus cell (nbgrader shows "1.0 / 0.0").
    """
    for gid, points in ungraded.items():
        text = f"not graded yet ({points:g} point{'' if points == 1 else 's'})"
        page = re.sub(_TOC_SCORE.format(gid=re.escape(gid)), rf"\1({text})", page)
        page = re.sub(
            _CELL_SCORE.format(gid=re.escape(gid)), rf"\1{text.capitalize()}\2", page, flags=re.S
        )
    for gid, earned in bonus.items():
        if gid in ungraded:
            continue
        text = f"extra credit: {earned:g}"
        page = re.sub(_TOC_SCORE.format(gid=re.escape(gid)), rf"\1({text})", page)
        page = re.sub(
            _CELL_SCORE.format(gid=re.escape(gid)), rf"\1{text.capitalize()}\2", page, flags=re.S
        )
    pending = sum(ungraded.values())
    extra = sum(bonus.values())
    notes = []
    if extra:
        notes.append(f"{extra:g} of them extra credit")
    if pending:
        notes.append(f"{pending:g} more points not graded yet")
    if notes:
        page = re.sub(
            r"(<h4>[^<]*\(Score: [0-9.]+ / [0-9.]+)\)</h4>",
            lambda m: m.group(1) + "; " + ", ".join(notes) + ")</h4>",
            page,
            count=1,
        )
    return page


# ---- nbgrader's own generate_feedback (formgrader's button, the CLI) ----------------------


def grade_marks(db_url: str, assignment: str, student: str) -> tuple[dict, dict]:
    """(ungraded, bonus) of one submission for :func:`mark_grades`, from the gradebook."""
    from nbgrader.api import Gradebook

    from autograder import gradebook
    from autograder.paths import release_dir

    release = notebooks.read_release(release_dir(), assignment)
    bonus = gradebook.bonus_points(release, assignment)
    with Gradebook(db_url) as gb:
        cells = gradebook.scores(gb, assignment, student)
    ungraded = {g: bonus.get(g, c["max"] or 0.0) for g, c in cells.items() if c["needs_manual"]}
    return ungraded, {g: c["extra"] for g, c in cells.items() if g in bonus}


class OfflineFeedbackExporter(HTMLExporter):
    """``c.GenerateFeedback.exporter_class``: nbgrader's page, local MathJax, true grades.

    So that a page made by nbgrader itself (``nbgrader generate_feedback``, formgrader's
    *Generate Feedback*) is the one the grader makes: MathJax inlined, hand-graded cells
    not graded yet saying so, bonus cells showing their extra credit.
    """

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources, **kw)
        info = (resources or {}).get("nbgrader", {})
        if {"db_url", "assignment", "student"} <= set(info):
            ungraded, bonus = grade_marks(info["db_url"], info["assignment"], info["student"])
            output = mark_grades(output, ungraded, bonus)
        return localize_mathjax(output, local_mathjax_script()), resources
