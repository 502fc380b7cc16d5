"""Every page of the built book, opened in headless Chromium as a reader would.

The reader's book is built (``book/build.py``, cached) and served from 127.0.0.1; the
browser (``tests/browser.py``: offline, every request recorded) opens each HTML page, waits
for MathJax and checks what a reader would see:

- nothing sticks out of the article column or has to be scrolled sideways in it (code,
  tables, equations, figures);
- every image has a real alt text;
- no TeX is left untypeset (no ``$...$``, ``\\(``, ``\\frac`` in the visible text, no
  MathJax error);
- the answers of the exercises are hidden until the reader opens them;
- no request leaves 127.0.0.1;
- printed (print media, the width of an A4 page), no chapter has text cut at the right
  edge.

Full-page screenshots of every chapter and assignment page are kept as artifacts in
``build/book/screenshots/`` (one PNG per page, named after its path). All problems of all
pages are collected and reported together.

    .venv/bin/python -m pytest -m browser tests/test_book_pages.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from browser import Browser, leaves_localhost, serve

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "build" / "book" / "_build" / "html"
SCREENSHOTS = ROOT / "build" / "book" / "screenshots"
# pages whose full-page screenshot is kept (the chapters and the assignments)
SHOT_FOLDERS = ("chapters", "assignments")
# the width of the theme's article column at this window size is about 690 CSS pixels
WINDOW = (1280, 900)

# JavaScript run on each page once MathJax is done: the page's problems, as strings
CHECKS = r"""
(() => {
  const problems = [];
  const article = document.querySelector('article.bd-article') || document.body;
  const box = article.getBoundingClientRect();
  const describe = (el) => {
    const text = (el.innerText || el.getAttribute('alt') || '').trim().replace(/\s+/g, ' ');
    const id = el.id ? '#' + el.id : '';
    return `<${el.tagName.toLowerCase()}${id} class="${el.className}"> "${text.slice(0, 80)}"`;
  };
  // 1. horizontal overflow: scrolled sideways, or reaching past the column's right edge
  // (inline formulas are left out: MathJax's glyph boxes overhang their container by a
  // few pixels without anything being cut)
  const scrollers = 'pre, table, div.math, mjx-container[display="true"], .cell_output, ' +
                    '.highlight, .output, .table-wrapper, .pst-scrollable-table-container, img';
  for (const el of article.querySelectorAll(scrollers)) {
    if (el.closest('.toggle-hidden, details:not([open])')) continue;  // folded away
    if (el.offsetParent === null && el.tagName !== 'svg') continue;  // not displayed
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
      problems.push(`overflow: scrolls sideways (${el.scrollWidth} > ${el.clientWidth} px): ` +
                    describe(el));
    }
  }
  for (const el of article.querySelectorAll('*')) {
    if (el.offsetParent === null || el.closest('.toggle-hidden')) continue;
    // a formula's parts: its container is checked above (the MathML copy is invisible)
    if (el.closest('mjx-container, mjx-assistive-mml')) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > box.right + 1 && !el.closest('pre, .highlight')) {
      // report the outermost element only
      const parent = el.parentElement;
      const pr = parent ? parent.getBoundingClientRect() : null;
      if (!pr || pr.right <= box.right + 1) {
        problems.push(`overflow: ${Math.round(r.right - box.right)} px past the column: ` +
                      describe(el));
      }
    }
  }
  // 2. images without a real alt text
  for (const img of document.querySelectorAll('article img, main img')) {
    const alt = (img.getAttribute('alt') || '').trim();
    if (!alt || /\.(png|svg|jpe?g)$/i.test(alt) || alt === 'output' || alt === 'image') {
      problems.push(`image without alt text: ${img.getAttribute('src')}`);
    }
    if (img.complete && img.naturalWidth === 0) {
      problems.push(`image did not load: ${img.getAttribute('src')}`);
    }
  }
  // 3. raw TeX in the visible text (code, typeset math and scripts left out)
  const clone = article.cloneNode(true);
  for (const el of clone.querySelectorAll(
      'pre, code, .highlight, mjx-container, script, style, .MathJax, mjx-assistive-mml')) {
    el.remove();
  }
  const text = clone.textContent;
  const commands = 'frac|begin|end|mathrm|times|sum|le|ge|cdot|left|right|operatorname';
  const tex = new RegExp('\\$[^$\\s][^$]{0,200}?\\$|\\\\\\(|\\\\\\[|\\\\(?:' + commands + ')\\b');
  const m = text.match(tex);
  if (m) {
    const at = text.indexOf(m[0]);
    problems.push(`raw TeX: "${text.slice(Math.max(0, at - 40), at + 60).replace(/\s+/g, ' ')}"`);
  }
  const merrors = document.querySelectorAll('mjx-merror').length;
  if (merrors) problems.push(`${merrors} formulas failed to typeset (mjx-merror)`);
  // 4. the exercises' answers are hidden until opened (sphinx-togglebutton: visibility)
  for (const sol of article.querySelectorAll('.solution')) {
    const body = Array.from(sol.querySelectorAll(':scope > .admonition-title ~ *'))
      .filter(c => c.tagName !== 'BUTTON');
    if (!body.length || body.some(c => getComputedStyle(c).visibility !== 'hidden')) {
      problems.push(`an answer is visible before it is opened: ${describe(sol)}`);
    }
  }
  return problems;
})()
"""

MATHJAX_DONE = (
    "(window.MathJax && MathJax.startup && MathJax.startup.promise)"
    " ? MathJax.startup.promise.then(() => true) : true"
)


def _pages(html: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}
    return sorted(
        p
        for p in html.rglob("*.html")
        if not (set(p.relative_to(html).parts) & skip) and p.name not in {"search.html"}
    )


# the chapters printed: A4 at 96 CSS pixels per inch, less 1.5 cm margins on each side
PRINT_WIDTH = 680
PRINT_CHECK = """
(() => {
  const width = document.documentElement.clientWidth;
  const cut = [];
  for (const el of document.querySelectorAll('article.bd-article *')) {
    if (el.offsetParent === null || el.closest('mjx-container, mjx-assistive-mml')) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > width + 1) {
      const parent = el.parentElement.getBoundingClientRect();
      if (parent.right <= width + 1) {
        const text = (el.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
        cut.push(`printed: ${Math.round(r.right - width)} px cut at the right edge: ` +
                 `<${el.tagName.toLowerCase()}> "${text}"`);
      }
    }
  }
  return cut;
})()
"""


def _printed(page) -> list[str]:
    """What printing a page would cut off at the right edge of the paper."""
    page.send("Emulation.setEmulatedMedia", {"media": "print"})
    page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": PRINT_WIDTH, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        return list(page.eval(PRINT_CHECK) or [])
    finally:
        page.send("Emulation.clearDeviceMetricsOverride")
        page.send("Emulation.setEmulatedMedia", {"media": ""})


@pytest.fixture(scope="module")
def book_html() -> Path:
    result = subprocess.run(
        [sys.executable, str(ROOT / "book" / "build.py")], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail("book/build.py failed:\n" + result.stdout[-6000:] + result.stderr[-6000:])
    return HTML


@pytest.fixture(scope="module")
def book_site(book_html: Path):
    """Serve the built book on 127.0.0.1 (a free port) for the duration of the module."""
    with serve(book_html) as url:
        yield url


@pytest.mark.browser
@pytest.mark.slow
def test_every_page_as_a_reader_sees_it(book_html: Path, book_site: str):
    pages = _pages(book_html)
    assert len(pages) >= 30, f"only {len(pages)} pages in {book_html}"
    problems: dict[str, list[str]] = {}
    shots = []
    with Browser(window=WINDOW) as browser:
        for path in pages:
            rel = path.relative_to(book_html).as_posix()
            page = browser.new_page()
            try:
                page.goto(book_site + rel)
                page.eval(MATHJAX_DONE)
                page.wait_for("document.fonts.status === 'loaded'", timeout=20)
                found = list(page.eval(CHECKS) or [])
                outside = [u for u in page.requests() if leaves_localhost(u)]
                found += [f"request left 127.0.0.1: {u}" for u in outside]
                if rel.split("/")[0] in SHOT_FOLDERS:
                    shot = SCREENSHOTS / (rel.removesuffix(".html").replace("/", "__") + ".png")
                    shots.append(page.screenshot(shot, full_page=True))
                if rel.startswith("chapters/"):
                    found += _printed(page)
            finally:
                page.close()
            if found:
                problems[rel] = found
    assert shots, "no chapter was screenshotted"
    (SCREENSHOTS / "problems.txt").write_text(
        "".join(
            f"{rel}\n" + "".join(f"    {p}\n" for p in found) for rel, found in problems.items()
        ),
        encoding="utf-8",
        errors="surrogatepass",  # a formula's letters cut in half by an excerpt
    )
    report = "\n".join(
        f"{rel}:\n    " + "\n    ".join(found[:12]) + ("\n    ..." if len(found) > 12 else "")
        for rel, found in problems.items()
    )
    assert not problems, f"{len(problems)} of {len(pages)} pages have problems:\n{report}"
