# Generated automatically from src/dnnkernels/matmul.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Matrix multiplication ``A @ B``, exact and approximate, five ways.

``matmul(A, B, method="naive", rank_A=None, rank_B=None, **options)`` with ``A (M, K)`` and
``B (K, N)`` validates its arguments and dispatches to one of

- ``"torch"``: ``A @ B`` (the reference);
- ``"naive"``: explicit loops over the output entries (:func:`matmul_naive`);
- ``"svd"``: truncated SVD of ``A`` and/or ``B``, multiplied in factored form
  (:func:`matmul_svd`, factors from :func:`truncated_svd`);
- ``"log"``: products taken in the log domain, sums in the linear domain (:func:`matmul_log`);
- ``"log_approx"``: the approximate log-domain addition of NVIDIA's patent application
  US 2021/0056446 (:func:`matmul_log_approx`; option ``frac_bits``).

Dtypes. The output has the dtype of ``A``; ``B`` must have the same dtype.

- ``"naive"`` and ``"torch"`` take float16, bfloat16, float32, float64 and the signed integer
  dtypes int8, int16, int32, int64; integer results are exact modulo ``2**bits``
  (two's complement wrap-around, as torch's integer arithmetic does).
- ``"svd"``, ``"log"`` and ``"log_approx"`` take floating dtypes only, and finite values only
  (an SVD of a matrix with inf/NaN is undefined; ``log2|inf|`` breaks the log domain).
- ``"svd"`` and ``"log"`` compute in the input dtype (for float16 / bfloat16 the SVD itself is
  computed in float32, since LAPACK has no half-precision SVD, and the factors are rounded
  back). ``"log_approx"`` emulates the fixed-point hardware exactly in float64 and rounds the
  result to the input dtype once.
