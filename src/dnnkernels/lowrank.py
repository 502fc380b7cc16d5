"""Low-rank approximation: truncated SVD errors and the cost of factored products.

A matrix ``M`` (m, n) with singular values ``s_1 >= s_2 >= ... >= s_p`` (``p = min(m, n)``)
has, by the Eckart–Young theorem, the best rank-k approximation
``M_k = U_k diag(s_1..s_k) V_kᵀ`` (its truncated SVD), with
``||M - M_k||_F = sqrt(s_{k+1}² + ... + s_p²)``.

The svd_rank assignment: how fast the relative error falls with the rank for several kinds
of matrices (:mod:`dnnkernels.matrix_families`, :func:`low_rank_errors`), and what a rank-k
factorization saves when the matrix multiplies another one (:func:`factored_matmul_flops`,
:func:`dnnkernels.lowrank_study.rank_sweep`). The mnist assignment builds on it in
:mod:`dnnkernels.compress` (SVD layers, networks compressed to a parameter budget).

The exercises (``low_rank_errors``, ``factored_matmul_flops``) get already-validated
arguments; the library functions around them (``error_curve``, ``rank_sweep`` ...) check
their input first with the ``check_*`` functions below.

The study (plots, tables and the low-rank section of ``BENCHMARKS.md``) is
:mod:`dnnkernels.lowrank_study`; ``python -m dnnkernels.lowrank --out build/lowrank`` runs
it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from dnnkernels.checks import check_tensor, describe

# ============================================================================ exercises


def low_rank_errors(M: torch.Tensor, ranks: Sequence[int]) -> torch.Tensor:
    """Relative Frobenius error of the best rank-k approximation of ``M``, for each k.

    With the singular values ``s_1 >= ... >= s_p`` of ``M`` (``p = min(m, n)``) and
    ``M_k`` the truncated SVD of rank k (the best rank-k approximation, Eckart–Young)::

        error(k) = ||M - M_k||_F / ||M||_F
                 = sqrt(s_{k+1}² + ... + s_p²) / sqrt(s_1² + ... + s_p²)

    so no ``M_k`` has to be rebuilt: the singular values are enough. Computed in
    float64.

    Args:
        M: float tensor of shape (m, n), finite, not all zeros.
        ranks: sequence of ints, each in [1, min(m, n)] (any order, repeats allowed).

    Returns:
        float64 tensor of shape (len(ranks),): ``error(ranks[i])`` at position i; it is
        0 at k = min(m, n) and does not increase with k.

    Example:
        ``M = diag(3, 4)``: s = (4, 3), error(1) = 3 / 5 = 0.6, error(2) = 0.
    """
    ### BEGIN SOLUTION
    s = torch.linalg.svdvals(M.to(torch.float64))
    energy = s * s
    # tail[j] = s_{j+1}² + ... + s_p² (0-based: the energy left out by a rank-j
    # approximation), summed from the small end (a reversed cumulative sum), which
    # avoids the cancellation of total - cumsum when the tail is tiny
    tail = torch.flip(torch.cumsum(torch.flip(energy, dims=(0,)), dim=0), dims=(0,))
    tail = torch.cat([tail, energy.new_zeros(1)])
    index = torch.as_tensor(list(ranks), dtype=torch.long)
    return torch.sqrt(tail[index] / tail[0])
    ### END SOLUTION


def factored_matmul_flops(m: int, k: int, n: int, rank: int) -> tuple[int, int]:
    """FLOPs of ``A @ B`` computed dense and through a rank-r factorization of ``A``.

    ``A`` (m, k) ≈ ``U_r diag(S_r) Vh_r`` with ``U_r`` (m, r), ``S_r`` (r,), ``Vh_r``
    (r, k); ``B`` (k, n); r = ``rank``.

    Counting rule: multiplying a (p, q) matrix by a (q, s) matrix costs ``2·p·q·s``
    FLOPs (p·q·s multiply-adds, each counted as 2 FLOPs). Nothing else is counted. The
    scaling by ``S_r`` is folded into ``U_r`` once, before inference
    (``U' = U_r diag(S_r)``), so it costs nothing per product.

    - dense: ``A @ B`` costs ``2·m·k·n``.
    - factored: ``U' Vh_r B`` in the cheaper of its two association orders:

      - right first, ``U' (Vh_r B)``: ``2·r·k·n + 2·m·r·n = 2·r·n·(m + k)``;
      - left first, ``(U' Vh_r) B`` (rebuilds A): ``2·m·r·k + 2·m·k·n = 2·m·k·(r + n)``;

      factored = the smaller of the two.

    Args:
        m, k, n: positive ints, the shapes above.
        rank: int r in [1, min(m, k)].

    Returns:
        ``(factored, dense)``: two Python ints.

    Example:
        m = k = n = 1024, rank = 64: factored = 2·64·1024·2048 = 268,435,456 and
        dense = 2·1024³ = 2,147,483,648 (8 times more).
    """
    ### BEGIN SOLUTION
    dense = 2 * m * k * n
    right_first = 2 * rank * n * (m + k)
    left_first = 2 * m * k * (rank + n)
    return min(right_first, left_first), dense
    ### END SOLUTION


# ============================================================================ checks


def check_matrix(name: str, M: object) -> torch.Tensor:
    """Check a matrix for SVD studies: float32/float64, 2-D, finite, not all zeros."""
    check_tensor(name, M, ndim=2, dtypes=(torch.float32, torch.float64), finite=True)
    if min(M.shape) == 0:
        raise ValueError(f"{name}: got {describe(M)}, expected a matrix with at least one entry")
    if not bool(M.any()):
        raise ValueError(
            f"{name}: got {describe(M)} with all entries 0, expected a nonzero matrix "
            "(the relative error divides by ||M||_F)"
        )
    return M


def check_rank(name: str, rank: object, shape: Sequence[int]) -> int:
    """Check a truncation rank for a matrix of ``shape``: an int in [1, min(shape)]."""
    limit = min(shape)
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(f"{name}: got {describe(rank)}, expected an int")
    rank = int(rank)
    if not 1 <= rank <= limit:
        raise ValueError(
            f"{name}: got {rank}, expected an int in [1, {limit}] (min of the shape {tuple(shape)})"
        )
    return rank


def check_ranks(name: str, ranks: object, shape: Sequence[int]) -> list[int]:
    """Check a non-empty sequence of ranks, each in [1, min(shape)]; returns a list of ints."""
    if isinstance(ranks, torch.Tensor | np.ndarray):
        if ranks.ndim != 1:
            raise ValueError(f"{name}: got {describe(ranks)}, expected a 1-D sequence of ints")
        ranks = ranks.tolist()
    if isinstance(ranks, str | bytes) or not isinstance(ranks, Sequence):
        raise TypeError(f"{name}: got {describe(ranks)}, expected a sequence of ints")
    if len(ranks) == 0:
        raise ValueError(f"{name}: got an empty sequence, expected at least one rank")
    return [check_rank(f"{name}[{i}]", r, shape) for i, r in enumerate(ranks)]


def default_ranks(shape: Sequence[int]) -> list[int]:
    """Ranks 1, 2, 4, 8, ... below min(shape), then min(shape) itself."""
    limit = min(shape)
    ranks = [1 << i for i in range(limit.bit_length()) if (1 << i) < limit]
    return ranks + [limit]


def error_curve(matrix: torch.Tensor, ranks: Sequence[int] | None = None) -> torch.Tensor:
    """Checked :func:`low_rank_errors`: float64 (len(ranks),), default ranks 1..min(shape)."""
    check_matrix("matrix", matrix)
    ranks = range(1, min(matrix.shape) + 1) if ranks is None else ranks
    return low_rank_errors(matrix, check_ranks("ranks", ranks, matrix.shape))


if __name__ == "__main__":  # the study's command line, kept at its documented name
    from dnnkernels.lowrank_study import main

    raise SystemExit(main())
