"""Markup that would run in the instructor's browser: ``<script>`` and ``onerror`` in a
markdown answer, a ``javascript:`` link, HTML and JavaScript outputs, an SVG with a script.
The kernels are honest; the feedback page and the autograded notebook must not run any of it
(``window.__pwned`` stays undefined in a real browser)."""

from attacks import FULL, add_cell, append_to_answer

STUDENT = "attack_hostile_html"
DESERVED = dict(FULL)

MARKDOWN = """
My answer <script>window.__pwned = "markdown script"</script>
<img src="x" onerror="window.__pwned = 'markdown onerror'">
[a link](javascript:window.__pwned='link') and <a href="javascript:window.__pwned='a'">another</a>
<iframe src="javascript:parent.__pwned='iframe'"></iframe>
"""

OUTPUTS = """
from IPython.display import HTML, Javascript, SVG, display

display(HTML('<b>bold</b><script>window.__pwned = "html output"</script>'
             '<img src=x onerror="window.__pwned=\\'html onerror\\'">'))
display(Javascript('window.__pwned = "javascript output"'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>window.__pwned="svg"</script></svg>'))
"""


def build(ctx):
    nb = append_to_answer(ctx.solution, "precision_im2col", OUTPUTS)
    for cell in nb.cells:  # every written answer of the notebook
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution"):
            cell.source = MARKDOWN
    return add_cell(nb, OUTPUTS)
