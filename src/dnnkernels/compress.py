"""SVD-compressed layers and networks: the mnist assignment.

A linear layer whose trained weight ``W`` (out, in) is replaced by its rank-k truncated SVD
factors multiplies by ``U_k diag(s_k)`` and ``V_kᵀ``: ``k * (in + out)`` weights instead
of ``in * out`` (:class:`SVDLinear`). Whole networks are compressed to a parameter budget
(:func:`rank_for_ratio`, :func:`compress`, :func:`compression_ratio`), and the accuracy and
speed of the result measured (:func:`finetune`, :func:`compression_sweep`). The matrix
algebra is that of :mod:`dnnkernels.lowrank`.

The exercises (``SVDLinear``, ``rank_for_ratio``) get already-validated arguments; the
library functions around them (``svd_linear``, ``compress`` ...) check their input first
with the ``check_*`` functions below.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dnnkernels.checks import check_choice, check_int, check_tensor, describe
from dnnkernels.lowrank import check_rank, low_rank_errors
from dnnkernels.matmul import truncated_svd
from dnnkernels.timing import steady_clock, time_medians


class SVDLinear(nn.Module):
    """A linear layer ``y = x Wᵀ + b`` multiplying by the truncated SVD factors of W.

    Built from a trained ``nn.Linear`` with weight ``W`` (out_features, in_features) and
    a rank k: with the truncated SVD ``W ≈ U_k diag(S_k) V_kᵀ`` (``U_k`` (out, k),
    ``S_k`` (k,), ``V_k`` (in, k)), the layer computes::

        y = (x @ V_k) @ (diag(S_k) U_kᵀ) + b

    two thin products (``2·B·k·(in + out)`` FLOPs for a batch of B rows instead of
    ``2·B·in·out``), never the rebuilt weight ``U_k diag(S_k) V_kᵀ``.

    ``S_k`` is folded into the second (output-side) factor, once, when the layer is
    built: the forward pass is then two matrix products and nothing else (no per-batch
    scaling of the intermediate (B, k) activations), and the first factor ``V_k`` keeps
    orthonormal columns, so the intermediate ``x @ V_k`` is the projection of x on the
    top-k right singular vectors, on the same scale as x (``||x V_k|| <= ||x||``).

    The SVD is computed with ``dnnkernels.matmul.truncated_svd`` in the dtype of the
    weight; the factors are stored as ``nn.Parameter``s (so that the layer can be
    fine-tuned) and the bias is copied unchanged.

    Args:
        linear: the trained ``nn.Linear`` (in_features -> out_features), with or without
            bias.
        rank: int k in [1, min(in_features, out_features)] (checked by callers, see
            :func:`svd_linear`).

    Attributes:
        in_features, out_features, rank: ints.
        V: ``nn.Parameter`` of shape (in_features, rank): ``V_k``.
        SUt: ``nn.Parameter`` of shape (rank, out_features): ``diag(S_k) U_kᵀ``.
        bias: ``nn.Parameter`` of shape (out_features,), or None when ``linear`` has
            none.

    These are the only parameters (no separate ``S``):
    ``rank·(in_features + out_features) + out_features`` with a bias,
    ``rank·(in_features + out_features)`` without. This is the contract the notebook
    states and both its visible checks and the hidden checks enforce.
    """

    def __init__(self, linear: nn.Linear, rank: int) -> None:
        ### BEGIN SOLUTION
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.rank = rank
        U, S, Vh = truncated_svd(linear.weight.detach(), rank)
        self.V = torch.nn.Parameter(Vh.T.contiguous())
        self.SUt = torch.nn.Parameter((S[:, None] * U.T).contiguous())
        if linear.bias is None:
            self.bias = None
        else:
            self.bias = torch.nn.Parameter(linear.bias.detach().clone())
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Args:
            x: float tensor of shape (..., in_features), the dtype of the factors.

        Returns:
            tensor of shape (..., out_features): ``(x @ V) @ SUt + bias``.
        """
        ### BEGIN SOLUTION
        y = (x @ self.V) @ self.SUt
        if self.bias is not None:
            y = y + self.bias
        return y
        ### END SOLUTION


def rank_for_ratio(in_features: int, out_features: int, ratio: float) -> int:
    """The largest rank whose factored layer keeps at most ``ratio`` of the parameters.

    A dense ``nn.Linear(in, out)`` with bias has ``in·out + out`` parameters; its rank-r
    :class:`SVDLinear` has ``r·(in + out) + out`` (the factors (in, r) and (r, out), and
    the bias unchanged). The answer is the largest int r >= 1 with::

        r·(in + out) + out <= ratio · (in·out + out)

    i.e. ``r = floor((ratio·(in·out + out) - out) / (in + out))``. The comparison is
    exact: ``ratio`` counts at its exact binary value (``ratio.as_integer_ratio()``
    gives it as a fraction p / q of two ints), so a target that lands exactly on a
    parameter count is met, and no float rounding moves the answer across a boundary.

    For ratio <= 1 the answer is below min(in, out): a factored layer only saves
    parameters when ``r < in·out / (in + out)``.

    Args:
        in_features, out_features: positive ints.
        ratio: float in (0, 1], at least the ratio of the rank-1 layer,
            ``(in + 2·out) / (in·out + out)`` (see :func:`min_ratio`). Below that no
            rank meets the target; callers (:func:`check_layer_ratio`, :func:`compress`)
            raise ``ValueError`` before calling.

    Returns:
        int r >= 1.

    Example:
        in = 784, out = 512, ratio = 0.25: floor((0.25·401,920 - 512) / 1296) = 77
        (77·1296 + 512 = 100,304 <= 100,480 parameters).
    """
    ### BEGIN SOLUTION
    p, q = float(ratio).as_integer_ratio()
    original = in_features * out_features + out_features
    return (p * original - q * out_features) // (q * (in_features + out_features))
    ### END SOLUTION


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
                clock=steady_clock(threads),
            )
            dense, factored = times["dense"], times["factored"]
            row[f"time_dense_b{b}_s"] = dense
            row[f"time_factored_b{b}_s"] = factored
            row[f"speedup_b{b}"] = dense / factored
        rows.append(row)
    return rows
