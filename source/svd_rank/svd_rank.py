# %% [markdown]
# # Assignment 2 (svd_rank): how much of a matrix does a low rank keep?
#
# **Goals.** Compute the reconstruction error of the best rank-k approximation of a matrix
# (Eckart-Young: the truncated SVD) for every k, and the arithmetic cost of multiplying by a
# rank-k factorization instead of the dense matrix; then compare matrices of different kinds.
#
# **Questions and points.** 2 programming exercises (5 points), 1 plot (3 points) and
# 1 written answer (2 points). Each exercise cell holds the signature and docstring of the
# function to write; the cell after it runs visible checks.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

torch.manual_seed(0)

# %% [markdown]
# ## 1. Relative Frobenius error against rank
#
# With the singular values `s_1 >= ... >= s_p` of `M`, the best rank-k approximation `M_k`
# leaves `||M - M_k||_F = sqrt(s_{k+1}^2 + ... + s_p^2)`: no `M_k` has to be rebuilt.

# %% tags=["answer:svd_rank_errors"]
# generated from src/dnnkernels/lowrank.py: low_rank_errors

# %% tags=["check:svd_rank_errors"]
got = low_rank_errors(torch.diag(torch.tensor([3.0, 4.0])), [1, 2])
assert got.dtype == torch.float64 and got.shape == (2,), (got.dtype, got.shape)
assert torch.allclose(got, torch.tensor([0.6, 0.0], dtype=torch.float64), atol=1e-12), got
M = torch.randn(30, 20, dtype=torch.float64)
U, S, Vh = torch.linalg.svd(M, full_matrices=False)
ranks = [1, 5, 13, 20, 5]
expected = torch.tensor(
    [
        (torch.linalg.norm(M - U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]) / torch.linalg.norm(M)).item()
        for r in ranks
    ],
    dtype=torch.float64,
)
got = low_rank_errors(M, ranks)
assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12), (got, expected)
assert low_rank_errors(M.float(), [3]).dtype == torch.float64, "float64 result for float32 input"
print("low_rank_errors: visible checks passed")

# %% [markdown]
# ## 2. FLOPs of a factored product
#
# A multiplication of a `(p, q)` by a `(q, s)` matrix costs `2*p*q*s` FLOPs. Compare `A @ B`
# with the product through a rank-r factorization of `A` (see the docstring for the exact
# counting rule).

# %% tags=["answer:svd_rank_flops"]
# generated from src/dnnkernels/lowrank.py: factored_matmul_flops


# %% tags=["check:svd_rank_flops"]
def gemm(p, q, s):
    return 2 * p * q * s


assert factored_matmul_flops(1024, 1024, 1024, 64) == (268_435_456, 2_147_483_648)
m, k, n, r = 300, 200, 50, 10  # right first: Vh_r @ B, then U' @ that
assert factored_matmul_flops(m, k, n, r) == (gemm(r, k, n) + gemm(m, r, n), gemm(m, k, n))
m, k, n, r = 10, 10, 1000, 10  # here rebuilding A first is cheaper
assert factored_matmul_flops(m, k, n, r) == (gemm(m, r, k) + gemm(m, k, n), gemm(m, k, n))
assert all(isinstance(v, int) for v in factored_matmul_flops(7, 5, 3, 2)), "Python ints"
print("factored_matmul_flops: visible checks passed")

# %% [markdown]
# ## 3. Error against rank for different matrices (plot, graded by hand)
#
# Plot `low_rank_errors` against the rank for a random Gaussian matrix and a rank-8 matrix
# plus a little noise (both 128 x 128), on one figure.

# %% tags=["manual:svd_rank_plot:3"]
### BEGIN SOLUTION
size, true_rank = 128, 8
gaussian = torch.randn(size, size, dtype=torch.float64)
low_rank = torch.randn(size, true_rank, dtype=torch.float64) @ torch.randn(
    true_rank, size, dtype=torch.float64
)
low_rank = low_rank + 0.01 * torch.randn(size, size, dtype=torch.float64)
ranks = list(range(1, size + 1))
fig, ax = plt.subplots(figsize=(7, 4))
for name, matrix in [("random Gaussian", gaussian), ("rank 8 + noise", low_rank)]:
    ax.plot(ranks, low_rank_errors(matrix, ranks).numpy(), label=name)
ax.set_xlabel("rank k")
ax.set_ylabel("relative Frobenius error")
ax.set_yscale("log")
ax.legend()
fig.savefig("svd_rank_errors.png", dpi=100, bbox_inches="tight")
plt.show()
### END SOLUTION

# %% [markdown]
# **Question (graded by hand).** Where is the knee of each curve, and what does it say about
# the matrix?

# %% [markdown] tags=["manual:svd_rank_discussion:2"]
# The random Gaussian matrix has no knee: its singular values spread over a wide range
# without a gap, so the error falls slowly and steadily and reaches zero only at full rank;
# it has no low-rank structure. The rank-8-plus-noise matrix drops by orders of magnitude
# up to k = 8 and then flattens at the noise level: eight directions hold almost all of its
# energy, and a rank-8 factorization keeps it at a fraction of the cost.
