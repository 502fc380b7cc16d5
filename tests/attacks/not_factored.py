"""A "factored" product that is not factored: ``matmul_svd`` rebuilds the rank-r matrices
from their SVD factors and multiplies them (right values, the FLOPs of the dense product).
Every other answer is the solution's."""

from attacks import deserved, replace_answer

STUDENT = "attack_not_factored"
DESERVED = deserved(precision_matmul_svd=0)

REBUILT = """
def _rank(M, r):
    if r is None:
        return M
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    return (U[:, :r] * S[:r]) @ Vh[:r]


def matmul_svd(A, B, rank_A=None, rank_B=None):
    return _rank(A, rank_A) @ _rank(B, rank_B)
"""


def build(ctx):
    return replace_answer(ctx.solution, "precision_matmul_svd", REBUILT)
