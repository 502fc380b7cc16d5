"""Sphinx extension of the book: docstrings as the API reference shows them.

The docstrings of ``dnnkernels`` are written for ``help()`` and the notebooks, not as
strict reStructuredText: ``sum(|products|)`` or ``||M - M_k||_F`` in running text would be
read as substitution references, and ````nn.Parameter````s as an unended literal (errors
under ``-W``). In the generated pages (``api/``), outside inline literals and literal blocks,
bars are escaped, and a literal followed by a letter gets an escaped space, so that the
text shows as written.
"""

from __future__ import annotations

import re

_LITERAL = re.compile(r"(``.+?``)")
_BAR = re.compile(r"(?<!\\)\|")
_MARKUP = re.compile(r"^\s*(\.\. |:[\w -]+:(\s|$))")  # a directive or one of its options


def _escape(text: str) -> str:
    parts = _LITERAL.split(text)  # odd indices: the inline literals
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            glued = i + 1 < len(parts) and parts[i + 1][:1].isalnum()
            out.append(part + ("\\ " if glued else ""))
        else:
            out.append(_BAR.sub(r"\\|", part))
    return "".join(out)


def escape_bars(lines: list[str]) -> list[str]:
    """The docstring ``lines`` with bars escaped outside literals (in place, returned)."""
    literal_indent = None  # indentation of the paragraph that opened a literal block
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not line.strip() or indent > literal_indent:
                continue
            literal_indent = None
        if line.lstrip().startswith(("|", "+-", "+=", ">>>")) or _MARKUP.match(line):
            continue  # a line block, a table, a doctest, a directive: left as it is
        lines[i] = _escape(line)
        if line.rstrip().endswith("::"):
            literal_indent = indent
    return lines


def _source_read(app, docname, source):
    if docname.startswith(app.config.autoapi_root + "/"):
        source[0] = "\n".join(escape_bars(source[0].split("\n")))


def setup(app):
    # the pages sphinx-autoapi wrote, as Sphinx reads them
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
