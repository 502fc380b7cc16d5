"""Hypothesis strategies shared by the test files.

Tensors are drawn from a seed (``torch.Generator``) rather than entry by entry: hypothesis
chooses the shapes, kernel sizes, strides, paddings and the seed; the values are Gaussian.
Sizes are small on purpose: the naive loop references run on every example.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@dataclass(frozen=True)
class ConvCase:
    """Shapes and hyper-parameters of one batched conv2d: x (n, c, h, w), k (o, c, kh, kw)."""

    n: int
    c: int
    o: int
    h: int
    w: int
    kh: int
    kw: int
    stride: int = 1
    padding: int = 0
    bias: bool = True

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        ho = (self.h + 2 * self.padding - self.kh) // self.stride + 1
        wo = (self.w + 2 * self.padding - self.kw) // self.stride + 1
        return (self.n, self.o, ho, wo)

    def tensors(
        self, seed: int, dtype: torch.dtype = torch.float64
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(x, k, b)`` with standard normal entries (``b`` None when ``bias`` is False)."""
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.n, self.c, self.h, self.w, generator=g, dtype=torch.float64)
        k = torch.randn(self.o, self.c, self.kh, self.kw, generator=g, dtype=torch.float64)
        b = torch.randn(self.o, generator=g, dtype=torch.float64) if self.bias else None
        return x.to(dtype), k.to(dtype), None if b is None else b.to(dtype)


@st.composite
def conv_cases(
    draw,
    max_batch: int = 2,
    max_channels: int = 3,
    max_out: int = 3,
    max_size: int = 9,
    kernel_sizes: tuple[int, int] = (1, 5),
    max_stride: int = 3,
    max_padding: int = 2,
) -> ConvCase:
    """A conv2d case whose kernel fits the padded input (``kh <= h + 2p``, ``kw <= w + 2p``).

    ``kernel_sizes`` is the inclusive range of ``kh`` and ``kw`` (``(3, 3)`` for Winograd);
    ``max_stride=1`` fixes the stride to 1, ``max_padding=0`` the padding to 0.
    """
    kh = draw(st.integers(*kernel_sizes))
    kw = draw(st.integers(*kernel_sizes))
    padding = draw(st.integers(0, max_padding))
    stride = draw(st.integers(1, max_stride))
    h = draw(st.integers(max(1, kh - 2 * padding), max(max_size, kh)))
    w = draw(st.integers(max(1, kw - 2 * padding), max(max_size, kw)))
    return ConvCase(
        n=draw(st.integers(1, max_batch)),
        c=draw(st.integers(1, max_channels)),
        o=draw(st.integers(1, max_out)),
        h=h,
        w=w,
        kh=kh,
        kw=kw,
        stride=stride,
        padding=padding,
        bias=draw(st.booleans()),
    )


@st.composite
def matrix_pairs(
    draw,
    max_dim: int = 8,
    zeros: bool = True,
    spread: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A (M, K), B (K, N))`` with ``1 <= M, K, N <= max_dim`` and Gaussian entries.

    With ``zeros`` some examples set about a third of the entries to exact zeros. With
    ``spread > 0`` each entry is scaled by ``10**u``, ``u`` uniform in ``[-spread, spread]``,
    so that magnitudes (and base-2 exponents) of both signs occur.
    """
    m, k, n = (draw(st.integers(1, max_dim)) for _ in range(3))
    seed = draw(seeds)
    zero_fraction = draw(st.sampled_from((0.0, 0.35))) if zeros else 0.0
    g = torch.Generator().manual_seed(seed)
    pair = []
    for shape in ((m, k), (k, n)):
        t = torch.randn(shape, generator=g, dtype=torch.float64)
        if spread > 0:
            u = (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1) * spread
            t = t * 10.0**u
        if zero_fraction:
            t = torch.where(torch.rand(shape, generator=g) < zero_fraction, 0.0, t)
        pair.append(t.to(dtype))
    return pair[0], pair[1]
