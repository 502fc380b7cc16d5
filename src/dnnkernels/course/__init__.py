"""Instructor tooling: source notebooks + ``src/`` -> student release and solutions.

Not part of the student build. Modules:

- :mod:`~dnnkernels.course.extract`: find each exercise's reference and its
  ``### BEGIN SOLUTION`` / ``### END SOLUTION`` region in ``src/dnnkernels``.
- :mod:`~dnnkernels.course.notebooks`: jupytext percent source notebooks (cell tags
  ``setup``, ``answer:<task>``, ``check:<task>``, ``manual:<id>:<points>``) -> nbgrader
  notebooks; post-processing and normalisation of generated notebooks.
- :mod:`~dnnkernels.course.student_package`: the student build of ``dnnkernels`` (exercise
  bodies delegate to the student's own code, see :mod:`dnnkernels._student`).
- :mod:`~dnnkernels.course.release`: ``make release`` (with real nbgrader) and the
  freshness / secrets check.
- :mod:`~dnnkernels.course.solutions`: ``make solutions`` (executed solution notebooks).

Command line: ``python -m dnnkernels.course release | solutions | check``.
"""
