"""The built course book, checked as a reader would see it.

The book is (re)built once per session with ``book/build.py`` (jupyter-cache makes an
unchanged rebuild quick), served from 127.0.0.1 by ``http.server`` in a thread, and opened
in Debian's headless Chromium, driven over the DevTools protocol through
``--remote-debugging-pipe`` (standard library only: JSON messages separated by NUL bytes on
file descriptors 3 and 4 of the browser).

The browser test records every request the pages make and fails if one leaves 127.0.0.1.
A screenshot of a chapter page is kept at ``build/book/screenshot.png``.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser import Browser, Page, leaves_localhost, serve

from dnnkernels.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "build" / "book" / "_build" / "html"
SCREENSHOT = ROOT / "build" / "book" / "screenshot.png"
BOOK_TITLE = "dnnkernels"
CHAPTER = "chapters/01_cost.html"
CHAPTER_TITLE = "Cost of DNN layers"


# ---------------------------------------------------------------------------------------
# fixtures: the built book, a local web server, the browser


@pytest.fixture(scope="module")
def built_book() -> Path:
    """Build the reader's book (cached) and return its HTML folder."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "book" / "build.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(
            "book/build.py failed:\n" + result.stdout[-6000:] + "\n" + result.stderr[-6000:]
        )
    assert (HTML / "index.html").is_file(), f"{HTML / 'index.html'} was not built"
    return HTML


@pytest.fixture(scope="module")
def site(built_book: Path):
    """Serve the built book on 127.0.0.1 (a free port) for the duration of the module."""
    with serve(built_book) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chromium")
    instance = Browser(None, folder / "profile", folder / "chromium.log")
    yield instance
    instance.close()


# ---------------------------------------------------------------------------------------
# the reader's view


@pytest.mark.browser
def test_book_in_headless_chromium(site: str, browser: Browser):
    page = Page(browser)

    # the index: title and every link of the table of contents
    page.goto(site + "index.html")
    title = page.eval("document.title")
    assert BOOK_TITLE in title, f"index title {title!r} does not name the book"
    toc = page.eval(
        "Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal'))"
        ".map(a => a.href)"
    )
    assert len(toc) >= 12, f"the table of contents has only {len(toc)} links: {toc}"
    assert any(link.endswith(CHAPTER) for link in toc), f"{CHAPTER} is not in the toc: {toc}"
    for link in toc:
        with urllib.request.urlopen(link.split("#")[0], timeout=10) as answer:
            assert answer.status == 200, f"toc link {link}: HTTP {answer.status}"

    # a chapter: its title, a computed figure, typeset math
    page.goto(site + CHAPTER)
    title = page.eval("document.title")
    assert CHAPTER_TITLE in title, f"chapter title {title!r}, expected {CHAPTER_TITLE!r}"
    figures = page.wait_for(
        "Array.from(document.querySelectorAll('.cell_output img'))"
        ".filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert figures, "no figure image of the chapter loaded (naturalWidth > 0)"
    typeset = page.wait_for("document.querySelectorAll('mjx-container').length")
    assert typeset, "MathJax typeset nothing (no mjx-container element)"
    errors = page.eval("document.querySelectorAll('mjx-merror').length")
    assert errors == 0, f"{errors} formulas failed to typeset (mjx-merror)"
    # let MathJax fetch its fonts before the screenshot and the request check
    page.wait_for("document.fonts.status === 'loaded'")

    # the screenshot shows the first computed figure with the text above it
    page.eval(
        "(() => { const img = document.querySelector('.cell_output img');"
        " img.scrollIntoView({block: 'end'}); })()"
    )
    time.sleep(0.5)
    shot = page.send("Page.captureScreenshot", {"format": "png"})
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))

    requests = page.requests()
    assert any(urlsplit(u).path.endswith("/tex-chtml.js") for u in requests), "no MathJax request"
    outside = [url for url in requests if leaves_localhost(url)]
    assert not outside, f"requests left 127.0.0.1: {outside}"


# ---------------------------------------------------------------------------------------
# what the reader's book must and must not contain


