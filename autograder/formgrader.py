"""nbgrader's formgrader, made safe for this course and usable offline.

Start it (from the repository root; ``DNNK_GRADING_DIR`` names the grading folder)::

    python -m autograder.formgrader --port 8890   # then open http://127.0.0.1:8890/formgrader

That is ``jupyter server`` on 127.0.0.1 with nbgrader's formgrader and this server
extension (``autograder.formgrader``), which

- serves MathJax from the installed ``sphinx-mathjax-offline`` (the same copy the feedback
  pages inline) at ``<base>/dnnk/mathjax.js`` and puts it in place of the CDN MathJax of
  every formgrade page (with the few MathJax 2 calls ``formgrade.js`` makes), so math is
  typeset offline and nothing is loaded from another host;
- leaves every other page to nbgrader.

nbgrader's own autograde (``nbgrader autograde``, formgrader's *Autograde* button) would
replace the hidden checks' points with the visible checks' verdict: ``nbgrader_config.py``
makes :class:`RefuseAutograde` its exporter, so it stops, before it touches any file, with a
message that names the kit's grader instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from nbconvert.exporters import NotebookExporter

REPO = Path(__file__).resolve().parent.parent
MATHJAX_PATH = "dnnk/mathjax.js"

REFUSAL = (
    "nbgrader's autograde is disabled in this course: it would replace the hidden checks' "
    "points with the visible checks' verdict. Grade with the kit's grader instead, from the "
    "repository root: python -m autograder.grade --assignment {assignment} --students "
    "{student} (see autograder/README.md)"
)


class RefuseAutograde(NotebookExporter):
    """``c.Autograde.exporter_class``: refuses, naming the kit's grader.

    nbgrader's ``Autograde`` creates its exporter after reading the submissions and before
    it touches any folder (its preprocessors would run too late: by then it has replaced
    ``autograded/<student>/<assignment>/`` by the raw submission, and on failure removes it).
    """

    def __init__(self, *args, **kwargs):
        coursedir = getattr(kwargs.get("parent"), "coursedir", None)
        assignment = getattr(coursedir, "assignment_id", "") or "<assignment>"
        student = getattr(coursedir, "student_id", "*")
        raise RuntimeError(
            REFUSAL.format(
                assignment=assignment, student="<student>" if student in ("", "*") else student
            )
        )


# ---- MathJax ------------------------------------------------------------------------------

_CDN_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
#: MathJax 3 configuration, then the MathJax 2 calls formgrade.js makes (Hub.Startup.signal
#: .Interest and Hub.Queue), answered by MathJax 3
_CONFIG = (
    "<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
    "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, "
    "processEnvironments: true}, options: {enableMenu: false}};</script>\n"
)
_SHIM = (
    "<script>MathJax.Hub = {Config: function () {}, "
    "Queue: function () { return MathJax.startup.promise.then(function () "
    "{ return MathJax.typesetPromise(); }); }, "
    "Startup: {signal: {Interest: function (f) { MathJax.startup.promise.then(function () "
    "{ f('End'); }); }}}};</script>"
)


def local_mathjax_block(base_url: str) -> str:
    src = base_url.rstrip("/") + "/" + MATHJAX_PATH
    return f'{_CONFIG}<script src="{src}"></script>\n{_SHIM}'


def localize(page: str, base_url: str) -> str:
    """``page`` with its CDN MathJax replaced by the local one (unchanged without MathJax)."""
    return _CDN_BLOCK.sub(lambda m: local_mathjax_block(base_url), page, count=1)


class LocalMathJaxExporter:
    """Wraps formgrader's HTML exporter: the pages it renders load the local MathJax."""

    def __init__(self, exporter, base_url: str) -> None:
        self._exporter, self._base_url = exporter, base_url

    def from_filename(self, filename, resources=None, **kw):
        html, out = self._exporter.from_filename(filename, resources=resources, **kw)
        return localize(html, self._base_url), out

    def __getattr__(self, name):
        return getattr(self._exporter, name)


def _handlers():
    from jupyter_server.base.handlers import JupyterHandler
    from tornado import web

    from autograder.feedback import local_mathjax_script

    class MathJaxHandler(JupyterHandler):
        script: str | None = None

        @web.authenticated
        def get(self):
            if MathJaxHandler.script is None:
                MathJaxHandler.script = local_mathjax_script()
            self.set_header("Content-Type", "application/javascript; charset=utf-8")
            self.set_header("Cache-Control", "max-age=86400")
            self.write(MathJaxHandler.script)

    return MathJaxHandler


def _jupyter_server_extension_points():
    return [{"module": "autograder.formgrader"}]


def _load_jupyter_server_extension(serverapp) -> None:
    from jupyter_server.utils import url_path_join
    from tornado.ioloop import IOLoop

    webapp = serverapp.web_app
    base = webapp.settings["base_url"]
    webapp.add_handlers(".*$", [(url_path_join(base, MATHJAX_PATH), _handlers())])

    def wrap() -> None:
        exporter = webapp.settings.get("nbgrader_exporter")
        if exporter is not None and not isinstance(exporter, LocalMathJaxExporter):
            webapp.settings["nbgrader_exporter"] = LocalMathJaxExporter(exporter, base)

    wrap()  # formgrader loaded first
    IOLoop.current().add_callback(wrap)  # formgrader loaded after this extension
    serverapp.log.info("dnnkernels: formgrader with local MathJax (%s)", MATHJAX_PATH)


def command(port: int, extra: list[str]) -> list[str]:
    """The ``jupyter server`` command line of :func:`main`."""
    return [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        "--no-browser",
        f"--ServerApp.root_dir={REPO}",
        "--ServerApp.jpserver_extensions="
        "{'nbgrader.server_extensions.formgrader': True, 'autograder.formgrader': True}",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # the grader's machine runs as root
        *extra,
    ]


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m autograder.formgrader", description="formgrader, offline and safe"
    )
    parser.add_argument("--port", type=int, default=8890, help="port on 127.0.0.1")
    args, extra = parser.parse_known_args(argv)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.call(command(args.port, extra), cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
