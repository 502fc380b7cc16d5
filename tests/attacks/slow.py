"""Availability: a thousand cells of the student's own that each sleep, and an answer cell
that sleeps at load time. The grader's budget per submission does not grow with the cells:
the sleeping answer cell is skipped once (its task gets nothing), every other kernel keeps
its points, and the whole submission takes about one budget at most."""

from attacks import add_cell, append_to_answer, deserved

STUDENT = "attack_slow"
DESERVED = deserved(precision_matmul_log=0)


def build(ctx):
    nb = append_to_answer(ctx.solution, "precision_matmul_log", "import time\ntime.sleep(100000)")
    for _ in range(1000):
        nb = add_cell(nb, "import time\ntime.sleep(60)")
    return nb
