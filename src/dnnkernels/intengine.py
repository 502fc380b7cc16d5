"""The integer inference engine: a quantized network with b-bit accumulators.

Engine (:func:`integer_forward`)
--------------------------------
``method="loop"`` is the readable definition: Python loops over images, outputs and
products, one addition at a time (small inputs only: about 0.1-1 s per image).
``method="fast"`` gives exactly the same integers (tested), vectorized, per layer:

1. One convolution (or matrix product) with the weights split by sign gives, for every
   output, the sum ``P`` of its positive and the sum ``N`` of its negative products (for
   the signed network input, ``x+ w+ + x- w-`` and ``x+ w- + x- w+``). These are integers
   whose partial sums stay below 2**24 in magnitude (``K * 255 * 127``, checked per layer),
   so float32 computes them exactly in any summation order; the convolution runs through a
   direct algorithm (never Winograd/FFT: NNPACK is disabled and the backend checked), else
   an explicit im2col + GEMM. The exact result is ``P + N + bias``.
2. Every partial sum of an output lies in ``[N, P]`` (bias included). If ``N >= lo`` and
   ``P <= hi`` no addition can overflow: the output is the exact sum. Only the others,
   the *candidates*, can overflow. When they are many, tighter bounds (the same argument on
   consecutive blocks of the canonical order: input channels, or kernel rows when there is
   one input channel, or slices of a fully connected layer's input; one grouped
   convolution) discard most false candidates.
3. The products of the remaining candidates are gathered (from the im2col patch matrix)
   and passed with their bias, in chunks, to :func:`accumulate` (the exercise), which
   replays the additions and reports the overflows.

Then requantization, max-pooling (pooling first: it commutes with the monotone
requantization) and the next layer. Images are processed in batches of 128 and candidates
in chunks of 2**18 products, so that the working set stays in the CPU caches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dnnkernels.accumulator import METHODS, MODES, _add, accumulate, accumulator_range
from dnnkernels.checks import check_choice, check_int, check_tensor, describe
from dnnkernels.quantize import QuantizedNet, QuantLayer, _round_toward, requantize


@dataclass
class IntegerOutput:
    """Result of :func:`integer_forward` on N images.

    Attributes:
        logits: int64 tensor (N, classes), the output layer's accumulator values.
        overflows: layer name -> int64 tensor (N,), outputs of that layer whose
            accumulation overflowed (at least one addition left the range), per image.
    """

    logits: torch.Tensor
    overflows: dict[str, torch.Tensor]


def _exact_conv_ok(
    x: torch.Tensor, w: torch.Tensor, stride: Sequence[int], padding: Sequence[int], groups: int
) -> bool:
    """True when ``F.conv2d`` would run a direct (or im2col + GEMM) algorithm, which is exact
    on integers whose partial sums are representable; False for Winograd / FFT-style
    backends (NNPACK, ...) and for reduced-precision float32 settings."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    conv_precision = getattr(getattr(torch.backends.mkldnn, "conv", None), "fp32_precision", "")
    if conv_precision not in ("", "none", "ieee"):
        return False
    try:
        backend = torch._C._select_conv_backend(
            x, w, None, list(stride), list(padding), [1, 1], False, [0, 0], groups, None
        )
    except Exception:  # private API: if it changes, use the explicit GEMM
        return False
    return str(backend).rsplit(".", 1)[-1] in ("Mkldnn", "Slow2d")