class _Text(HTMLParser):
    """Visible text and headings (h1-h6 text) of an HTML page."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.headings: list[str] = []
        self._heading: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in {"script", "style"}:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in {"script", "style"}:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None

    def handle_data(self, data):
        if self._skip:
            return
        self.parts.append(data)
        if self._heading is not None:
            self._heading.append(data)


def _page_text(path: Path) -> _Text:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _released_text() -> str:
    """Everything students receive in their notebooks (whitespace collapsed)."""
    parts = []
    for notebook in sorted((ROOT / "release").glob("*/*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            parts.append("".join(cell["source"]))
    return " ".join(" ".join(parts).split())


def _solution_lines() -> dict[str, list[str]]:
    """Distinctive lines of each reference solution (between the solution markers).

    A line that the student release shows anyway (in a docstring, a hint or a visible
    check) is public, not solution text, and is left out.
    """
    released = _released_text()
    lines: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / "dnnkernels").glob("*.py")):
        inside = False
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped == "### BEGIN SOLUTION":
                inside = True
            elif stripped == "### END SOLUTION":
                inside = False
            elif inside and len(stripped) >= 25 and not stripped.startswith(("#", '"""')):
                if " ".join(stripped.split()) not in released:
                    lines.setdefault(path.name, []).append(stripped)
    return lines


@pytest.mark.slow
def test_reader_book_has_no_solutions(built_book: Path):
    solutions = _solution_lines()
    assert solutions, "found no solution markers in src/dnnkernels (cannot check the book)"
    pages = sorted(built_book.rglob("*.html"))
    text = {p: " ".join(html.unescape("".join(_page_text(p).parts)).split()) for p in pages}
    assert not (built_book / "solutions").exists(), "the reader's book has a solutions folder"
    for page, words in text.items():
        if page.parent.parent.name == "assignments":  # the student notebooks
            assert "BEGIN SOLUTION" not in words, f"{page}: shows a solution marker"
        for module, lines in solutions.items():
            for line in lines:
                assert " ".join(line.split()) not in words, (
                    f"{page.relative_to(built_book)} shows a line of the solution in "
                    f"{module}: {line!r}"
                )
    # nor do the notebooks offered for download (the guides may name the markers)
    for source in sorted((built_book / "_sources").rglob("*.ipynb")):
        if source.is_file():
            assert "BEGIN SOLUTION" not in source.read_text(errors="replace"), source


@pytest.mark.slow
def test_every_task_has_a_heading_named_by_its_id(built_book: Path):
    headings = []
    for page in sorted(built_book.rglob("*.html")):
        # drop the section number ("7.1.2. ") and the permalink sign
        headings += [re.sub(r"^[0-9.]+\s*", "", h) for h in _page_text(page).headings]
    for task in TASKS:
        assert any(h.startswith(f"{task}:") or h.startswith(f"{task} ") for h in headings), (
            f"no book heading starts with the task ID {task!r}"
        )


@pytest.mark.slow
def test_no_page_references_another_host(built_book: Path):
    sys.path.insert(0, str(ROOT / "book"))
    from build import external_loads

    assert external_loads(built_book) == []


def test_only_the_instructor_build_stages_solutions(tmp_path: Path):
    sys.path.insert(0, str(ROOT / "book"))
    from build import assignments, stage

    solutions = tmp_path / "solutions"
    for a in assignments():
        (solutions / a).mkdir(parents=True)
        (solutions / a / f"{a}.ipynb").write_text('{"cells": [], "SOLUTION-MARK": 1}')
    reader, instructor = tmp_path / "reader", tmp_path / "instructor"
    stage(reader, False, ROOT / "release", solutions)
    stage(instructor, True, ROOT / "release", solutions)

    assert not (reader / "solutions").exists()
    assert "solutions" not in (reader / "_toc.yml").read_text()
    for a in assignments():
        staged = instructor / "solutions" / a / f"{a}.ipynb"
        assert "SOLUTION-MARK" in staged.read_text(), f"{staged} is not the solution notebook"
        assert f"solutions/{a}/{a}" in (instructor / "_toc.yml").read_text()
        # the release's notebook, only its "generated, do not edit" notice hidden
        staged = json.loads((reader / "assignments" / a / f"{a}.ipynb").read_text())
        released = json.loads((ROOT / "release" / a / f"{a}.ipynb").read_text())
        assert [c["source"] for c in staged["cells"]] == [c["source"] for c in released["cells"]]
        notice = [c for c in staged["cells"] if "".join(c["source"]).startswith("Generated")]
        assert notice and all("remove-cell" in c["metadata"]["tags"] for c in notice), a
    # without its solution notebooks the instructor build stops, naming the fix
    shutil.rmtree(solutions)
    with pytest.raises(SystemExit, match="make solutions"):
        stage(instructor, True, ROOT / "release", solutions)


# ---------------------------------------------------------------------------------------
# the API reference and the links of the text into it

_PY_ROLE = re.compile(r"\{py:(?:func|class|mod|meth|attr|data|obj)\}`~?([^`<]+?)`")


