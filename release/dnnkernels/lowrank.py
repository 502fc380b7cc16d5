# Generated automatically from src/dnnkernels/lowrank.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Low-rank approximation: truncated SVD errors, factored products and SVD-compressed layers.

A matrix ``M`` (m, n) with singular values ``s_1 >= s_2 >= ... >= s_p`` (``p = min(m, n)``)
has, by the Eckart–Young theorem, the best rank-k approximation ``M_k = U_k diag(s_1..s_k) V_kᵀ``
(its truncated SVD), with ``||M - M_k||_F = sqrt(s_{k+1}² + ... + s_p²)``. Two assignments
use this module:

- **svd_rank**: how fast the relative error falls with the rank for several kinds of matrices
  (:func:`matrix_family`, :func:`low_rank_errors`), and what a rank-k factorization saves when
  the matrix multiplies another one (:func:`factored_matmul_flops`, :func:`rank_sweep`).
- **mnist**: a linear layer that multiplies by the truncated factors of its trained weight
  (:class:`SVDLinear`), whole networks compressed to a parameter budget
  (:func:`rank_for_ratio`, :func:`compress`, :func:`compression_ratio`) and the accuracy and
  speed of the result (:func:`compression_sweep`).

The exercises (``low_rank_errors``, ``factored_matmul_flops``, ``SVDLinear``,
``rank_for_ratio``) get already-validated arguments; the library functions around them
(``rank_sweep``, ``error_curve``, ``svd_linear``, ``compress`` ...) check their input first
with the ``check_*`` functions below.

Command line (writes plots, tables and the low-rank section of ``BENCHMARKS.md``)::

    python -m dnnkernels.lowrank --out build/lowrank
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import numbers
import os
import re
import sys
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dnnkernels.bench import machine_description, write_section
from dnnkernels.checks import check_choice, check_int, check_tensor, describe
from dnnkernels.matmul import truncated_svd

# ============================================================================ exercises


def low_rank_errors(M: torch.Tensor, ranks: Sequence[int]) -> torch.Tensor:
    """Relative Frobenius error of the best rank-k approximation of ``M``, for each k in ``ranks``.

    With the singular values ``s_1 >= ... >= s_p`` of ``M`` (``p = min(m, n)``) and ``M_k`` the
    truncated SVD of rank k (the best rank-k approximation, Eckart–Young)::

        error(k) = ||M - M_k||_F / ||M||_F = sqrt(s_{k+1}² + ... + s_p²) / sqrt(s_1² + ... + s_p²)

    so no ``M_k`` has to be rebuilt: the singular values are enough. Computed in float64.

    Args:
        M: float tensor of shape (m, n), finite, not all zeros.
        ranks: sequence of ints, each in [1, min(m, n)] (any order, repeats allowed).

    Returns:
        float64 tensor of shape (len(ranks),): ``error(ranks[i])`` at position i; it is 0 at
        k = min(m, n) and does not increase with k.

    Example:
        ``M = diag(3, 4)``: s = (4, 3), error(1) = 3 / 5 = 0.6, error(2) = 0.
    """
    # Student build: runs your own `low_rank_errors` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("svd_rank_errors")(M, ranks)


def factored_matmul_flops(m: int, k: int, n: int, rank: int) -> tuple[int, int]:
    """FLOPs of ``A @ B`` computed dense and through a rank-r factorization of ``A``.

    ``A`` (m, k) ≈ ``U_r diag(S_r) Vh_r`` with ``U_r`` (m, r), ``S_r`` (r,), ``Vh_r`` (r, k);
    ``B`` (k, n); r = ``rank``.

    Counting rule: multiplying a (p, q) matrix by a (q, s) matrix costs ``2·p·q·s`` FLOPs
    (p·q·s multiply-adds, each counted as 2 FLOPs). Nothing else is counted. The scaling by
    ``S_r`` is folded into ``U_r`` once, before inference (``U' = U_r diag(S_r)``), so it
    costs nothing per product.

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
    # Student build: runs your own `factored_matmul_flops` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("svd_rank_flops")(m, k, n, rank)


class SVDLinear(nn.Module):
    """A linear layer ``y = x Wᵀ + b`` that multiplies by the truncated SVD factors of ``W``.

    Built from a trained ``nn.Linear`` with weight ``W`` (out_features, in_features) and a
    rank k: with the truncated SVD ``W ≈ U_k diag(S_k) V_kᵀ`` (``U_k`` (out, k), ``S_k`` (k,),
    ``V_k`` (in, k)), the layer computes::

        y = (x @ V_k) @ (diag(S_k) U_kᵀ) + b

    two thin products (``2·B·k·(in + out)`` FLOPs for a batch of B rows instead of
    ``2·B·in·out``), never the rebuilt weight ``U_k diag(S_k) V_kᵀ``.

    ``S_k`` is folded into the second (output-side) factor, once, when the layer is built:
    the forward pass is then two matrix products and nothing else (no per-batch scaling of
    the intermediate (B, k) activations), and the first factor ``V_k`` keeps orthonormal
    columns, so the intermediate ``x @ V_k`` is the projection of x on the top-k right
    singular vectors, on the same scale as x (``||x V_k|| <= ||x||``).

    The SVD is computed with ``dnnkernels.matmul.truncated_svd`` in the dtype of the weight;
    the factors are stored as ``nn.Parameter``s (so that the layer can be fine-tuned) and the
    bias is copied unchanged.

    Args:
        linear: the trained ``nn.Linear`` (in_features -> out_features), with or without bias.
        rank: int k in [1, min(in_features, out_features)] (checked by callers, see
            :func:`svd_linear`).

    Attributes:
        in_features, out_features, rank: ints.
        V: ``nn.Parameter`` of shape (in_features, rank): ``V_k``.
        SUt: ``nn.Parameter`` of shape (rank, out_features): ``diag(S_k) U_kᵀ``.
        bias: ``nn.Parameter`` of shape (out_features,), or None when ``linear`` has none.

    These are the only parameters (no separate ``S``): ``rank·(in_features + out_features)
    + out_features`` with a bias, ``rank·(in_features + out_features)`` without. This is
    the contract the notebook states and both its visible checks and the hidden checks
    enforce.
    """

    def __init__(self, linear: nn.Linear, rank: int) -> None:
        # Student build: runs `__init__` of your own `SVDLinear` (see dnnkernels._student).
        import dnnkernels._student

        return dnnkernels._student.implementation("mnist_svd_linear").__init__(self, linear, rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Args:
            x: float tensor of shape (..., in_features), the dtype of the factors.

        Returns:
            tensor of shape (..., out_features): ``(x @ V) @ SUt + bias``.
        """
        # Student build: runs `forward` of your own `SVDLinear` (see dnnkernels._student).
        import dnnkernels._student

        return dnnkernels._student.implementation("mnist_svd_linear").forward(self, x)


