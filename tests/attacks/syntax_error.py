"""A syntax error, an answer cell that never finishes, megabytes of printing."""

from attacks import append_to_answer, deserved

STUDENT = "attack_syntax_error"
# the log_approx kernel prints 5 MB per call but is right: it keeps its points
DESERVED = deserved(precision_matmul_svd=0, precision_matmul_log=0)

SYNTAX_ERROR = """
def matmul_svd(A, B, rank_A=None, rank_B=None)
    return A @ B
"""

TOP_LEVEL_LOOP = """
while True:  # an experiment that never ends, at the top level of the answer cell
    pass
"""

CHATTY = """
_quiet_matmul_log_approx = matmul_log_approx


def matmul_log_approx(A, B, frac_bits=4):
    print("x" * 5_000_000)
    return _quiet_matmul_log_approx(A, B, frac_bits)
"""


def build(ctx):
    nb = append_to_answer(ctx.solution, "precision_matmul_svd", SYNTAX_ERROR)
    nb = append_to_answer(nb, "precision_matmul_log", TOP_LEVEL_LOOP)
    return append_to_answer(nb, "precision_matmul_log_approx", CHATTY)