def _public_modules() -> list[str]:
    """The modules the API reference must have: every public module of the package."""
    package = ROOT / "src" / "dnnkernels"
    names = ["dnnkernels"]
    for path in sorted(package.glob("*.py")):
        if not path.name.startswith("_"):
            names.append(f"dnnkernels.{path.stem}")
    return names


def test_api_links_in_the_text_name_public_objects():
    """Every {py:...} role of the book names a public object of dnnkernels that exists.

    The build fails on an unresolved one too (nitpicky); this test says which, without a
    build (rerun it after modules are split or renamed).
    """
    import importlib

    found = {}
    for page in sorted((ROOT / "book").rglob("*.md")):
        for target in _PY_ROLE.findall(page.read_text()):
            found.setdefault(target.strip(), []).append(page.relative_to(ROOT).as_posix())
    assert found, "the book links no function to the API reference"
    for target, pages in found.items():
        parts = target.split(".")
        assert parts[0] == "dnnkernels", f"{pages}: {target} is not in dnnkernels"
        assert not any(p.startswith("_") for p in parts), f"{pages}: {target} is private"
        assert parts[:2] != ["dnnkernels", "course"], f"{pages}: {target} is instructor tooling"
        for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for name in parts[cut:]:
                assert hasattr(obj, name), f"{pages}: {target} does not exist ({name})"
                obj = getattr(obj, name)
            break
        else:
            pytest.fail(f"{pages}: no module of {target} can be imported")


@pytest.mark.slow
def test_api_reference_has_every_public_module(built_book: Path):
    api = built_book / "api"
    pages = {
        p.parent.relative_to(api).as_posix().replace("/", ".") for p in api.rglob("index.html")
    }
    for module in _public_modules():
        assert module in pages, f"the API reference has no page for {module}"
    assert not [p for p in pages if ".course" in p or "._" in p], (
        f"the API reference shows instructor tooling or private modules: {sorted(pages)}"
    )
    text = " ".join(_page_text(api / "dnnkernels" / "conv2d" / "index.html").parts)
    assert "conv2d_im2col" in text, "the conv2d page does not document conv2d_im2col"
    assert "Parameters" in text, "the docstrings' Args: sections were not rendered (napoleon)"


@pytest.mark.slow
def test_notebook_pages_hide_the_notice_and_number_once(built_book: Path):
    for a in (p.parent.name for p in (ROOT / "release").glob("*/*.ipynb")):
        page = _page_text(built_book / "assignments" / a / f"{a}.html")
        words = " ".join("".join(page.parts).split())
        assert "do not edit" not in words, f"the {a} notebook page shows the generated notice"
        doubled = [h for h in page.headings if re.match(r"^[0-9.]+\.\s+\d+\.", h)]
        assert not doubled, f"{a}: headings numbered twice: {doubled}"


# book/guide/instructors.md is edited elsewhere (its shell lines wrap in the page, see
# book/_static/dnnkernels.css); every other page keeps its code within 88 columns
_CODE_WIDTH_EXEMPT = {"guide/instructors.md"}


def test_code_in_the_book_fits_88_columns():
    """Code cells and code blocks of the book's pages: at most 88 characters a line.

    The cell's own metadata (the YAML header of captions and alt texts) is not code and is
    not shown as code, so it is left out.
    """
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark")
    long = []
    for page in sorted((ROOT / "book").rglob("*.md")):
        rel = page.relative_to(ROOT / "book").as_posix()
        if rel in _CODE_WIDTH_EXEMPT:
            continue
        for token in parser.parse(page.read_text()):
            info = token.info.strip()
            if token.type != "fence" or (
                info.startswith("{") and not info.startswith(("{code-cell}", "{code"))
            ):
                continue
            lines = token.content.splitlines()
            start = lines.index("---", 1) + 1 if lines[:1] == ["---"] else 0
            for i, line in enumerate(lines[start:], start):
                if len(line) > 88 and not (i == start and line.startswith(":")):
                    long.append(f"book/{rel}:{token.map[0] + 2 + i}: {len(line)} columns")
    assert not long, "code lines longer than 88 columns:\n" + "\n".join(long)


@pytest.mark.slow
def test_chapter_figures_are_vector_graphics(built_book: Path):
    """The chapters' computed figures are SVG (sharp in the column, when zoomed, in print)."""
    for page in sorted((built_book / "chapters").glob("*.html")):
        sources = re.findall(r'<img[^>]*\bsrc="([^"]+)"', page.read_text(encoding="utf-8"))
        raster = [s for s in sources if not s.endswith(".svg")]
        assert sources, f"{page.name}: no figure"
        assert not raster, f"{page.name}: raster figures {raster}"
