"""Files that are links: the notebook points at a full solution elsewhere on the machine,
``timestamp.txt`` at the reference implementation. Links are never followed: the notebook
counts as unreadable (no points), and no byte of either target reaches the feedback."""

import nbformat

from attacks import FULL

STUDENT = "attack_symlinks"
DESERVED = dict.fromkeys(FULL, 0)


def build(ctx):
    target = ctx.grading / "elsewhere" / "solution.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(ctx.solution, target)
    (ctx.folder / "precision.ipynb").symlink_to(target)
    (ctx.folder / "timestamp.txt").symlink_to(ctx.repo / "src" / "dnnkernels" / "conv2d.py")
    (ctx.folder / "data.npy").symlink_to(ctx.repo / "autograder" / "hidden" / "test_precision.py")
    return None