"""

from __future__ import annotations

import math  # noqa: F401  (available to the exercise functions, see the course notes)

import numpy as np  # noqa: F401  (available to the exercise functions)
import torch
import torch.nn.functional as F  # noqa: F401  (available to the exercise functions)

from dnnkernels.checks import check_choice, check_int, check_tensor, describe

__all__ = [
    "METHODS",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "MAX_FRAC_BITS",
    "matmul",
    "matmul_naive",
    "matmul_svd",
    "matmul_log",
    "matmul_log_approx",
    "truncated_svd",
]

METHODS = ("naive", "torch", "svd", "log", "log_approx")
"""The ``method`` names accepted by :func:`matmul`."""

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)
MAX_FRAC_BITS = 10
"""Largest ``frac_bits`` of ``"log_approx"`` (``2**10`` remainder bins)."""

_OPTIONS = {"naive": (), "torch": (), "svd": (), "log": (), "log_approx": ("frac_bits",)}


# ---------------------------------------------------------------------------------------------
# Public dispatcher (students need not touch this: it checks arguments and calls the kernels)
# ---------------------------------------------------------------------------------------------


def matmul(
    A: torch.Tensor,
    B: torch.Tensor,
    method: str = "naive",
    rank_A: int | None = None,
    rank_B: int | None = None,
    **options: object,
) -> torch.Tensor:
    """Matrix product ``A @ B`` by the chosen method.

    Args:
        A: ``(M, K)``.
        B: ``(K, N)``, the dtype of ``A``.
        method: one of :data:`METHODS` (see the module docstring).
        rank_A: ``"svd"`` only: rank ``1 <= rank_A <= min(M, K)`` of the truncated SVD of
            ``A``, or None to use ``A`` itself (its full-rank SVD).
        rank_B: ``"svd"`` only: the same for ``B`` (``1 <= rank_B <= min(K, N)``).
        **options: ``"log_approx"`` only: ``frac_bits`` (int in ``[0, 10]``, default 4), the
            number of fraction bits of the log-domain exponents.

    Returns:
        ``(M, N)``, the dtype of ``A``: ``C[i, j] = sum_k A[i, k] * B[k, j]`` (exactly up to
        rounding for ``"naive"``, ``"torch"``, ``"log"``; approximately for ``"svd"`` with
        ranks and for ``"log_approx"``).

    Raises:
        TypeError: non-tensor ``A``/``B``, a dtype the method cannot take, ``B`` of another
            dtype than ``A``, a non-int rank or ``frac_bits``, an unknown option.
        ValueError: an unknown method, not 2-D, inner sizes that differ, an empty matrix, a
            rank out of ``[1, min(shape)]`` or given to a method other than ``"svd"``,
            ``frac_bits`` out of ``[0, 10]``, NaN or inf where the method cannot take them.
    """
    method = check_choice("method", method, METHODS)
    dtypes = FLOAT_DTYPES if method in ("svd", "log", "log_approx") else FLOAT_DTYPES + INT_DTYPES
    finite = method in ("svd", "log", "log_approx")
    A = check_tensor("A", A, ndim=2)
    B = check_tensor("B", B, ndim=2)
    if A.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(f"A: got dtype {A.dtype}, expected one of {names} for method {method!r}")
    if B.dtype != A.dtype:
        raise TypeError(f"B: got dtype {B.dtype}, expected the dtype of A ({A.dtype})")
    if B.shape[0] != A.shape[1]:
        raise ValueError(
            f"B: got {describe(B)}, expected {A.shape[1]} rows to match the "
            f"{A.shape[1]} columns of A ({tuple(A.shape)})"
        )
    for name, t in (("A", A), ("B", B)):
        if t.numel() == 0:
            raise ValueError(f"{name}: got {describe(t)}, expected no dimension of size 0")
        if finite:
            check_tensor(name, t, finite=True)

    for name, rank, M in (("rank_A", rank_A, A), ("rank_B", rank_B, B)):
        if rank is None:
            continue
        if method != "svd":
            raise ValueError(
                f"{name}: got {rank!r}, expected None for method {method!r} "
                "(ranks apply to method='svd' only)"
            )
        check_int(name, rank, low=1, high=min(M.shape))
    unknown = sorted(set(options) - set(_OPTIONS[method]))
    if unknown:
        allowed = ", ".join(_OPTIONS[method]) or "none"
        raise TypeError(
            f"options: got {', '.join(unknown)}, expected options of method {method!r}: {allowed}"
        )

    if method == "torch":
        return A @ B
    if method == "naive":
        return matmul_naive(A, B)
    if method == "svd":
        return matmul_svd(A, B, rank_A=rank_A, rank_B=rank_B)
    if method == "log":
        return matmul_log(A, B)
    frac_bits = check_int("frac_bits", options.get("frac_bits", 4), low=0, high=MAX_FRAC_BITS)
    return matmul_log_approx(A, B, frac_bits=frac_bits)


# ---------------------------------------------------------------------------------------------
# The naive definition and support functions
# ---------------------------------------------------------------------------------------------


def matmul_naive(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The definition ``C[i, j] = sum_k A[i, k] * B[k, j]``, with loops over the entries of C.

    Deliberately slow (a Python loop over ``M * N`` entries, each the sum of one row times
    one column): the readable reference for small matrices.

    Args:
        A: ``(M, K)``, a float or signed integer dtype.
        B: ``(K, N)``, the dtype of ``A``.

    Returns:
        ``(M, N)``, dtype of ``A``. Integer sums are formed in int64 (``torch.sum``) and cast
        back, which is exact modulo ``2**bits`` of the dtype.
    """
    M, N = A.shape[0], B.shape[1]
    acc_dtype = A.dtype if A.is_floating_point() else torch.int64
    C = torch.zeros(M, N, dtype=acc_dtype, device=A.device)
    for i in range(M):
        for j in range(N):
            C[i, j] = (A[i, :] * B[:, j]).sum()
    return C.to(A.dtype)


