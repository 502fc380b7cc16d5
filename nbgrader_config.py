"""nbgrader configuration of the dnnkernels course kit (read by every nbgrader command).

Folders (see README.md and src/dnnkernels/course/):

- build/course/           nbgrader's course root: source/<a>/<a>.ipynb (instructor versions,
                          generated from source/<a>/<a>.py and src/ by `make release`) and
                          release/<a>/ (nbgrader's raw student versions; the committed,
                          post-processed ones are in the repository's release/).
- $DNNK_GRADING_DIR       grading state, never committed: gradebook.db, submitted/,
  (default build/grading) autograded/, feedback/, exchange/.

`make release` runs `nbgrader generate_assignment` through nbgrader's Python API with this
file; by hand, from the repository root, after `make release` has built build/course/source:

    nbgrader generate_assignment precision --force
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

REPO = Path(__file__).resolve().parent
GRADING = Path(os.environ.get("DNNK_GRADING_DIR") or REPO / "build" / "grading").resolve()
GRADING.mkdir(parents=True, exist_ok=True)  # sqlite creates the gradebook, not its folder

c.CourseDirectory.course_id = "dnnkernels"
c.CourseDirectory.root = str(REPO / "build" / "course")
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
# grading state lives outside the course root, under the grading folder (absolute paths:
# nbgrader then ignores the root for these steps)
c.CourseDirectory.submitted_directory = str(GRADING / "submitted")
c.CourseDirectory.autograded_directory = str(GRADING / "autograded")
c.CourseDirectory.feedback_directory = str(GRADING / "feedback")
c.CourseDirectory.db_url = f"sqlite:///{GRADING / 'gradebook.db'}"
c.Exchange.root = str(GRADING / "exchange")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# register the assignment in the gradebook when it is generated
c.GenerateAssignment.create_assignment = True

# the student stubs: `make release` then replaces the raise in each answer cell by
# `raise NotImplementedError("Task <id>: ...")` (src/dnnkernels/course/notebooks.py)
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"

# answer cells cannot be deleted (but are edited); test and setup cells cannot be either
c.LockCells.lock_solution_cells = True
c.LockCells.lock_grade_cells = True
c.LockCells.lock_readonly_cells = True

# executing notebooks (autograde, validate): per-cell time limit in seconds, python3 kernel
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.ExecutePreprocessor.timeout = 120
c.ExecutePreprocessor.kernel_name = "python3"
