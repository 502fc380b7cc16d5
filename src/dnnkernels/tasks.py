"""The exercises of the course, one task ID each.

A task ID names an exercise everywhere: the student stub's ``NotImplementedError``
message, the nbgrader ``grade_id`` of the graded check cell, the pytest marker of its
visible and hidden checks (``pytest -m <task>``), the feedback line and the book heading.

Each task's reference lives once, in the course kit's ``dnnkernels/<module>.py``, in the
function (or class) ``name``; the course tooling generates the student stub (the student
build's body, which runs the student's own code) and the solution notebook from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One autograded exercise.

    Attributes:
        id: the task ID, ``<assignment>_<short name>``.
        assignment: the nbgrader assignment that holds it (``precision``, ``svd_rank``,
            ``mnist`` or ``bit_width``).
        module: the ``dnnkernels`` module whose reference the student re-implements.
        name: the function or class name in that module (and in the notebook).
        points: automatic points of the task (sum of its hidden checks).
        title: one line saying what to implement.
        extra_credit: True for optional tasks whose points are a bonus.
    """

    id: str
    assignment: str
    module: str
    name: str
    points: int
    title: str
    extra_credit: bool = False

    @property
    def answer_cell_id(self) -> str:
        """nbgrader grade_id of the cell where the student writes the code."""
        return f"{self.id}_answer"

    @property
    def notebook(self) -> str:
        """File name of the assignment notebook, relative to the assignment folder."""
        return f"{self.assignment}.ipynb"

    def not_implemented_message(self) -> str:
        """The message of the student stub's ``NotImplementedError``."""
        return (
            f"Task {self.id}: {self.title} -- implement `{self.name}` in "
            f"{self.assignment}/{self.notebook} and run its cell."
        )


ASSIGNMENTS = ("precision", "svd_rank", "mnist", "bit_width")

TASKS: dict[str, Task] = {
    t.id: t
    for t in [
        Task(
            "precision_im2col",
            "precision",
            "conv2d",
            "conv2d_im2col",
            4,
            "conv2d as one GEMM on the im2col patch matrix (stride and padding)",
        ),
        Task(
            "precision_winograd",
            "precision",
            "conv2d",
            "conv2d_winograd",
            4,
            "Winograd F(m x m, 3 x 3) convolution on all tiles at once",
        ),
        Task(
            "precision_fft",
            "precision",
            "conv2d",
            "conv2d_fft",
            4,
            "conv2d as a product of real FFTs",
        ),
        Task(
            "precision_matmul_svd",
            "precision",
            "matmul",
            "matmul_svd",
            3,
            "matmul through truncated SVD factors, multiplied in factored form",
        ),
        Task(
            "precision_matmul_log",
            "precision",
            "matmul",
            "matmul_log",
            3,
            "matmul with products taken in the log domain",
        ),
        Task(
            "precision_matmul_log_approx",
            "precision",
            "matmul",
            "matmul_log_approx",
            2,
            "approximate log-domain addition (US 2021/0056446)",
            extra_credit=True,
        ),
        Task(
            "svd_rank_errors",
            "svd_rank",
            "lowrank",
            "low_rank_errors",
            3,
            "relative Frobenius error of the best rank-k approximation, for each k",
        ),
        Task(
            "svd_rank_flops",
            "svd_rank",
            "lowrank",
            "factored_matmul_flops",
            2,
            "FLOPs of a rank-k factored product against the dense product",
        ),
        Task(
            "mnist_svd_linear",
            "mnist",
            "compress",
            "SVDLinear",
            4,
            "a linear layer that multiplies by truncated SVD factors",
        ),
        Task(
            "mnist_rank_for_ratio",
            "mnist",
            "compress",
            "rank_for_ratio",
            2,
            "the largest rank whose factored layer meets a compression ratio",
        ),
        Task(
            "bit_width_accumulate",
            "bit_width",
            "accumulator",
            "accumulate",
            4,
            "b-bit accumulation of partial sums with saturation or wrap-around",
        ),
        Task(
            "bit_width_min_bits",
            "bit_width",
            "accumulator",
            "min_bits",
            2,
            "the smallest two's complement bit-width that holds a range",
        ),
        Task(
            "bit_width_energy",
            "bit_width",
            "energy",
            "layer_energy",
            2,
            "energy of a layer under the s_mul / s_add model",
        ),
    ]
}


def tasks_of(assignment: str) -> list[Task]:
    """The tasks of one assignment, in notebook order."""
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"assignment: got {assignment!r}, expected one of {ASSIGNMENTS}")
    return [t for t in TASKS.values() if t.assignment == assignment]
