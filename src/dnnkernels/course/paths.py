"""Where the course tooling reads and writes (all relative to the repository root)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: environment variable of the grading state folder (gradebook, submissions); see
#: ``nbgrader_config.py``
GRADING_ENV = "DNNK_GRADING_DIR"


def find_repo(start: Path | None = None) -> Path:
    """The repository root: the nearest folder above ``start`` with ``source/`` and ``src/``."""
    here = Path(start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        if (folder / "source").is_dir() and (folder / "src" / "dnnkernels").is_dir():
            return folder
    raise FileNotFoundError(
        f"no repository root above {here}: expected a folder with source/ and src/dnnkernels/ "
        "(run from a clone of the course kit, or pass --repo)"
    )


@dataclass(frozen=True)
class Layout:
    """The folders of the course kit."""

    repo: Path

    @property
    def src(self) -> Path:
        """The reference package, ``src/dnnkernels``."""
        return self.repo / "src" / "dnnkernels"

    @property
    def source(self) -> Path:
        """The jupytext source notebooks, ``source/<assignment>/<assignment>.py``."""
        return self.repo / "source"

    @property
    def release(self) -> Path:
        """The committed student release."""
        return self.repo / "release"

    @property
    def build(self) -> Path:
        return self.repo / "build"

    @property
    def course(self) -> Path:
        """nbgrader's course root: ``source/`` (instructor notebooks) and ``release/``."""
        return self.build / "course"

    @property
    def solutions(self) -> Path:
        return self.build / "solutions"

    @property
    def autograder(self) -> Path:
        return self.repo / "autograder"

    @property
    def grading(self) -> Path:
        """Grading state (gradebook, submissions): ``$DNNK_GRADING_DIR`` or build/grading."""
        env = os.environ.get(GRADING_ENV)
        return Path(env).resolve() if env else self.build / "grading"

    def source_notebook(self, assignment: str) -> Path:
        return self.source / assignment / f"{assignment}.py"
