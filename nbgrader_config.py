"""The course configuration of the dnnkernels kit: nbgrader's settings and the kit's.

Every nbgrader command (``nbgrader zip_collect``, ``release_assignment``, ``collect``,
``generate_feedback``, ``release_feedback``, formgrader) and every command of the kit
(``python -m autograder.grade``, ``autograder.export``, ``dnnkernels.course``) reads this one
file. What to set for a term is in the first block; the rest rarely changes. See
book/guide/instructors.md ("A term").

Folders:

- release/                the student release (post-processed notebooks, committed; built by
                          `make release`): what `nbgrader release_assignment` publishes.
- build/course/           nbgrader's course root: source/<a>/<a>.ipynb (instructor versions,
                          built by `make release`) and the release's own private gradebook.
- $DNNK_GRADING_DIR       the term's grading state, never committed: gradebook.db,
  (default build/grading) roster.csv, downloaded/ (LMS downloads), submitted/,
                          autograded/, feedback/, grades.csv and the exports.
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

REPO = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the kit's plugins below, from any working directory
GRADING = Path(os.environ.get("DNNK_GRADING_DIR") or REPO / "build" / "grading").resolve()
GRADING.mkdir(parents=True, exist_ok=True)  # sqlite creates the gradebook, not its folder

# ---- the term ---------------------------------------------------------------------------
c.CourseDirectory.course_id = "dnnkernels"
# the class list: student_id,first_name,last_name,email,lms_user_id[,sis_login_id,section]
ROSTER = Path(os.environ.get("DNNK_ROSTER") or GRADING / "roster.csv")
c.Course.roster = str(ROSTER) if ROSTER.is_file() else ""
# due dates (nbgrader's `duedate` of each assignment, written into the gradebook at grading)
c.Course.duedates = {
    "precision": "2027-02-05 23:59:00 UTC",
    "svd_rank": "2027-02-19 23:59:00 UTC",
    "mnist": "2027-03-05 23:59:00 UTC",
    "bit_width": "2027-03-19 23:59:00 UTC",
}
# late policy (nbgrader's AssignLatePenalties with the kit's plugin): 10 % of the score per
# started day late, 0 from 7 days late on
c.AssignLatePenalties.plugin_class = "autograder.course.LatePenalty"
c.LatePenalty.penalty_method = "per_day"
c.LatePenalty.per_day = 0.1
c.LatePenalty.zero_after_days = 7
# hand-graded bonus cells (nbgrader extra credit; the extra_credit tasks of
# dnnkernels/tasks.py are bonus too): graded in formgrader's "extra credit" field
c.Course.extra_credit_cells = {
    "precision": ["precision_log_approx_plot", "precision_log_approx_discussion"],
}

# ---- folders ----------------------------------------------------------------------------
COURSE_ROOT = REPO / "build" / "course"
COURSE_ROOT.mkdir(parents=True, exist_ok=True)  # nbgrader's commands run in it
c.CourseDirectory.root = str(COURSE_ROOT)
c.CourseDirectory.source_directory = "source"
# what students get: the kit's post-processed release, not nbgrader's raw stubs
c.CourseDirectory.release_directory = str(REPO / "release")
# grading state lives outside the course root, under the grading folder (absolute paths:
# nbgrader then ignores the root for these steps)
c.CourseDirectory.submitted_directory = str(GRADING / "submitted")
c.CourseDirectory.autograded_directory = str(GRADING / "autograded")
c.CourseDirectory.feedback_directory = str(GRADING / "feedback")
c.CourseDirectory.db_url = f"sqlite:///{GRADING / 'gradebook.db'}"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
# the exchange students fetch from and submit to: nbgrader's default, shared on the hub
c.Exchange.root = os.environ.get("DNNK_EXCHANGE") or "/srv/nbgrader/exchange"

# ---- collecting from Canvas ("Download Submissions" zip or files) -------------------------
# put the download in $DNNK_GRADING_DIR/downloaded/<assignment>/archive/, then
#   nbgrader zip_collect <assignment> --force
c.ZipCollectApp.downloaded_directory = str(GRADING / "downloaded")
# (nbgrader joins the course root and this structure before filling it in: absolute here)
c.ZipCollectApp.collect_directory_structure = str(
    GRADING / "downloaded" / "{assignment_id}" / "{collect_step}"
)
c.ZipCollectApp.extractor_plugin = "autograder.course.TimeKeepingExtractor"
c.ZipCollectApp.collector_plugin = "autograder.course.CanvasCollector"
c.ZipCollectApp.strict = True  # a file that is no notebook of the assignment is skipped

# ---- grading ------------------------------------------------------------------------------
# nbgrader's own autograde (and formgrader's Autograde button) would replace the hidden
# checks' points by the visible checks' verdict: refused, with a message naming the grader
# (before it touches autograded/ or the gradebook)
c.Autograde.exporter_class = "autograder.formgrader.RefuseAutograde"

# nbgrader's own generate_feedback (formgrader's Generate Feedback button) makes the pages
# the grader makes: local MathJax, hand-graded cells not graded yet saying so
c.GenerateFeedback.exporter_class = "autograder.feedback.OfflineFeedbackExporter"

# `make release` runs `nbgrader generate_assignment` with this file (into build/course/,
# with the release's own gradebook): build the release with `make release`, never with
# `nbgrader generate_assignment --force` by hand (it would write nbgrader's raw stubs over
# release/). The cells of the student stubs:
c.GenerateAssignment.create_assignment = True
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

# executing notebooks (validate): per-cell time limit in seconds, python3 kernel
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.ExecutePreprocessor.timeout = 120
c.ExecutePreprocessor.kernel_name = "python3"
