# Generated automatically from src/dnnkernels/partial_sums.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Partial-sum statistics of the quantized network: ranges and histograms per layer.

Statistics and the study
------------------------
:func:`partial_sum_stats` runs the exact network over a data set and records per layer the
exact range of *all* partial sums in canonical order (same bound argument: only outputs
whose bounds exceed the extremes seen so far are replayed), the range and a histogram of
the *final* accumulator values (bias included, before requantization) and the smallest
width covering the range. :func:`run_study` compares approaches A (one width from the
observed ranges), B (smallest uniform width within 1 percentage point of the 32-bit
accuracy) and C (per-layer widths by a greedy search), each with accuracy and energy, and
writes the plots and the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dnnkernels.accumulator import MAX_BITS, min_bits
from dnnkernels.checks import check_int
from dnnkernels.intengine import (
    _CHUNK_ELEMENTS,
    _block_bounds,
    _check_images,
    _check_qnet,
    _forward_fast,
    _Patches,
)
from dnnkernels.quantize import QuantizedNet, QuantLayer


class _IntHistogram:
    """Counts of integer values, exact (bins of width 1) while the span allows, then in
    power-of-two bins (``value >> shift``) so memory stays below ``2**max_log2`` counters."""

    def __init__(self, max_log2: int = 22) -> None:
        self.shift = 0
        self.offset = 0  # bin index of counts[0]
        self.counts = torch.zeros(0, dtype=torch.int64)
        self.max_len = 2**max_log2

    def add(self, values: torch.Tensor) -> None:
        values = values.reshape(-1)
        if values.numel() == 0:
            return
        lo, hi = int(values.min()), int(values.max())
        first = min(lo >> self.shift, self.offset) if len(self.counts) else lo >> self.shift
        last = max(hi >> self.shift, self.offset + len(self.counts) - 1)
        while last - first + 1 > self.max_len:  # coarsen by a factor 2
            self._coarsen()
            first, last = first >> 1, last >> 1
        self._cover(first, last)
        idx = (values >> self.shift) - self.offset
        self.counts += torch.bincount(idx, minlength=len(self.counts))

    def _cover(self, first: int, last: int) -> None:
        if not len(self.counts):
            self.offset, self.counts = first, torch.zeros(last - first + 1, dtype=torch.int64)
            return
        before = self.offset - first
        after = last - (self.offset + len(self.counts) - 1)
        if before > 0 or after > 0:
            self.counts = F.pad(self.counts, (max(before, 0), max(after, 0)))
            self.offset = min(self.offset, first)

    def _coarsen(self) -> None:
        if self.offset % 2:  # align so that pairs (2j, 2j+1) merge
            self.counts = F.pad(self.counts, (1, 0))
            self.offset -= 1
        if len(self.counts) % 2:
            self.counts = F.pad(self.counts, (0, 1))
        self.counts = self.counts.reshape(-1, 2).sum(dim=1)
        self.offset //= 2
        self.shift += 1

    def edges_and_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin edges (len + 1) in value units and counts; bin j holds
        ``[edges[j], edges[j+1])``."""
        width = 2**self.shift
        edges = (self.offset + np.arange(len(self.counts) + 1)) * width
        return edges.astype(np.float64), self.counts.numpy().copy()


@dataclass
class PartialSumStats:
    """Accumulator values of one layer over a data set (exact arithmetic, no overflow).

    Attributes:
        name: layer name.
        prefix_min, prefix_max: smallest / largest partial sum over all accumulations and
            all additions in canonical order (every prefix sum, bias included).
        final_min, final_max: range of the final accumulator values (the layer's outputs
            before requantization, bias included).
        min_bits: ``min_bits(prefix_min, prefix_max)``, the smallest width that never
            overflows on this data set.
        final_bits: ``min_bits(final_min, final_max)``.
        accumulations: number of accumulations (outputs) seen.
        hist_edges, hist_counts: histogram of the final accumulator values (exact integer
            bins while the span is below 2**22, then power-of-two bins): float64 edges
            (n + 1,) and int64 counts (n,), often 10**5 bins and more. Too many to draw
            one bar each; plot :meth:`histogram` instead.
    """

    name: str
    prefix_min: int
    prefix_max: int
    final_min: int
    final_max: int
    min_bits: int
    final_bits: int
    accumulations: int
    hist_edges: np.ndarray = field(repr=False)
    hist_counts: np.ndarray = field(repr=False)

    def histogram(self, bins: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """The histogram of the final values at a plottable resolution: ``<= bins`` bins.

        Every ``k = ceil(n / bins)`` consecutive bins of ``(hist_edges, hist_counts)`` (``n``
        bins) merge into one, so the counts stay exact (no value changes bin) and sum to
        ``accumulations``. Plot with ``ax.stairs(counts, edges, fill=True)``.

        Args:
            bins: the largest number of bins wanted, int >= 1.

        Returns:
            ``(edges, counts)``: float64 (m + 1,) and int64 (m,) with ``m <= bins``; bin
            ``j`` holds the values in ``[edges[j], edges[j+1])``.
        """
        bins = check_int("bins", bins, low=1)
        counts = np.asarray(self.hist_counts, dtype=np.int64)
        edges = np.asarray(self.hist_edges, dtype=np.float64)
        k = -(-len(counts) // bins)  # ceil
        if k <= 1:
            return edges.copy(), counts.copy()
        m = -(-len(counts) // k)
        padded = np.zeros(m * k, dtype=np.int64)
        padded[: len(counts)] = counts
        width = edges[1] - edges[0]
        return edges[0] + width * k * np.arange(m + 1), padded.reshape(m, k).sum(axis=1)


class _RangeObserver:
    """Collects, per layer, the exact range of all prefix sums and the final values.

    A prefix sum of an output lies in ``[N, P]`` (sums of its negative / positive terms,
    bias included), so only outputs with ``P`` above the largest value seen so far (or
    ``N`` below the smallest) can hold a new extreme: only their products are gathered and
    cumsummed.
    """

    def __init__(self) -> None:
        self.lo: dict[str, int] = {}
        self.hi: dict[str, int] = {}
        self.final_lo: dict[str, int] = {}
        self.final_hi: dict[str, int] = {}
        self.count: dict[str, int] = {}
        self.hist: dict[str, _IntHistogram] = {}
        self.gathered = 0

    def __call__(self, layer: QuantLayer, x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
        name = layer.name
        shape = (1, -1, 1, 1) if layer.kind == "conv" else (1, -1)
        bias = layer.bias.reshape(shape)
        acc = (pos + neg).to(torch.int64) + bias
        f_lo, f_hi = int(acc.min()), int(acc.max())
        self.final_lo[name] = min(self.final_lo.get(name, f_lo), f_lo)
        self.final_hi[name] = max(self.final_hi.get(name, f_hi), f_hi)
        self.count[name] = self.count.get(name, 0) + acc.numel()
        self.hist.setdefault(name, _IntHistogram()).add(acc)
        lo = min(self.lo.get(name, f_lo), f_lo)
        hi = max(self.hi.get(name, f_hi), f_hi)
        p_all = pos.to(torch.int64) + bias.clamp(min=0)
        n_all = neg.to(torch.int64) + bias.clamp(max=0)
        mask = (p_all > hi) | (n_all < lo)
        if int(mask.sum()) * layer.fan_in > 8 * mask.numel():
            bounds = _block_bounds(layer, x)
            if bounds is not None:  # the final values are already in [lo, hi]
                mask &= (bounds[0].to(torch.int64) > hi) | (bounds[1].to(torch.int64) < lo)
        candidates = mask.reshape(-1).nonzero().squeeze(1)
        chunk = max(1, _CHUNK_ELEMENTS // (layer.fan_in + 1))
        patches = _Patches(layer, x) if len(candidates) else None
        for start in range(0, len(candidates), chunk):
            _, o, r = patches.split(candidates[start : start + chunk])
            terms = patches.with_bias(patches.products(o, r), o)
            prefix = torch.cumsum(terms, dim=1)
            lo, hi = min(lo, int(prefix.min())), max(hi, int(prefix.max()))
            self.gathered += len(o)
        self.lo[name], self.hi[name] = lo, hi


@torch.no_grad()
def partial_sum_stats(
    qnet: QuantizedNet,
    images: torch.Tensor,
    batch_size: int = 256,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, PartialSumStats]:
    """Per layer: exact range of all partial sums, range and histogram of final sums.

    Runs the exact network (64-bit accumulators: with 8-bit operands nothing overflows),
    so every layer sees the activations of the unconstrained integer network.

    Args:
        qnet: from :func:`quantize`.
        images: uint8 tensor (N, 28, 28).
        batch_size: images per batch.
        limit: use only the first ``limit`` images (None: all).
        progress: show a tqdm bar.

    Returns:
        dict layer name -> :class:`PartialSumStats`, in layer order.
    """
    qnet = _check_qnet(qnet)
    images = _check_images(qnet, images)
    check_int("batch_size", batch_size, low=1)
    if limit is not None:
        check_int("limit", limit, low=1)
        images = images[:limit]
    observer = _RangeObserver()
    exact = dict.fromkeys(qnet.layer_names, MAX_BITS)
    batches = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="partial sums", unit="batch")
    for s in batches:
        q_input = qnet.quantize_input(images[s : s + batch_size])
        _forward_fast(qnet, q_input, exact, "saturate", observer)
    stats = {}
    for name in qnet.layer_names:
        edges, counts = observer.hist[name].edges_and_counts()
        stats[name] = PartialSumStats(
            name=name,
            prefix_min=observer.lo[name],
            prefix_max=observer.hi[name],
            final_min=observer.final_lo[name],
            final_max=observer.final_hi[name],
            min_bits=min_bits(observer.lo[name], observer.hi[name]),
            final_bits=min_bits(observer.final_lo[name], observer.final_hi[name]),
            accumulations=observer.count[name],
            hist_edges=edges,
            hist_counts=counts,
        )
    return stats