# Student build: `SVDLinear(...)` builds an instance of your own `SVDLinear`
# class, and isinstance(obj, SVDLinear) accepts it (see
# dnnkernels._student.delegating_class).
import dnnkernels._student  # noqa: E402

SVDLinear = dnnkernels._student.delegating_class("mnist_svd_linear", SVDLinear)


def rank_for_ratio(in_features: int, out_features: int, ratio: float) -> int:
    """The largest rank whose factored layer keeps at most ``ratio`` of a linear layer's parameters.

    A dense ``nn.Linear(in, out)`` with bias has ``in·out + out`` parameters; its rank-r
    :class:`SVDLinear` has ``r·(in + out) + out`` (the factors (in, r) and (r, out), and the
    bias unchanged). The answer is the largest int r >= 1 with::

        r·(in + out) + out <= ratio · (in·out + out)

    i.e. ``r = floor((ratio·(in·out + out) - out) / (in + out))``. The comparison is exact:
    ``ratio`` counts at its exact binary value (``ratio.as_integer_ratio()`` gives it as a
    fraction p / q of two ints), so a target that lands exactly on a parameter count is met,
    and no float rounding moves the answer across a boundary.

    For ratio <= 1 the answer is below min(in, out): a factored layer only saves parameters
    when ``r < in·out / (in + out)``.

    Args:
        in_features, out_features: positive ints.
        ratio: float in (0, 1], at least the ratio of the rank-1 layer,
            ``(in + 2·out) / (in·out + out)`` (see :func:`min_ratio`). Below that no rank
            meets the target; callers (:func:`check_layer_ratio`, :func:`compress`) raise
            ``ValueError`` before calling.

    Returns:
        int r >= 1.

    Example:
        in = 784, out = 512, ratio = 0.25: floor((0.25·401,920 - 512) / 1296) = 77
        (77·1296 + 512 = 100,304 <= 100,480 parameters).
    """
    # Student build: runs your own `rank_for_ratio` (see dnnkernels._student).
    import dnnkernels._student

    return dnnkernels._student.implementation("mnist_rank_for_ratio")(in_features, out_features, ratio)


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


def check_ratio(name: str, ratio: object) -> float:
    """Check a compression ratio target: a real number in (0, 1]; returns it as a float."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float):
        raise TypeError(f"{name}: got {describe(ratio)}, expected a float in (0, 1]")
    if not (0 < ratio <= 1):  # also rejects NaN
        raise ValueError(f"{name}: got {ratio}, expected a float in (0, 1]")
    return float(ratio)


def check_linear(name: str, layer: object) -> nn.Linear:
    """Check that ``layer`` is an ``nn.Linear`` (not already an SVDLinear)."""
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"{name}: got {describe_module(layer)}, expected a torch.nn.Linear")
    return layer


def describe_module(value: object) -> str:
    """Short description of a module (its class and repr head) or of any other value."""
    if isinstance(value, nn.Module):
        text = repr(value).splitlines()[0]
        return f"{type(value).__name__} module {text[:50]}"
    return describe(value)


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameters of a dense ``nn.Linear``: ``in·out (+ out)``."""
    return in_features * out_features + (out_features if bias else 0)


def factored_params(in_features: int, out_features: int, rank: int, bias: bool = True) -> int:
    """Parameters of a rank-r :class:`SVDLinear`: ``r·(in + out) (+ out)``."""
    return rank * (in_features + out_features) + (out_features if bias else 0)


def min_ratio(in_features: int, out_features: int) -> float:
    """The smallest reachable layer ratio: that of the rank-1 factored layer (with bias).

    Rounded up to the next float if needed, so that ``rank_for_ratio`` accepts it.
    """
    return _smallest_float_at_least(
        factored_params(in_features, out_features, 1), linear_params(in_features, out_features)
    )


def _at_most(count: int, ratio: float, total: int) -> bool:
    """Exact test of ``count <= ratio · total`` (ratio at its exact binary value)."""
    p, q = float(ratio).as_integer_ratio()
    return q * count <= p * total


def check_layer_ratio(name: str, ratio: object, in_features: int, out_features: int) -> float:
    """Check a ratio target for one layer: in (0, 1] and reachable by a rank-1 factored layer."""
    ratio = check_ratio(name, ratio)
    check_int("in_features", in_features, low=1)
    check_int("out_features", out_features, low=1)
    one = factored_params(in_features, out_features, 1)
    if not _at_most(one, ratio, linear_params(in_features, out_features)):
        raise ValueError(
            f"{name}: got {ratio}, expected at least {min_ratio(in_features, out_features):.6g} "
            f"for a {in_features} -> {out_features} layer (its rank-1 factors keep {one} of "
            f"{linear_params(in_features, out_features)} parameters)"
        )
    return ratio


# ============================================================================ layers and models