def truncated_svd(
    M: torch.Tensor, rank: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best rank-``r`` factors of ``M`` (Eckart-Young): ``M ~ U @ diag(S) @ Vh``.

    Computed with ``torch.linalg.svd(M, full_matrices=False)``, keeping the ``r`` largest
    singular values. For float16 / bfloat16 ``M`` the SVD is computed in float32 (LAPACK has
    no half-precision SVD) and the factors are rounded back to ``M.dtype``.

    Args:
        M: ``(m, n)``, a floating dtype, finite values.
        rank: ``1 <= r <= min(m, n)``, or None for ``r = min(m, n)`` (exact factors).

    Returns:
        ``U (m, r)`` with orthonormal columns, ``S (r,)`` non-negative and non-increasing,
        ``Vh (r, n)`` with orthonormal rows; all of ``M.dtype``.
    """
    M = check_tensor("M", M, ndim=2, dtypes=FLOAT_DTYPES, finite=True)
    if M.numel() == 0:
        raise ValueError(f"M: got {describe(M)}, expected no dimension of size 0")
    r = min(M.shape) if rank is None else check_int("rank", rank, low=1, high=min(M.shape))
    work = M if M.dtype in (torch.float32, torch.float64) else M.to(torch.float32)
    U, S, Vh = torch.linalg.svd(work, full_matrices=False)
    return U[:, :r].to(M.dtype), S[:r].to(M.dtype), Vh[:r, :].to(M.dtype)


# ---------------------------------------------------------------------------------------------
# Exercises: the course kit holds the reference solutions here; in the student build each
# body runs the student's own function instead (see dnnkernels._student)
# ---------------------------------------------------------------------------------------------


def matmul_svd(
    A: torch.Tensor,
    B: torch.Tensor,
    rank_A: int | None = None,
    rank_B: int | None = None,
) -> torch.Tensor:
    """``A @ B`` through truncated SVDs, multiplied in factored form.

    With ``A ~ U_A diag(S_A) Vh_A`` (rank ``r``) and ``B ~ U_B diag(S_B) Vh_B`` (rank
    ``s``) from ``truncated_svd`` (a rank of None means: do not factor that matrix, use
    it as is; it equals its full-rank SVD)::

        only A factored:  U_A @ (S_A[:, None] * (Vh_A @ B))                     (M, N)
        only B factored:  ((A @ U_B) * S_B) @ Vh_B                              (M, N)
        both factored:    core = S_A[:, None] * (Vh_A @ U_B) * S_B              (r, s)
                          (U_A @ core) @ Vh_B   or   U_A @ (core @ Vh_B)
        neither:          A @ B

    Never rebuild a full ``(M, K)`` or ``(K, N)`` matrix from its factors: the point of
    the factored form is the cost, e.g. ``r*K*N + M*r*N`` multiplications instead of
    ``M*K*N`` when only ``A`` is factored. When both are factored, pick the cheaper of
    the two association orders of the last products (``M*r*s + M*s*N`` against
    ``r*s*N + M*r*N``).

    Args:
        A: ``(M, K)``, a floating dtype, finite values.
        B: ``(K, N)``, the dtype of ``A``, finite values.
        rank_A: ``1 <= r <= min(M, K)`` or None.
        rank_B: ``1 <= s <= min(K, N)`` or None.

    Returns:
        ``(M, N)``, the dtype of ``A``: ``A_r @ B_s`` where ``A_r``, ``B_s`` are the
        best rank-``r`` / rank-``s`` approximations (the plain product when both ranks
        are None).
    """
    # Student build: runs your own `matmul_svd` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("precision_matmul_svd")(A, B, rank_A, rank_B)


def matmul_log(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A @ B`` with products in the log domain and the sum in the linear domain.

    Write every entry as a sign and a base-2 log-magnitude,
    ``x = sign(x) * 2**log2|x|``. A product is then an addition of logs::

        A[i, k] * B[k, j] = sA[i, k] * sB[k, j] * 2**(lA[i, k] + lB[k, j])
        C[i, j]           = sum_k  (that product)          (a linear-domain sum)

    with ``s = torch.sign(x)`` and ``l = torch.log2(|x|)``. Exact zeros stay zero:
    ``log2(0) = -inf``, ``-inf + finite = -inf`` and ``2**-inf = 0`` (and
    ``sign(0) = 0``). Vectorize: broadcast ``l_A[:, :, None] + l_B[None, :, :]`` to
    ``(rows, K, N)`` and sum over ``K``; process the rows of ``A`` in blocks of at most
    about ``2**20`` products so that large matrices do not exhaust memory.

    Args:
        A: ``(M, K)``, a floating dtype, finite values.
        B: ``(K, N)``, the dtype of ``A``, finite values.

    Returns:
        ``(M, N)``, the dtype of ``A`` (all arithmetic in that dtype); equal to
        ``A @ B`` up to rounding of the logs and powers.
    """
    # Student build: runs your own `matmul_log` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("precision_matmul_log")(A, B)


def matmul_log_approx(
    A: torch.Tensor,
    B: torch.Tensor,
    frac_bits: int = 4,
) -> torch.Tensor:
    """``A @ B`` with the approximate log-domain addition of NVIDIA's US 2021/0056446.

    The hardware stores each value as a sign and a fixed-point base-2 log with ``f``
    fraction bits (``f = frac_bits``), i.e. in the number system of base
    ``2**(1/2**f)``:

    1. Quantise: for ``x != 0``, ``e = round(2**f * log2|x|)`` (an integer, round half
       to even), so ``x ~ sign(x) * 2**(e / 2**f)``. Zeros are flagged and contribute
       nothing.
    2. Multiply by adding exponents: ``q = e_A[i, k] + e_B[k, j]`` (an integer count of
       units ``2**-f``); the product is ``s * 2**(q / 2**f)`` with
       ``s = sign_A * sign_B``.
    3. Split ``q`` into quotient and remainder: ``Q = q >> f`` (floor division by
       ``2**f``, also for negative ``q``) and ``r = q & (2**f - 1)`` in ``[0, 2**f)``,
       so that ``2**(q / 2**f) = 2**Q * 2**(r / 2**f)``.
    4. Accumulate with shifts, one partial sum per remainder bin:
       ``P[i, j, r] = sum_{k with remainder r} s * 2**Q`` - adding ``±1`` shifted by
       ``Q`` bits, exact in integer (here: float64) arithmetic.
    5. One lookup-table multiply per bin at the end:
       ``C[i, j] = sum_r LUT[r] * P[i, j, r]`` with ``LUT[r] = 2**(r / 2**f)``.

    Steps 3-5 are exact, so the result equals the product of the quantised matrices,
    ``Aq @ Bq`` with ``Aq = sign(A) * 2**(e_A / 2**f)``: the only approximation is the
    rounding of each exponent in step 1, a relative error of at most
    ``2**(2**-(f+1)) - 1`` (about ``0.35 * 2**-f``) per factor; it shrinks as ``f``
    grows.

    Vectorize: for a block of rows of ``A``, form ``q`` of shape ``(rows, K, N)`` at
    once and sum into the ``2**f`` bins with ``scatter_add_`` over ``K`` (blocks of at
    most about ``2**20`` products). Compute the exponents, bins and sums in float64 /
    int64 and cast the result to the dtype of ``A``.

    Args:
        A: ``(M, K)``, a floating dtype, finite values.
        B: ``(K, N)``, the dtype of ``A``, finite values.
        frac_bits: ``f``, an int in ``[0, 10]``.

    Returns:
        ``(M, N)``, the dtype of ``A``.
    """
    # Student build: runs your own `matmul_log_approx` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("precision_matmul_log_approx")(A, B, frac_bits)