def _exact_conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d(x, w, stride=stride, padding=padding, groups=groups)``, exact for
    integer-valued float tensors whose partial sums are representable.

    A direct algorithm (oneDNN's direct convolution or torch's im2col + GEMM) adds exact
    integers in some order, which is exact; Winograd or FFT algorithms (NNPACK) would not
    be. So: NNPACK disabled, float32 convolutions go to ``F.conv2d`` only when torch selects
    such a backend, and otherwise (and for float64) an explicit im2col + GEMM is used.
    """
    with torch.backends.nnpack.flags(enabled=False):
        if x.dtype == torch.float32 and _exact_conv_ok(x, w, stride, padding, groups):
            return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)
    kh, kw = w.shape[2:]
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, L)
    ho = (x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1
    wo = (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1
    cols = cols.reshape(len(x), groups, -1, cols.shape[-1])
    out = torch.einsum("ngki,gjk->ngji", cols, w.reshape(groups, w.shape[0] // groups, -1))
    return out.reshape(len(x), w.shape[0], ho, wo)


def _signed_sums(layer: QuantLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of the positive and of the negative products of every output (bias excluded).

    Args:
        x: the layer input, float (N, C, H, W) or (N, I), integer values.

    Returns:
        ``(P, N)``, each (N, O, H', W') or (N, O) in ``layer.sum_dtype``, exact.
    """
    dtype = layer.sum_dtype
    x = x.to(dtype)
    if layer.signed_input:
        x = torch.cat([x.clamp(min=0), x.clamp(max=0)], dim=1)
    w = layer.split_weight()
    o = layer.out_channels
    if layer.kind == "linear":
        pn = x @ w.T
    else:
        pn = _exact_conv(x, w, (layer.stride,) * 2, (layer.padding,) * 2)
    return pn[:, :o], pn[:, o:]