def svd_linear(linear: nn.Linear, rank: int) -> SVDLinear:
    """Checked constructor of :class:`SVDLinear` (``linear`` an nn.Linear, rank in range)."""
    check_linear("linear", linear)
    check_tensor("linear.weight", linear.weight, finite=True)
    check_rank("rank", rank, (linear.out_features, linear.in_features))
    layer = SVDLinear(linear, rank)
    return layer.train(linear.training)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (``sum(p.numel() for p in model.parameters())``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: got {describe(model)}, expected a torch.nn.Module")
    return sum(p.numel() for p in model.parameters())


def compression_ratio(original_model: nn.Module, compressed_model: nn.Module) -> float:
    """Parameters of the compressed model over parameters of the original (a float).

    Definition: every parameter of each model counts, biases included: the factors and
    biases of the :class:`SVDLinear` layers, and the parameters of layers left as they were
    (dense linear layers that were not factored, convolutions, ...), which count on both
    sides. For a model whose parameters all sit in factored linear layers (the MLP of the
    course, compressed with :func:`compress`) this is exactly "parameters of the factored
    layers including bias over the original's": ``Σ r_l·(in_l + out_l) + out_l`` over
    ``Σ in_l·out_l + out_l``. Buffers are not counted. Values below 1 mean a smaller model.
    """
    if not isinstance(original_model, nn.Module):
        raise TypeError(
            f"original_model: got {describe(original_model)}, expected a torch.nn.Module"
        )
    if not isinstance(compressed_model, nn.Module):
        raise TypeError(
            f"compressed_model: got {describe(compressed_model)}, expected a torch.nn.Module"
        )
    original = count_parameters(original_model)
    if original == 0:
        raise ValueError("original_model: got a module without parameters, expected at least one")
    return count_parameters(compressed_model) / original


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` sub-modules of ``model`` by qualified name, in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}


ALLOCATIONS = ("energy", "uniform")
"""Ways :func:`compress` shares a parameter budget among the linear layers."""


def _smallest_float_at_least(numerator: int, denominator: int) -> float:
    """The smallest float ``x`` with ``x >= numerator / denominator`` exactly."""
    x = numerator / denominator
    if Fraction(x) < Fraction(numerator, denominator):
        x = math.nextafter(x, math.inf)
    return x


class _Budget:
    """Parameter accounting of a model whose linear layers get factored (see compress)."""

    def __init__(self, model: nn.Module, ratio: float) -> None:
        self.layers = linear_layers(model)
        self.total = count_parameters(model)
        dense = sum(p.numel() for m in self.layers.values() for p in m.parameters())
        self.others = self.total - dense
        self.ratio = ratio
        p, q = float(ratio).as_integer_ratio()
        self.budget = (p * self.total) // q  # largest count with count <= ratio * total
        smallest = self.size({name: 1 for name in self.layers})
        if smallest > self.budget:
            raise ValueError(
                f"ratio: got {ratio}, expected at least "
                f"{_smallest_float_at_least(smallest, self.total):.6g} for this model (every "
                f"linear layer at rank 1 keeps {smallest} of {self.total} parameters)"
            )

    def size(self, ranks: Mapping[str, int]) -> int:
        """Parameters of the model with the linear layers factored at ``ranks``."""
        return self.others + sum(
            factored_params(m.in_features, m.out_features, ranks[n], m.bias is not None)
            for n, m in self.layers.items()
        )


def _reaches(in_features: int, out_features: int, ratio: float) -> bool:
    """Whether a rank-1 factored layer meets ``ratio`` (so rank_for_ratio has an answer)."""
    one = factored_params(in_features, out_features, 1)
    return _at_most(one, ratio, linear_params(in_features, out_features))


def _ranks_uniform(model: nn.Module, ratio: float) -> dict[str, int]:
    """Allocation "uniform": the same layer ratio for every linear layer (see compress)."""
    budget = _Budget(model, ratio)

    def ranks_at(layer_ratio: float) -> dict[str, int]:
        return {
            name: rank_for_ratio(m.in_features, m.out_features, layer_ratio)
            if _reaches(m.in_features, m.out_features, layer_ratio)
            else 1  # not even rank 1 meets the layer ratio: the smallest factored layer
            for name, m in budget.layers.items()
        }

    ranks = ranks_at(ratio)
    if budget.size(ranks) <= budget.budget:
        return ranks
    # some layers cannot reach the ratio even at rank 1: lower the layer ratio of all
    # (bisection; the size only grows with it) until the whole model meets the target
    low, high = 0.0, ratio
    for _ in range(64):
        middle = (low + high) / 2
        if budget.size(ranks_at(middle)) <= budget.budget:
            low = middle
        else:
            high = middle
    return ranks_at(low) if low > 0 else {name: 1 for name in budget.layers}


def _ranks_energy(model: nn.Module, ratio: float) -> dict[str, int]:
    """Allocation "energy": ranks bought greedily by error reduction per parameter."""
    budget = _Budget(model, ratio)
    gains, costs, owners = [], [], []
    names = list(budget.layers)
    for index, m in enumerate(budget.layers.values()):
        i, o = m.in_features, m.out_features
        cap = rank_for_ratio(i, o, 1.0) if _reaches(i, o, 1.0) else 1
        if cap < 2 or not bool(m.weight.detach().any()):
            continue
        weight = m.weight.detach()
        squared = low_rank_errors(weight, list(range(1, cap + 1))).square()
        # error² falls by s_r² / ||W||² when rank r is added (r = 2 .. cap), at i + o params
        gains.append((squared[:-1] - squared[1:]) / (i + o))
        costs.append(torch.full((cap - 1,), i + o, dtype=torch.int64))
        owners.append(torch.full((cap - 1,), index, dtype=torch.int64))
    ranks = {name: 1 for name in names}
    if not gains:
        return ranks
    gain, cost, owner = torch.cat(gains), torch.cat(costs), torch.cat(owners)
    order = torch.sort(gain, descending=True, stable=True).indices
    spent = torch.cumsum(cost[order], dim=0)
    bought = owner[order][spent <= budget.budget - budget.size(ranks)]
    for index, extra in enumerate(torch.bincount(bought, minlength=len(names)).tolist()):
        ranks[names[index]] += extra
    return ranks


def _replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the qualified ``name`` inside ``root``."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def compress(
    model: nn.Module,
    ranks: int | Sequence[int] | Mapping[str, int] | None = None,
    ratio: float | None = None,
    allocation: str = "energy",
) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are replaced by :class:`SVDLinear` layers.

    Give exactly one of:

    - ``ranks``: an int (the same rank for every linear layer), a sequence with one rank per
      linear layer (in the order of :func:`linear_layers`), or a dict ``{layer name: rank}``
      (layers not named stay dense). Each rank in [1, min(in, out)] of its layer.
    - ``ratio``: a target in (0, 1] for :func:`compression_ratio`; every linear layer is
      factored and the result always has ``compression_ratio(model, result) <= ratio``.
      ``allocation`` says how the parameter budget is shared among the layers:

      - ``"energy"`` (default): every layer starts at rank 1; then ranks are added
        greedily, the largest decrease of the layer's squared relative error per parameter
        first (adding rank r to layer W lowers ``low_rank_errors(W, ·)²`` by
        ``s_r² / ||W||_F²`` at a cost of ``in + out`` parameters), as long as the budget
        allows (the list of all such steps, sorted by decrease per parameter, is taken up to
        the first step that no longer fits). A greedy approach to the smallest sum over
        layers of the squared relative Frobenius errors (exact when all layers have the
        same ``in + out``; singular values do not increase, so each layer's steps come in
        order). No layer goes beyond ``rank_for_ratio(in, out, 1.0)``, where the factors
        stop saving parameters.
      - ``"uniform"`` (the classic rule): every layer keeps the same share of its own
        parameters, rank ``rank_for_ratio(in, out, ratio)``. A layer that cannot reach the
        ratio even at rank 1 gets rank 1; if that pushes the model above ``ratio``, the
        layer ratio of all layers is lowered (bisection) until the model meets it. Simple,
        but hard on small layers: at ratio 0.5 the MLP's fc3 (128 -> 10) keeps rank 4 of
        10 although it holds 0.3 % of the parameters.

      Raises ``ValueError`` if even rank 1 everywhere exceeds ``ratio``.

    The original model is not modified (it is deep-copied); the copy keeps its train/eval
    mode. Returns the new model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: got {describe(model)}, expected a torch.nn.Module")
    if (ranks is None) == (ratio is None):
        raise ValueError(
            f"ranks, ratio: got ranks={describe(ranks)} and ratio={describe(ratio)}, "
            "expected exactly one of them"
        )
    layers = linear_layers(model)
    if not layers:
        raise ValueError(f"model: got {describe_module(model)}, expected at least one nn.Linear")
    check_choice("allocation", allocation, ALLOCATIONS)
    if ratio is not None:
        ratio = check_ratio("ratio", ratio)
        allocate = _ranks_uniform if allocation == "uniform" else _ranks_energy
        chosen = allocate(model, ratio)
    elif isinstance(ranks, Mapping):
        unknown = [name for name in ranks if name not in layers]
        if unknown:
            raise ValueError(
                f"ranks: got layer names {unknown}, expected names of linear layers {list(layers)}"
            )
        chosen = dict(ranks)
    elif isinstance(ranks, int) and not isinstance(ranks, bool):
        chosen = {name: ranks for name in layers}
    elif isinstance(ranks, Sequence) and not isinstance(ranks, str | bytes):
        if len(ranks) != len(layers):
            raise ValueError(
                f"ranks: got {len(ranks)} ranks, expected {len(layers)} (one per linear layer "
                f"{list(layers)})"
            )
        chosen = dict(zip(layers, ranks, strict=True))
    else:
        raise TypeError(
            f"ranks: got {describe(ranks)}, expected an int, a sequence of ints or a dict "
            "{layer name: rank}"
        )
    for name, rank in chosen.items():
        m = layers[name]
        check_rank(f"ranks[{name!r}]", rank, (m.out_features, m.in_features))

    compressed = copy.deepcopy(model)
    for name, rank in chosen.items():
        _replace_module(compressed, name, svd_linear(compressed.get_submodule(name), rank))
    return compressed


def layer_ranks(model: nn.Module) -> dict[str, int]:
    """Rank of each :class:`SVDLinear` layer of ``model`` (its ``rank`` attribute)."""
    return {name: m.rank for name, m in model.named_modules() if isinstance(m, SVDLinear)}


# ============================================================================ matrix families

FAMILIES = (
    "random",
    "lowrank_noise",
    "photo",
    "mnist_batch",
    "mlp_weight",
    "mlp_activations",
)
"""Names of the matrix families of the svd_rank assignment (see :func:`matrix_family`)."""

RANDOM_SHAPE = (1024, 1024)
LOWRANK_RANK = 32
LOWRANK_NOISE = 0.05
BATCH_SIZE = 1000


def _batch_indices(count: int, seed: int) -> torch.Tensor:
    """``BATCH_SIZE`` test-image indices drawn without replacement with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[:BATCH_SIZE]


def matrix_family(name: str, seed: int = 0, *, model=None, data=None) -> torch.Tensor:
    """One matrix of a family of the svd_rank assignment (float32, 2-D, deterministic).

    ``name``:

    - ``"random"``: (1024, 1024), i.i.d. standard normal entries.
    - ``"lowrank_noise"``: (1024, 1024), ``G1 @ G2 / sqrt(32) + 0.05·N`` with G1 (1024, 32),
      G2 (32, 1024) and N standard normal: rank 32 with entries of variance 1, plus noise.
    - ``"photo"``: (600, 512), the grayscale photograph of Grace Hopper shipped with
      matplotlib (``grace_hopper.jpg``): luma ``0.299 R + 0.587 G + 0.114 B`` scaled to
      [0, 1]. ``seed`` is not used.
    - ``"mnist_batch"``: (1000, 784), one test image per row, pixels scaled to [0, 1];
      ``seed`` chooses the 1000 images (without replacement).
    - ``"mlp_weight"``: (512, 784), the weight of ``fc1`` of the trained MLP.
      ``seed`` is not used.
    - ``"mlp_activations"``: (1000, 512), ``relu(fc1(x))`` of the MLP for the (normalised)
      images of ``"mnist_batch"`` with the same seed: the activations entering ``fc2``.

    Args:
        name: one of :data:`FAMILIES`.
        seed: int >= 0 for the random draws.
        model: the MLP for the ``mlp_*`` families (default: ``models.load_trained("mlp")``).
        data: the :class:`dnnkernels.data.MNIST` for the image families (default:
            ``data.load_mnist()``).

    Returns:
        float32 tensor of the shape above.
    """
    check_choice("name", name, FAMILIES)
    check_int("seed", seed, low=0)
    generator = torch.Generator().manual_seed(seed)
    if name == "random":
        return torch.randn(RANDOM_SHAPE, generator=generator)
    if name == "lowrank_noise":
        m, n = RANDOM_SHAPE
        left = torch.randn(m, LOWRANK_RANK, generator=generator)
        right = torch.randn(LOWRANK_RANK, n, generator=generator)
        noise = torch.randn(m, n, generator=generator)
        return left @ right / math.sqrt(LOWRANK_RANK) + LOWRANK_NOISE * noise
    if name == "photo":
        import matplotlib.cbook as cbook
        import matplotlib.image as mpimg

        with cbook.get_sample_data("grace_hopper.jpg") as stream:
            rgb = mpimg.imread(stream, format="jpg")
        luma = rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return torch.from_numpy(luma / 255.0).to(torch.float32)
    if name == "mlp_weight":
        model = _trained_mlp() if model is None else model
        return model.fc1.weight.detach().to(torch.float32).clone()

    if data is None:
        from dnnkernels.data import load_mnist

        data = load_mnist()
    images = data.test_images[_batch_indices(len(data.test_images), seed)]
    if name == "mnist_batch":
        return images.reshape(len(images), -1).to(torch.float32) / 255.0
    # mlp_activations
    from dnnkernels.data import normalize

    model = _trained_mlp() if model is None else model
    with torch.no_grad():
        x = normalize(images).reshape(len(images), -1)
        return torch.relu(model.fc1(x)).to(torch.float32)


def _trained_mlp() -> nn.Module:
    """The committed trained MLP (eval mode)."""
    from dnnkernels.models import load_trained

    return load_trained("mlp").eval()


# ============================================================================ sweeps


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


def time_medians(
    fns: Mapping[str, Callable[[], object]],
    threads: int = 1,
    min_run_time: float = 0.3,
    rounds: int = 3,
) -> dict[str, float]:
    """Median seconds per call of each callable, measured side by side in interleaved rounds.

    Each round runs ``torch.utils.benchmark.Timer(...).blocked_autorange(min_run_time /
    rounds)`` on every callable in turn, all with ``threads`` torch threads; the result is
    the median over all blocks of all rounds (as ``dnnkernels.bench.time_medians``).

    Clock: with one thread, the CPU time of the calling thread (``time.thread_time``), where
    torch then does all its work: time spent waiting while other jobs of a shared machine
    run does not count, so the ratio of two timings stays meaningful under load (a long
    call is preempted more often than a short one, which skews wall-clock ratios). With
    several threads, the wall clock (``timeit.default_timer``), since the CPU time of the
    calling thread would miss the work of the others.
    """
    from torch.utils import benchmark

    check_int("threads", threads, low=1)
    check_int("rounds", rounds, low=1)
    clock = time.thread_time if threads == 1 else timeit.default_timer
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = benchmark.Timer(
                stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=clock
            )
            times[name].extend(timer.blocked_autorange(min_run_time=min_run_time / rounds).times)
    return {name: float(np.median(t)) for name, t in times.items()}


def rank_sweep(
    matrix: torch.Tensor,
    ranks: Sequence[int] | None = None,
    *,
    n: int = 512,
    seed: int = 0,
    measure: bool = True,
    min_run_time: float = 0.2,
    threads: int = 1,
    progress: bool = True,
) -> list[dict]:
    """Error, FLOPs and measured speed-up of the rank-r factored product ``A @ B`` per rank.

    ``A = matrix`` (m, k) (cast to float32); ``B`` (k, n) a fixed standard normal matrix
    (seeded with ``seed``). The SVD of A is computed once (``truncated_svd`` at full rank, in
    float64) and sliced; the factors ``U' = U_r diag(S_r)`` (m, r) and ``Vh_r`` (r, k) are
    precomputed, contiguous float32, before any timing. The timed products are the dense
    ``A @ B`` and the factored ``U' @ (Vh_r @ B)``: the order that can beat the dense product
    (the other order rebuilds A and always costs more than dense), so the measured
    product's FLOPs equal ``flops_factored`` whenever it is below ``flops_dense``.

    Args:
        matrix: float32/float64 tensor (m, k), finite, nonzero.
        ranks: ints in [1, min(m, k)]; default :func:`default_ranks`.
        n: columns of the right operand B.
        seed: seed of B.
        measure: time the products (``torch.utils.benchmark``, median of
            ``blocked_autorange``); if False the time columns are NaN.
        min_run_time: seconds of repeats per timing (dense and factored each).
        threads: torch threads of both timings (default 1, as in ``dnnkernels.bench``).
        progress: show a tqdm bar over the ranks.

    Returns:
        one dict per rank, in the order of ``ranks``, with keys ``rank``, ``rel_error``
        (:func:`low_rank_errors`), ``flops_factored``, ``flops_dense``
        (:func:`factored_matmul_flops`), ``flop_ratio`` (dense / factored),
        ``time_dense_s``, ``time_factored_s`` (median seconds) and ``speedup``
        (time_dense / time_factored).
    """
    check_matrix("matrix", matrix)
    ranks = default_ranks(matrix.shape) if ranks is None else ranks
    ranks = check_ranks("ranks", ranks, matrix.shape)
    check_int("n", n, low=1)
    check_int("seed", seed, low=0)
    m, k = matrix.shape
    errors = low_rank_errors(matrix, ranks).tolist()

    A = matrix.to(torch.float32).contiguous()
    B = torch.randn(k, n, generator=torch.Generator().manual_seed(seed))
    if measure:
        with torch.no_grad():
            U, S, Vh = truncated_svd(A.to(torch.float64), min(m, k))

    rows = []
    for rank, error in zip(tqdm(ranks, desc="ranks", disable=not progress), errors, strict=True):
        factored, dense = factored_matmul_flops(m, k, n, rank)
        time_dense = time_factored = math.nan
        if measure:
            left = (U[:, :rank] * S[:rank]).to(torch.float32).contiguous()
            right = Vh[:rank].to(torch.float32).contiguous()
            times = time_medians(
                {
                    "dense": lambda: torch.mm(A, B),
                    "factored": lambda left=left, right=right: torch.mm(left, torch.mm(right, B)),
                },
                threads,
                min_run_time,
            )
            time_dense, time_factored = times["dense"], times["factored"]
        rows.append(
            {
                "rank": rank,
                "rel_error": float(error),
                "flops_factored": int(factored),
                "flops_dense": int(dense),
                "flop_ratio": dense / factored,
                "time_dense_s": time_dense,
                "time_factored_s": time_factored,
                "speedup": time_dense / time_factored,
            }
        )
    return rows


def finetune(
    model: nn.Module,
    data,
    steps: int,
    lr: float = 1e-4,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Train ``model`` in place for ``steps`` Adam steps on ``data.train_loader`` (cross-entropy).

    The global random state is left untouched (``torch.random.fork_rng``); the batches come
    from the loader's own seeded generator. Returns the model, in eval mode.
    """
    check_int("steps", steps, low=0)
    if steps == 0:
        return model.eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        bar = tqdm(total=steps, desc="fine-tune", disable=not progress, leave=False)
        done = 0
        while done < steps:
            for x, y in data.train_loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                done += 1
                bar.update(1)
                if done == steps:
                    break
        bar.close()
    return model.eval()


@torch.no_grad()
def _infer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One forward pass without autograd (what the inference timings measure)."""
    return model(x)


def _evaluate(model: nn.Module, data) -> float:
    from dnnkernels.models import evaluate

    return float(evaluate(model.eval(), data.test_loader))


def compression_sweep(
    model: nn.Module,
    ratios: Sequence[float],
    data,
    finetune_steps: int = 0,
    *,
    allocations: Sequence[str] = ALLOCATIONS,
    batch_sizes: Sequence[int] = (1, 1000),
    min_run_time: float = 0.5,
    threads: int = 1,
    finetune_lr: float = 1e-4,
    progress: bool = True,
) -> list[dict]:
    """Accuracy, size and measured inference time of ``compress(model, ratio=t)`` per target t.

    For each allocation and target ratio: compress the model (:func:`compress`), measure its
    :func:`compression_ratio` and its test accuracy (``models.evaluate`` on
    ``data.test_loader``), optionally fine-tune it for ``finetune_steps`` steps
    (:func:`finetune`) and measure the accuracy again, then time one forward pass
    (``torch.no_grad``) of the dense and of the compressed model on the first B normalised
    test images for each B in ``batch_sizes``, side by side (dense, then compressed, same
    thread count, ``torch.utils.benchmark`` median).

    Args:
        model: the trained dense model (not modified).
        ratios: targets in (0, 1].
        data: :class:`dnnkernels.data.MNIST`.
        allocations: rank allocations of :func:`compress` (``"uniform"``, ``"energy"``).
        finetune_steps: Adam steps of fine-tuning per compressed model (0: none).
        batch_sizes: batch sizes to time.
        min_run_time: seconds of repeats per timing (dense and compressed each).
        threads: torch threads of all timings (default 1, as in ``dnnkernels.bench``).
        finetune_lr: Adam learning rate.
        progress: tqdm bars.

    Returns:
        one dict per (allocation, target), allocations in the outer loop, with keys
        ``allocation``, ``ratio_target``, ``ratio`` (actual), ``ranks`` (e.g.
        ``"fc1:77 fc2:16 fc3:1"``), ``accuracy``, ``accuracy_dense``, ``accuracy_finetuned``
        (NaN without fine-tuning), and per batch size B: ``time_dense_b{B}_s``,
        ``time_factored_b{B}_s``, ``speedup_b{B}`` (dense / factored).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: got {describe(model)}, expected a torch.nn.Module")
    if isinstance(ratios, str | bytes) or not isinstance(ratios, Sequence) or not ratios:
        raise TypeError(f"ratios: got {describe(ratios)}, expected a non-empty sequence")
    ratios = [check_ratio(f"ratios[{i}]", t) for i, t in enumerate(ratios)]
    check_int("finetune_steps", finetune_steps, low=0)
    batch_sizes = [check_int("batch_sizes[]", b, low=1) for b in batch_sizes]
    allocations = [check_choice("allocations[]", a, ALLOCATIONS) for a in allocations]
    from dnnkernels.data import normalize

    model = model.eval()
    inputs = {b: normalize(data.test_images[:b]) for b in batch_sizes}
    accuracy_dense = _evaluate(model, data)

    rows = []
    points = [(a, t) for a in allocations for t in ratios]
    for allocation, target in tqdm(points, desc="compression ratios", disable=not progress):
        compressed = compress(model, ratio=target, allocation=allocation).eval()
        row = {
            "allocation": allocation,
            "ratio_target": target,
            "ratio": compression_ratio(model, compressed),
            "ranks": " ".join(f"{n}:{r}" for n, r in layer_ranks(compressed).items()),
            "accuracy": _evaluate(compressed, data),
            "accuracy_dense": accuracy_dense,
            "accuracy_finetuned": math.nan,
        }
        if finetune_steps:
            finetune(compressed, data, finetune_steps, finetune_lr, progress=progress)
            row["accuracy_finetuned"] = _evaluate(compressed, data)
        for b, x in inputs.items():
            times = time_medians(
                {
                    "dense": lambda x=x: _infer(model, x),
                    "factored": lambda x=x, c=compressed: _infer(c, x),
                },
                threads,
                min_run_time,
            )
            dense, factored = times["dense"], times["factored"]
            row[f"time_dense_b{b}_s"] = dense
            row[f"time_factored_b{b}_s"] = factored
            row[f"speedup_b{b}"] = dense / factored
        rows.append(row)
    return rows


# ============================================================================ tables and plots


def _format(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_csv(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """Write dict rows (same keys) to a CSV file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _format(value) for key, value in row.items()})
    return path


def markdown_table(
    rows: Sequence[Mapping],
    columns: Mapping[str, str] | None = None,
    formats: Mapping[str, str] | None = None,
) -> str:
    """A GitHub markdown table of dict rows.

    ``columns`` maps keys to headers (default: every key, as its own header); ``formats``
    maps keys to format specs (e.g. ``".3g"``); other values are written as in the CSV.
    """
    columns = {key: key for key in rows[0]} if columns is None else columns
    formats = {} if formats is None else formats
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = [
            format(row[key], formats[key]) if key in formats else _format(row[key])
            for key in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


ERROR_FLOOR = 1e-7
"""Lowest error shown by :func:`plot_rank_errors` (float32 data carry ~7 digits)."""


def plot_rank_errors(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: str | os.PathLike
) -> Path:
    """One panel per family: relative Frobenius error against rank (log y). Writes a PNG.

    The y axis stops at :data:`ERROR_FLOOR`: smaller errors (beyond the numerical rank of a
    float32 matrix) are rounding noise.
    """
    plt = _pyplot()
    names = list(curves)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        ranks, errors = curves[name]
        errors = np.asarray(errors, dtype=np.float64)
        shown = errors > 0  # the error is exactly 0 at full rank: not on a log axis
        ax.semilogy(np.asarray(ranks)[shown], errors[shown])
        if shown.any():  # below ~1e-7 is rounding of float32 data: keep the axis readable
            ax.set_ylim(max(ERROR_FLOOR, 0.5 * float(errors[shown].min())), 1.5)
        ax.set_title(name)
        ax.set_xlabel("rank k")
        ax.set_ylabel("||M - M_k||_F / ||M||_F")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("Relative error of the best rank-k approximation")
    return _save(fig, path)


def plot_rank_speedup(sweeps: Mapping[str, Sequence[Mapping]], path: str | os.PathLike) -> Path:
    """Measured speed-up and FLOP ratio (dense / factored) against rank, one line per family."""
    plt = _pyplot()
    fig, (ax_time, ax_flops) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name, rows in sweeps.items():
        ranks = [r["rank"] for r in rows]
        ax_time.loglog(ranks, [r["speedup"] for r in rows], "o-", label=name)
        ax_flops.loglog(ranks, [r["flop_ratio"] for r in rows], "o-", label=name)
    for ax, title in (
        (ax_time, "measured speed-up (dense time / factored time)"),
        (ax_flops, "FLOP ratio (dense / factored)"),
    ):
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("rank r")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.set_ylabel("dense / factored")
    ax_flops.legend(fontsize=8)
    fig.suptitle("Factored product U'(Vh B) against the dense A @ B")
    return _save(fig, path)


def plot_compression(rows: Sequence[Mapping], out_dir: str | os.PathLike) -> list[Path]:
    """The three plots of the mnist assignment, as PNG files in ``out_dir``.

    ``ratio_vs_accuracy.png``, ``ratio_vs_runtime.png`` (one panel per timed batch size,
    compressed and dense), ``runtime_vs_accuracy.png`` (time at the largest batch against
    accuracy, points labelled with their ratio); one line per allocation (and per
    fine-tuning, when there was some). ``rows`` as returned by :func:`compression_sweep`.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(row.get("allocation", "uniform"), []).append(row)
    tuned = not all(math.isnan(r["accuracy_finetuned"]) for r in rows)
    dense_accuracy = 100 * rows[0]["accuracy_dense"]
    batches = sorted(
        int(m.group(1)) for key in rows[0] if (m := re.fullmatch(r"speedup_b(\d+)", key))
    )
    big = batches[-1]
    paths = []

    def accuracy_lines(ax, x_of):
        for allocation, group in groups.items():
            xs = [x_of(r) for r in group]
            line = ax.plot(xs, [100 * r["accuracy"] for r in group], "o-", label=allocation)[0]
            if tuned:
                ax.plot(
                    xs,
                    [100 * r["accuracy_finetuned"] for r in group],
                    "s--",
                    color=line.get_color(),
                    label=f"{allocation} + fine-tuning",
                )

    fig, ax = plt.subplots(figsize=(6, 4.2))
    accuracy_lines(ax, lambda r: r["ratio"])
    ax.axhline(dense_accuracy, color="gray", linestyle=":", label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (parameters kept)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Compression ratio vs accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "ratio_vs_accuracy.png"))

    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4), squeeze=False)
    for ax, b in zip(axes.flat, batches, strict=True):
        for allocation, group in groups.items():
            ratio = [r["ratio"] for r in group]
            ax.plot(
                ratio, [1e3 * r[f"time_factored_b{b}_s"] for r in group], "o-", label=allocation
            )
        everything = sorted(rows, key=lambda r: r["ratio"])
        ax.plot(
            [r["ratio"] for r in everything],
            [1e3 * r[f"time_dense_b{b}_s"] for r in everything],
            "x:",
            color="gray",
            label="dense (measured alongside)",
        )
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio (parameters kept)")
        ax.set_ylabel("inference time (ms)")
        ax.set_title(f"batch {b}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Compression ratio vs measured runtime")
    paths.append(_save(fig, out_dir / "ratio_vs_runtime.png"))

    fig, ax = plt.subplots(figsize=(6, 4.2))
    accuracy_lines(ax, lambda r: 1e3 * r[f"time_factored_b{big}_s"])
    for r in rows:
        ax.annotate(
            f"{r['ratio']:.2g}",
            (1e3 * r[f"time_factored_b{big}_s"], 100 * r["accuracy"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    dense_time = float(np.median([1e3 * r[f"time_dense_b{big}_s"] for r in rows]))
    ax.plot([dense_time], [dense_accuracy], "k*", markersize=10, label="dense")
    ax.set_xlabel(f"inference time, batch {big} (ms)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Runtime vs accuracy (labels: compression ratio)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "runtime_vs_accuracy.png"))
    return paths


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


# ============================================================================ BENCHMARKS.md

BENCH_SECTION = "lowrank"
"""Name of the section in BENCHMARKS.md (``<!-- bench:lowrank:begin/end -->`` markers)."""


SPEED_TARGET_RATIO = 0.25
"""At compression ratios up to this, the batch-1000 MLP must run faster than the dense one."""


def _load() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def _clock_name(threads: int) -> str:
    if threads == 1:
        return "CPU time of the timing thread (`time.thread_time`), so other jobs do not count"
    return "wall clock (`timeit.default_timer`)"


def benchmark_section(
    rank_rows: Sequence[Mapping],
    compression_rows: Sequence[Mapping],
    command: str,
    threads: int = 1,
    finetune_steps: int = 0,
) -> str:
    """The markdown of the low-rank section of BENCHMARKS.md (targets stated, met or not)."""
    lines = [
        "## Low rank: factored products and the SVD-compressed MLP",
        "",
        f"Command: `{command}`. {machine_description(threads)}.",
        f"Load average when the run ended: {_load()}.",
        "Times are medians of `torch.utils.benchmark` blocks (`dnnkernels.lowrank.time_medians`:",
        "dense and factored measured side by side in interleaved rounds, same thread count);",
        f"clock: {_clock_name(threads)}. The machine may be shared with other jobs, so single",
        "numbers vary from run to run.",
        "",
        "### svd_rank: factored product U'(Vh B) against the dense A @ B",
        "",
        "Speed-up = dense time / factored time; FLOPs = dense / factored "
        "(`factored_matmul_flops`).",
        "",
    ]
    lines.append(
        markdown_table(
            rank_rows,
            {
                "family": "family",
                "shape": "A (m, k)",
                "n": "B columns",
                "rank": "rank",
                "rel_error": "rel. error",
                "flop_ratio": "FLOPs dense/factored",
                "speedup": "measured speed-up",
            },
            {"rel_error": ".4g", "flop_ratio": ".3g", "speedup": ".2f"},
        )
    )
    lines.append(
        "\nAt small ranks the two thin products are too small to run at full speed, so the "
        "measured speed-up stays below the FLOP ratio; near the break-even rank the two agree."
    )
    batches = sorted(
        int(m.group(1))
        for key in compression_rows[0]
        if (m := re.fullmatch(r"speedup_b(\d+)", key))
    )
    columns = {
        "allocation": "allocation",
        "ratio_target": "target ratio",
        "ratio": "actual ratio",
        "ranks": "ranks",
        "accuracy": "accuracy",
        "accuracy_finetuned": "fine-tuned",
    }
    formats = {"ratio": ".4f", "accuracy": ".4f", "accuracy_finetuned": ".4f"}
    for b in batches:
        columns[f"time_dense_b{b}_s"] = f"dense b{b} (ms)"
        columns[f"time_factored_b{b}_s"] = f"SVD b{b} (ms)"
        columns[f"speedup_b{b}"] = f"speed-up b{b}"
        formats |= {f"time_dense_b{b}_s": ".3g", f"time_factored_b{b}_s": ".3g"}
        formats[f"speedup_b{b}"] = ".2f"
    shown = []
    for row in compression_rows:
        row = dict(row)
        for key in row:
            if key.startswith("time_"):
                row[key] = 1e3 * row[key]
        shown.append(row)
    lines += [
        "",
        "### mnist: MLP 784-512-128-10 with every linear layer replaced by SVDLinear",
        "",
        f"Dense test accuracy {compression_rows[0]['accuracy_dense']:.4f}. "
        "Ratio = parameters of the compressed model over the dense one's (biases included);",
        "allocation: how `compress` shares the budget among fc1, fc2, fc3 (uniform: the same",
        "ratio per layer; energy: greedy by error reduction per parameter). Fine-tuned: "
        f"accuracy after {finetune_steps} Adam steps (lr 1e-4, batch 128) of the compressed "
        "model.",
        "",
        markdown_table(shown, columns, formats),
    ]
    big = max(batches)
    checked = [r for r in compression_rows if r["ratio"] <= SPEED_TARGET_RATIO]
    met = [r for r in checked if r[f"speedup_b{big}"] > 1]
    verdict = "**met**" if checked and len(met) == len(checked) else "**missed**"
    detail = ", ".join(
        f"{r.get('allocation', 'uniform')} {r['ratio']:.3f}: {r[f'speedup_b{big}']:.2f}x"
        for r in checked
    )
    lines += [
        "",
        f"Target: at compression ratio <= {SPEED_TARGET_RATIO}, batch-{big} inference of the "
        f"compressed MLP is faster than the dense MLP. Result: {verdict} "
        f"({len(met)} of {len(checked)} points faster; allocation, actual ratio: speed-up "
        f"= {detail}).",
    ]
    return "\n".join(lines) + "\n"


# ============================================================================ command line

DEFAULT_RATIOS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02)
SWEEP_N = 512
"""Columns of the right operand B in the svd_rank sweeps of the command line."""
BENCH_RANKS = (4, 16, 64, 256)
"""Ranks of the svd_rank sweeps shown in BENCHMARKS.md (all ranks go to the CSV)."""


def run(
    out: str | os.PathLike,
    benchmarks: str | os.PathLike | None = "BENCHMARKS.md",
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    finetune_steps: int = 300,
    min_run_time: float = 0.3,
    threads: int = 1,
    families: Sequence[str] | Mapping[str, torch.Tensor] = FAMILIES,
    allocations: Sequence[str] = ALLOCATIONS,
    model: nn.Module | None = None,
    data=None,
    command: str = "python -m dnnkernels.lowrank",
    progress: bool = True,
) -> dict[str, list[Path]]:
    """Run the svd_rank family sweeps and the MNIST compression sweep; write all outputs.

    Writes under ``out``: ``svd_rank/errors.csv`` (error at every rank of every family),
    ``svd_rank/sweep.csv`` and ``sweep.md`` (:func:`rank_sweep` rows),
    ``svd_rank/errors_vs_rank.png``, ``svd_rank/speedup_vs_rank.png``,
    ``mnist/compression.csv`` and ``.md`` (:func:`compression_sweep` rows) and the three
    mnist plots; then the low-rank section of ``benchmarks`` (skipped if None).
    ``families``: names of :func:`matrix_family`, or a dict ``{name: matrix}`` of your own.
    Everything (SVDs, fine-tuning, timings) runs with ``threads`` torch threads (restored
    afterwards). Returns the written paths by kind (``"tables"``, ``"plots"``,
    ``"benchmarks"``).
    """
    check_int("threads", threads, low=1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(
            Path(out),
            benchmarks,
            ratios=ratios,
            finetune_steps=finetune_steps,
            min_run_time=min_run_time,
            threads=threads,
            families=families,
            allocations=allocations,
            model=model,
            data=data,
            command=command,
            progress=progress,
        )
    finally:
        torch.set_num_threads(previous)


def _run(
    out: Path,
    benchmarks,
    *,
    ratios,
    finetune_steps,
    min_run_time,
    threads,
    families,
    allocations,
    model,
    data,
    command,
    progress,
) -> dict[str, list[Path]]:
    if data is None:
        from dnnkernels.data import load_mnist

        data = load_mnist()
    model = _trained_mlp() if model is None else model.eval()
    written: dict[str, list[Path]] = {"tables": [], "plots": [], "benchmarks": []}

    curves, sweeps, error_rows, sweep_rows = {}, {}, [], []
    for name in tqdm(list(families), desc="matrix families", disable=not progress):
        if isinstance(families, Mapping):
            matrix = check_matrix(f"families[{name!r}]", families[name])
        else:
            matrix = matrix_family(name, model=model, data=data)
        ranks = list(range(1, min(matrix.shape) + 1))
        errors = error_curve(matrix, ranks).tolist()
        curves[name] = (ranks, errors)
        error_rows += [
            {"family": name, "rank": r, "rel_error": e} for r, e in zip(ranks, errors, strict=True)
        ]
        rows = rank_sweep(
            matrix, n=SWEEP_N, min_run_time=min_run_time, threads=threads, progress=progress
        )
        sweeps[name] = rows
        shape = "x".join(map(str, matrix.shape))
        sweep_rows += [{"family": name, "shape": shape, "n": SWEEP_N, **row} for row in rows]
    sub = out / "svd_rank"
    written["tables"] += [
        write_csv(error_rows, sub / "errors.csv"),
        write_csv(sweep_rows, sub / "sweep.csv"),
    ]
    (sub / "sweep.md").write_text(markdown_table(sweep_rows))
    written["tables"].append(sub / "sweep.md")
    written["plots"] += [
        plot_rank_errors(curves, sub / "errors_vs_rank.png"),
        plot_rank_speedup(sweeps, sub / "speedup_vs_rank.png"),
    ]

    rows = compression_sweep(
        model,
        list(ratios),
        data,
        finetune_steps,
        allocations=allocations,
        min_run_time=min_run_time,
        threads=threads,
        progress=progress,
    )
    sub = out / "mnist"
    written["tables"].append(write_csv(rows, sub / "compression.csv"))
    (sub / "compression.md").write_text(markdown_table(rows))
    written["tables"].append(sub / "compression.md")
    written["plots"] += plot_compression(rows, sub)

    if benchmarks is not None:
        shown = [r for r in sweep_rows if r["rank"] in BENCH_RANKS]
        section = benchmark_section(shown, rows, command, threads, finetune_steps)
        written["benchmarks"].append(write_section(benchmarks, BENCH_SECTION, section))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m dnnkernels.lowrank --out build/lowrank``."""
    parser = argparse.ArgumentParser(
        prog="python -m dnnkernels.lowrank",
        description="svd_rank family sweeps and the MNIST SVD compression sweep: "
        "plots (PNG), tables (CSV, markdown) and the low-rank section of BENCHMARKS.md.",
    )
    parser.add_argument("--out", default="build/lowrank", help="output directory")
    parser.add_argument(
        "--benchmarks",
        default="BENCHMARKS.md",
        help="BENCHMARKS.md to update between the low-rank markers ('' to skip)",
    )
    parser.add_argument(
        "--finetune-steps", type=int, default=300, help="Adam steps per compressed model"
    )
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the whole run and its timings"
    )
    parser.add_argument(
        "--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS), help="target ratios"
    )
    parser.add_argument(
        "--allocations",
        nargs="+",
        choices=ALLOCATIONS,
        default=list(ALLOCATIONS),
        help="rank allocations of compress(ratio=...)",
    )
    args = parser.parse_args(argv)
    command = "python -m dnnkernels.lowrank " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    written = run(
        args.out,
        args.benchmarks or None,
        ratios=args.ratios,
        allocations=args.allocations,
        finetune_steps=args.finetune_steps,
        min_run_time=args.min_run_time,
        threads=args.threads,
        command=command.strip(),
    )
    for kind, paths in written.items():
        for path in paths:
            print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
