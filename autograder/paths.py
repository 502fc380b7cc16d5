"""Where things are: the repository, the student release, the grading directory.

- ``REPO``: the repository root (this file's grandparent).
- :func:`release_dir`: the student release (``release/``, overridable with
  ``DNNK_RELEASE_DIR``): ``release/<assignment>/<assignment>.ipynb`` and the student build
  of the package in ``release/dnnkernels/``.
- :func:`grading_dir`: all grading state (``submitted/``, ``autograded/``, ``feedback/``,
  ``gradebook.db``, ``grades.csv``): ``$DNNK_GRADING_DIR``, default ``build/grading``
  (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

from dnnkernels.course.paths import Layout

REPO = Path(__file__).resolve().parent.parent
#: the course kit's folders (one definition, shared with ``python -m dnnkernels.course``)
LAYOUT = Layout(REPO)


def release_dir() -> Path:
    """The student release directory."""
    return Path(os.environ.get("DNNK_RELEASE_DIR") or LAYOUT.release).resolve()


def grading_dir() -> Path:
    """The grading directory (``$DNNK_GRADING_DIR`` or ``build/grading``)."""
    return LAYOUT.grading.resolve()


def solutions_dir() -> Path:
    """Executed solution notebooks, ``build/solutions/<assignment>/<assignment>.ipynb``."""
    return LAYOUT.solutions