class _Patches:
    """The products of any output of one layer, on demand, in canonical order.

    Outputs are addressed by their flat index ``lin`` into the layer's output tensor
    (N, O, H', W') or (N, O). The patch matrix (im2col, float32, one row per image and
    output position, columns in ``(c, u, v)`` order) is built once per layer and batch.
    """

    def __init__(self, layer: QuantLayer, x: torch.Tensor) -> None:
        self.layer = layer
        self.out_channels = layer.out_channels
        self.weight = layer.weight.reshape(layer.out_channels, -1).to(torch.float32)
        x = x.to(torch.float32)
        if layer.kind == "conv":
            kh, kw = layer.weight.shape[2:]
            p, s = layer.padding, layer.stride
            windows = F.pad(x, (p, p, p, p)).unfold(2, kh, s).unfold(3, kw, s)  # N,C,H',W',kh,kw
            self.positions = windows.shape[2] * windows.shape[3]
            self.rows = windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, self.weight.shape[1])
        else:
            self.positions = 1
            self.rows = x

    def split(self, lin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(n, o, r)``: image, output channel and patch row of the flat output indices."""
        per_image = self.out_channels * self.positions
        n, rest = lin // per_image, lin % per_image
        o, position = rest // self.positions, rest % self.positions
        return n, o, n * self.positions + position

    def products(self, o: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """float32 (M, K): patch row ``r`` times weight row ``o``, exact (8-bit values)."""
        return self.rows.index_select(0, r).mul_(self.weight.index_select(0, o))

    def with_bias(self, products: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """int64 (M, K + 1): the products then the bias, the terms of the accumulation."""
        out = torch.empty(products.shape[0], products.shape[1] + 1, dtype=torch.int64)
        out[:, :-1] = products
        out[:, -1] = self.layer.bias[o]
        return out


#: blocks of a fully connected layer's inputs for the block bounds
_LINEAR_BLOCKS = 8


def _block_bounds(layer: QuantLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Tighter bounds of the prefix sums of every output (bias excluded), or None.

    The K products are cut into G consecutive blocks of the canonical order (the input
    channels of a convolution with several, the kernel rows of one with a single input
    channel, ``_LINEAR_BLOCKS`` slices of a linear layer's inputs). With
    the exact block sums ``S_g`` and the sums of their positive / negative products
    ``P_g`` / ``N_g``, every prefix sum inside block g lies in
    ``[S_1 + ... + S_{g-1} + N_g, S_1 + ... + S_{g-1} + P_g]``.

    Returns:
        ``(upper, lower)`` of the output's shape in ``layer.sum_dtype`` (exact), or None
        when the layer has a single block. Costs about two more passes of the layer's
        convolution or matrix product, so it is used only when many outputs are candidates.
    """
    dtype, o = layer.sum_dtype, layer.out_channels
    x = x.to(dtype)
    w = layer.weight.to(dtype)
    if layer.kind == "conv":
        c, kh, kw = w.shape[1:]
        st, p = layer.stride, layer.padding
        if c >= 2:  # blocks = input channels: a grouped convolution, one group per channel
            groups, xb, wb = c, x, w
            stride, padding = (st, st), (p, p)
        else:  # blocks = kernel rows (c, u): input rows shifted by u, kernels 1 x kw
            padded = F.pad(x, (p, p, p, p))
            ho = layer.conv_out_size[0]
            rows = [padded[:, :, u : u + st * (ho - 1) + 1 : st] for u in range(kh)]
            groups, xb = c * kh, torch.stack(rows, dim=2).flatten(1, 2)  # (N, C*kh, H', Wp)
            wb = w.reshape(o, c * kh, 1, kw)
            stride, padding = (1, st), (0, 0)
        if groups < 2:
            return None
        wp, wn = wb.clamp(min=0), wb.clamp(max=0)  # (O, G, bh, bw)
        if layer.signed_input:  # inputs of group g interleaved [x+_g, x-_g]
            xb = torch.stack([xb.clamp(min=0), xb.clamp(max=0)], dim=2).flatten(1, 2)
            top, bottom = torch.stack([wp, wn], dim=2), torch.stack([wn, wp], dim=2)
        else:
            top, bottom = wp.unsqueeze(2), wn.unsqueeze(2)
        # group g computes [P of (o, g) for every o, N of (o, g) for every o]
        blocks = torch.cat([top, bottom]).transpose(0, 1).flatten(0, 1)  # (G*2O, 1|2, bh, bw)
        out = _exact_conv(xb, blocks, stride, padding, groups)
        out = out.reshape(len(x), groups, 2, o, *layer.conv_out_size)
    else:
        k = w.shape[1]
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        size = -(-k // _LINEAR_BLOCKS)
        groups = -(-k // size)
        if groups < 2:
            return None
        pad = groups * size - k
        xb = F.pad(x, (0, pad)).reshape(len(x), groups, size)
        wpb = F.pad(wp, (0, pad)).reshape(o, groups, size)
        wnb = F.pad(wn, (0, pad)).reshape(o, groups, size)
        if layer.signed_input:
            xb = torch.cat([xb.clamp(min=0), xb.clamp(max=0)], dim=2)
            wpb, wnb = torch.cat([wpb, wnb], dim=2), torch.cat([wnb, wpb], dim=2)
        weights = torch.cat([wpb, wnb]).permute(1, 2, 0)  # (G, size, 2O)
        out = torch.bmm(xb.transpose(0, 1), weights)  # (G, N, 2O)
        out = out.transpose(0, 1).reshape(len(x), groups, 2, o)
    pos, neg = out[:, :, 0], out[:, :, 1]
    total = pos + neg
    before = total.cumsum(dim=1) - total  # exact sum of the earlier blocks
    return (before + pos).amax(dim=1), (before + neg).amin(dim=1)


#: products gathered per chunk of candidate outputs (int64 elements), bounds memory
_CHUNK_ELEMENTS = 2**18


def _layer_fast(
    layer: QuantLayer,
    x: torch.Tensor,
    bits: int,
    mode: str,
    observer: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer, vectorized.

    Args:
        x: float (N, C, H, W) or (N, I) holding the integer input.

    Returns:
        the next layer's input (float32 holding uint8 values, pooled) -- or, for the output
        layer, the logits (int64 (N, O)) -- and the overflowed outputs per image (int64 (N,)).
    """
    n = x.shape[0]
    pos, neg = _signed_sums(layer, x)
    if observer is not None:
        observer(layer, x, pos, neg)
    t_hi, t_lo = layer.thresholds(bits)
    mask = pos > t_hi
    mask |= neg < t_lo
    shape = (1, -1, 1, 1) if layer.kind == "conv" else (1, -1)
    bias = layer.bias.reshape(shape)
    pos += neg  # exact: integers below 2**24 (float32) or 2**53 (float64)
    if layer.out_scale is None:
        acc = pos.to(torch.int64) + bias
    else:
        acc = pos.to(torch.float64).add_(bias)  # exact integers below 2**53
    lo, hi = accumulator_range(bits)
    if int(mask.sum()) * layer.fan_in > 8 * mask.numel():  # many candidates: refine them
        bounds = _block_bounds(layer, x)
        if bounds is not None:  # keep candidates whose block bounds or final value may leave
            upper, lower = bounds
            s_hi = _round_toward(hi, layer.sum_dtype, down=True)
            s_lo = _round_toward(lo, layer.sum_dtype, down=False)
            mask &= (upper > s_hi) | (lower < s_lo) | (acc > hi) | (acc < lo)
    candidates = mask.reshape(-1).nonzero().squeeze(1)  # only these outputs can overflow
    overflows = torch.zeros(n, dtype=torch.int64)
    if len(candidates):
        patches = _Patches(layer, x)
        flat = acc.reshape(-1)
        chunk = max(1, _CHUNK_ELEMENTS // (layer.fan_in + 1))
        for start in range(0, len(candidates), chunk):
            lin = candidates[start : start + chunk]
            img, o, r = patches.split(lin)
            terms = patches.with_bias(patches.products(o, r), o)
            sums, over = accumulate(terms, bits, mode)
            flat[lin] = sums.to(acc.dtype)
            overflows += torch.bincount(img[over], minlength=n)
    if layer.out_scale is None:
        return acc, overflows
    if layer.pool:  # max-pool commutes with the monotone requantization: pool first
        acc = F.max_pool2d(acc, layer.pool)
    return requantize(acc, layer.multiplier).to(torch.float32), overflows


def _forward_fast(
    qnet: QuantizedNet,
    q_input: torch.Tensor,
    bits: Mapping[str, int],
    mode: str,
    observer: Callable | None = None,
) -> IntegerOutput:
    x = q_input.to(torch.float32)
    overflows = {}
    for layer in qnet.layers:
        if layer.flatten_input:
            x = x.flatten(1)
        x, overflows[layer.name] = _layer_fast(layer, x, bits[layer.name], mode, observer)
    return IntegerOutput(x, overflows)


def _forward_loop(
    qnet: QuantizedNet,
    q_input: torch.Tensor,
    bits: Mapping[str, int],
    mode: str,
    record: dict[str, list] | None = None,
) -> IntegerOutput:
    """The readable definition: Python loops, one accumulator addition at a time.

    ``record`` (optional): layer name -> [min, max] of every value the accumulator takes
    after an addition (all partial sums), updated in place.
    """
    logits, overflows = [], {layer.name: [] for layer in qnet.layers}
    for image in q_input.tolist():  # image: nested lists [C][H][W] of ints
        act = image
        for layer in qnet.layers:
            lo, hi = accumulator_range(bits[layer.name])
            seen = None if record is None else record.setdefault(layer.name, [math.inf, -math.inf])
            weight, bias = layer.weight.tolist(), layer.bias.tolist()
            if layer.flatten_input:
                act = [v for channel in act for row in channel for v in row]
            if layer.kind == "conv":
                out, count = _conv_loop(act, weight, bias, layer, lo, hi, mode, seen)
            else:
                out, count = _linear_loop(act, weight, bias, lo, hi, mode, seen)
            overflows[layer.name].append(count)
            if layer.out_scale is None:
                act = out
                break
            act = _requantize_loop(out, layer.multiplier)
            if layer.pool:
                act = _max_pool_loop(act, layer.pool)
        logits.append(act)
    return IntegerOutput(
        torch.tensor(logits, dtype=torch.int64),
        {k: torch.tensor(v, dtype=torch.int64) for k, v in overflows.items()},
    )


def _conv_loop(act, weight, bias, layer, lo, hi, mode, seen):
    channels, height, width = len(act), len(act[0]), len(act[0][0])
    kh, kw = len(weight[0][0]), len(weight[0][0][0])
    s, p = layer.stride, layer.padding
    ho, wo = layer.conv_out_size
    out, count = [], 0
    for o in range(len(weight)):
        plane = []
        for i in range(ho):
            row = []
            for j in range(wo):
                acc, overflowed = 0, False
                for c in range(channels):
                    for u in range(kh):
                        for v in range(kw):
                            y, z = i * s + u - p, j * s + v - p
                            inside = 0 <= y < height and 0 <= z < width
                            a = act[c][y][z] if inside else 0  # zero padding
                            product = a * weight[o][c][u][v]
                            acc, flag = _add_seen(acc, product, lo, hi, mode, seen)
                            overflowed |= flag
                acc, flag = _add_seen(acc, bias[o], lo, hi, mode, seen)
                overflowed |= flag
                count += overflowed
                row.append(acc)
            plane.append(row)
        out.append(plane)
    return out, count


def _add_seen(acc: int, p: int, lo: int, hi: int, mode: str, seen: list | None):
    """One addition (:func:`dnnkernels.accumulator._add`); the new partial sum widens the
    range ``seen = [min, max]`` when one is kept."""
    acc, flag = _add(acc, p, lo, hi, mode)
    if seen is not None:
        seen[0], seen[1] = min(seen[0], acc), max(seen[1], acc)
    return acc, flag


def _linear_loop(act, weight, bias, lo, hi, mode, seen):
    out, count = [], 0
    for o in range(len(weight)):
        acc, overflowed = 0, False
        for k in range(len(act)):
            acc, flag = _add_seen(acc, act[k] * weight[o][k], lo, hi, mode, seen)
            overflowed |= flag
        acc, flag = _add_seen(acc, bias[o], lo, hi, mode, seen)
        overflowed |= flag
        count += overflowed
        out.append(acc)
    return out, count


def _requantize_loop(values, multiplier):
    if isinstance(values, list):
        return [_requantize_loop(v, multiplier) for v in values]
    # same arithmetic as requantize(): float64 product, round half to even, clamp
    return min(max(round(float(values) * multiplier), 0), 255)


def _max_pool_loop(act, k):
    pooled = []
    for plane in act:
        rows = []
        for i in range(len(plane) // k):
            row = []
            for j in range(len(plane[0]) // k):
                row.append(max(plane[i * k + u][j * k + v] for u in range(k) for v in range(k)))
            rows.append(row)
        pooled.append(rows)
    return pooled


def _check_qnet(qnet: object) -> QuantizedNet:
    if not isinstance(qnet, QuantizedNet):
        raise TypeError(
            f"qnet: got {describe(qnet)}, expected a QuantizedNet "
            "(from dnnkernels.quantize.quantize)"
        )
    return qnet


def _check_images(qnet: QuantizedNet, images: object, name: str = "images") -> torch.Tensor:
    check_tensor(name, images, ndim=(3, 4), dtypes=(torch.uint8,))
    shape = tuple(images.shape[-2:])
    if shape != tuple(qnet.input_shape[-2:]) or (images.ndim == 4 and images.shape[1] != 1):
        raise ValueError(
            f"{name}: got {describe(images)}, expected (N, {qnet.input_shape[-2]}, "
            f"{qnet.input_shape[-1]}) or (N, 1, {qnet.input_shape[-2]}, {qnet.input_shape[-1]})"
        )
    return images


def integer_forward(
    qnet: QuantizedNet,
    images: torch.Tensor,
    bits: int | Mapping[str, int] = 32,
    mode: str = "saturate",
    method: str = "fast",
) -> IntegerOutput:
    """Integer inference with a ``bits``-wide accumulator in every layer.

    The input is quantized by ``qnet.quantize_input``; each layer accumulates its products
    and bias in the canonical order (module doc) in ``bits[layer]`` bits with ``mode``,
    requantizes to uint8 (ReLU) and max-pools; the last layer's accumulators are the logits.

    Args:
        qnet: from :func:`quantize`.
        images: uint8 tensor (N, 28, 28) or (N, 1, 28, 28).
        bits: one int in [2, 64] for every layer, or a dict layer name -> int.
        mode: ``"saturate"`` or ``"wrap"``.
        method: ``"fast"`` (vectorized, default) or ``"loop"`` (naive, ~1 s per image).

    Returns:
        :class:`IntegerOutput` (logits int64 (N, classes), overflow counts per layer).
    """
    qnet = _check_qnet(qnet)
    images = _check_images(qnet, images)
    per_layer = qnet.bits_per_layer(bits)
    check_choice("mode", mode, MODES)
    check_choice("method", method, METHODS)
    q_input = qnet.quantize_input(images)
    if method == "loop":
        return _forward_loop(qnet, q_input, per_layer, mode)
    return _forward_fast(qnet, q_input, per_layer, mode)


@torch.no_grad()
def reference_logits(qnet: QuantizedNet, images: torch.Tensor) -> torch.Tensor:
    """Direct integer reference (no accumulator limit): ``F.conv2d`` / ``F.linear`` in
    float64 on the integer values (exact: every sum is an integer below 2**53), the same
    requantization (:func:`requantize`) and ``F.max_pool2d``.

    Returns:
        int64 tensor (N, classes), equal to ``integer_forward(..., bits=b).logits`` whenever
        no accumulation overflows b bits.
    """
    qnet = _check_qnet(qnet)
    x = qnet.quantize_input(_check_images(qnet, images)).to(torch.float64)
    for layer in qnet.layers:
        w = layer.weight.to(torch.float64)
        b = layer.bias.to(torch.float64)
        if layer.flatten_input:
            x = x.flatten(1)
        if layer.kind == "conv":
            acc = F.conv2d(x, w, b, stride=layer.stride, padding=layer.padding)
        else:
            acc = F.linear(x, w, b)
        acc = acc.to(torch.int64)
        if layer.out_scale is None:
            return acc
        x = requantize(acc, layer.multiplier)
        if layer.pool:
            x = F.max_pool2d(x, layer.pool)
    return x.to(torch.int64)


@dataclass
class Evaluation:
    """Accuracy and overflow statistics of the integer engine on a labelled data set.

    Attributes:
        accuracy: percent of images whose largest logit is the label (ties: first index).
        images: number of images.
        bits: layer name -> accumulator width. mode: the overflow mode.
        overflow_outputs: layer name -> accumulations that overflowed (all images).
        overflow_images: layer name -> images with at least one overflow in that layer.
        outputs: layer name -> accumulations performed (all images).
        seconds: wall-clock time of the run.
    """

    accuracy: float
    images: int
    bits: dict[str, int]
    mode: str
    overflow_outputs: dict[str, int]
    overflow_images: dict[str, int]
    outputs: dict[str, int]
    seconds: float


def evaluate(
    qnet: QuantizedNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    bits: int | Mapping[str, int] = 32,
    mode: str = "saturate",
    method: str = "fast",
    batch_size: int = 128,
    progress: bool = False,
) -> Evaluation:
    """Accuracy and overflow counts of :func:`integer_forward` over a data set, in batches.

    Args:
        qnet: from :func:`quantize`.
        images: uint8 tensor (N, 28, 28); labels: int64 tensor (N,).
        bits, mode, method: as in :func:`integer_forward`.
        batch_size: images per batch (128: the working set stays in the CPU caches).
        progress: show a tqdm bar.

    Returns:
        :class:`Evaluation`.
    """
    qnet = _check_qnet(qnet)
    images = _check_images(qnet, images)
    check_tensor("labels", labels, ndim=1, dtypes=(torch.int64,))
    if len(labels) != len(images):
        raise ValueError(f"labels: got {len(labels)} labels, expected {len(images)} (one/image)")
    per_layer = qnet.bits_per_layer(bits)
    check_choice("mode", mode, MODES)
    check_choice("method", method, METHODS)
    check_int("batch_size", batch_size, low=1)
    start = time.perf_counter()
    correct = 0
    ovf_out = dict.fromkeys(qnet.layer_names, 0)
    ovf_img = dict.fromkeys(qnet.layer_names, 0)
    batches = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"{mode} {_bits_label(per_layer)}", unit="batch")
    for s in batches:
        out = integer_forward(qnet, images[s : s + batch_size], per_layer, mode, method)
        correct += int((out.logits.argmax(dim=1) == labels[s : s + batch_size]).sum())
        for name, counts in out.overflows.items():
            ovf_out[name] += int(counts.sum())
            ovf_img[name] += int((counts > 0).sum())
    outputs = {op.name: op.n_outputs * len(images) for op in qnet.ops()}
    return Evaluation(
        accuracy=100.0 * correct / max(len(images), 1),
        images=len(images),
        bits=per_layer,
        mode=mode,
        overflow_outputs=ovf_out,
        overflow_images=ovf_img,
        outputs=outputs,
        seconds=time.perf_counter() - start,
    )


def _bits_label(bits: Mapping[str, int]) -> str:
    values = set(bits.values())
    return f"{values.pop()} bits" if len(values) == 1 else "/".join(map(str, bits.values()))
