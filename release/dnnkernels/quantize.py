# Generated automatically from src/dnnkernels/quantize.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""Post-training int8 quantization of a network for the integer engine.

Quantization scheme (:func:`quantize`)
--------------------------------------
Post-training, per layer, symmetric, no zero points:

- input: ``q0 = clamp(round(normalize(pixels) / s0), -128, 127)`` with
  ``s0 = max |normalize(pixels)| / 127`` over the calibration images (the pixels are
  uint8 0..255; ``normalize`` is :func:`dnnkernels.data.normalize`). Zero padding of the
  normalised image is exactly ``q0 = 0``, which is why the scheme quantizes the
  normalised input rather than the raw pixels (whose zero point, 255 * mean = 33.3, is not
  an integer);
- weights: int8 in [-127, 127], ``qw = round(w / sw)`` with ``sw = max |w| / 127`` per
  layer (one scale per weight tensor);
- bias: ``qb = round(b / (s_in * sw))``, an integer in the accumulator's scale
  ``s_in * sw`` (int32 range checked);
- hidden activations: uint8, ``q_out = clamp(round(acc * M), 0, 255)`` with the float64
  multiplier ``M = s_in * sw / s_out`` (the clamp at 0 is the ReLU) and
  ``s_out = (max activation after ReLU over the calibration images) / 255``; max-pooling
  follows on the uint8 values (it commutes with the monotone requantization). The engine
  and the reference share this one requantization function;
- output layer: the logits are the integer accumulator values (real logits = acc * s_in * sw;
  the argmax needs no scale).

So every multiplication is 8 bit x 8 bit (int8 weight times int8 input or uint8
activation): ``B_mul = 8``; ``|product| <= 128 * 255``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnnkernels.accumulator import accumulator_range, check_bits
from dnnkernels.checks import check_tensor, describe
from dnnkernels.energy import LayerOps, conv_ops, linear_ops


@dataclass
class QuantLayer:
    """One quantized convolution or fully connected layer (with its ReLU and max-pool).

    Attributes:
        name: the module name in the float model (``"conv1"``, ``"fc3"``, ...).
        kind: ``"conv"`` or ``"linear"``.
        weight: int64 tensor (O, C, kh, kw) or (O, I), values in [-127, 127].
        bias: int64 tensor (O,), in the accumulator scale ``in_scale * weight_scale``.
        stride, padding: of the convolution (zero padding; 1 and 0 for linear layers).
        in_shape: shape of one input, ``(C, H, W)`` or ``(I,)``.
        out_shape: shape of one output after ReLU and pooling.
        flatten_input: the input arrives as (N, C, H, W) and is flattened first.
        signed_input: the input may be negative (the network input, int8); hidden
            activations are uint8.
        pool: max-pool kernel size (= stride) after the ReLU, 0 for none.
        in_scale, weight_scale: real value of one integer step of the input / weight.
        out_scale: real value of one step of the uint8 output, None for the output layer
            (whose results are the accumulator values, the logits).
    """

    name: str
    kind: str
    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    padding: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    flatten_input: bool
    signed_input: bool
    pool: int
    in_scale: float
    weight_scale: float
    out_scale: float | None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def fan_in(self) -> int:
        """Products per output, ``K``."""
        return int(self.weight[0].numel())

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def acc_scale(self) -> float:
        """Real value of one accumulator step, ``in_scale * weight_scale``."""
        return self.in_scale * self.weight_scale

    @property
    def multiplier(self) -> float | None:
        """Requantization multiplier ``acc_scale / out_scale`` (None for the output layer)."""
        return None if self.out_scale is None else self.acc_scale / self.out_scale

    @property
    def conv_out_size(self) -> tuple[int, int]:
        """``(H', W')`` of the convolution (before pooling)."""
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        return (
            (h + 2 * self.padding - kh) // self.stride + 1,
            (w + 2 * self.padding - kw) // self.stride + 1,
        )

    def ops(self) -> LayerOps:
        """Operation counts per image (see :func:`conv_ops`, :func:`linear_ops`)."""
        if self.kind == "conv":
            o, c, kh, kw = self.weight.shape
            n_mul, n_add = conv_ops(o, c, (kh, kw), self.conv_out_size)
            outputs = o * math.prod(self.conv_out_size)
        else:
            o, i = self.weight.shape
            n_mul, n_add = linear_ops(i, o)
            outputs = o
        return LayerOps(self.name, self.kind, outputs, self.fan_in, n_mul, n_add)

    @property
    def sum_bound(self) -> int:
        """Upper bound of the sum of |products| of one output (bias excluded):
        ``K * max|x| * max|w|`` with ``max|x|`` = 128 (int8 input) or 255 (uint8)."""
        return self.fan_in * (128 if self.signed_input else 255) * int(self.weight.abs().max())

    @property
    def sum_dtype(self) -> torch.dtype:
        """float32 when every partial sum of products is an integer below 2**24 (then any
        summation order is exact), else float64 (exact below 2**53)."""
        return torch.float32 if self.sum_bound < 2**24 else torch.float64

    def split_weight(self) -> torch.Tensor:
        """Weight giving ``[P | N]`` (sums of the positive / negative products) in one product.

        Non-negative input: ``[w+ ; w-]`` stacked on the output axis, (2O, C, kh, kw) or
        (2O, I). Signed input, fed as ``[x+ , x-]`` on the input axis: rows
        ``[w+ , w- ; w- , w+]``, (2O, 2C, kh, kw) or (2O, 2I) (``x- * w-`` is positive).
        """
        key = ("split", self.sum_dtype)
        if key not in self._cache:
            w = self.weight.to(self.sum_dtype)
            wp, wn = w.clamp(min=0), w.clamp(max=0)
            if self.signed_input:
                split = torch.cat([torch.cat([wp, wn], dim=1), torch.cat([wn, wp], dim=1)])
            else:
                split = torch.cat([wp, wn])
            self._cache[key] = split.contiguous()
        return self._cache[key]

    def thresholds(self, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per output channel, in ``sum_dtype``: ``P > t_hi`` or ``N < t_lo`` marks a candidate.

        ``t_hi <= hi - max(b, 0)`` and ``t_lo >= lo - min(b, 0)`` (rounded toward the safe
        side), so an output with ``P <= t_hi`` and ``N >= t_lo`` cannot overflow.
        """
        key = ("thresholds", bits)
        if key not in self._cache:
            lo, hi = accumulator_range(bits)
            t_hi = [
                _round_toward(hi - max(b, 0), self.sum_dtype, down=True) for b in self.bias.tolist()
            ]
            t_lo = [
                _round_toward(lo - min(b, 0), self.sum_dtype, down=False)
                for b in self.bias.tolist()
            ]
            shape = (-1, 1, 1) if self.kind == "conv" else (-1,)
            self._cache[key] = (
                torch.tensor(t_hi, dtype=self.sum_dtype).reshape(shape),
                torch.tensor(t_lo, dtype=self.sum_dtype).reshape(shape),
            )
        return self._cache[key]


def _round_toward(value: int, dtype: torch.dtype, down: bool) -> float:
    """``value`` as a float of ``dtype``, rounded down (or up) so that the float is <= (>=)
    the exact integer."""
    kind = np.float32 if dtype == torch.float32 else np.float64
    f = kind(value)
    if down and int(f) > value:
        f = np.nextafter(f, kind(-np.inf))
    if not down and int(f) < value:
        f = np.nextafter(f, kind(np.inf))
    return float(f)


@dataclass
class QuantizedNet:
    """A network quantized by :func:`quantize` for the integer engine.

    Attributes:
        layers: the :class:`QuantLayer` in order.
        input_scale: real value of one step of the int8 input.
        input_shape: shape of one image, ``(1, 28, 28)``.
        normalize: maps uint8 images (N, H, W) to the float model's input (N, 1, H, W).
    """

    layers: list[QuantLayer]
    input_scale: float
    input_shape: tuple[int, ...]
    normalize: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def ops(self) -> list[LayerOps]:
        """Operation counts per image of every layer."""
        return [layer.ops() for layer in self.layers]

    def quantize_input(self, images: torch.Tensor) -> torch.Tensor:
        """int8 input ``clamp(round(normalize(images) / input_scale), -128, 127)``.

        Args:
            images: uint8 tensor (N, H, W) or (N, 1, H, W), pixels 0..255.

        Returns:
            int64 tensor (N, 1, H, W) with values in [-128, 127].
        """
        x = self.normalize(images).to(torch.float64)
        return torch.round(x / self.input_scale).clamp(-128, 127).to(torch.int64)

    def bits_per_layer(self, bits: int | Mapping[str, int], name: str = "bits") -> dict[str, int]:
        """Validate ``bits`` (one int for all layers, or a dict layer name -> int) -> dict."""
        names = self.layer_names
        if isinstance(bits, Mapping):
            missing = [n for n in names if n not in bits]
            unknown = [k for k in bits if k not in names]
            if missing or unknown:
                raise ValueError(
                    f"{name}: got a dict with keys {sorted(map(str, bits))}, expected exactly "
                    f"the layer names {names} (missing {missing}, unknown {unknown})"
                )
            return {n: check_bits(f"{name}[{n!r}]", bits[n]) for n in names}
        if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
            raise TypeError(
                f"{name}: got {describe(bits)}, expected an int or a dict layer name -> int"
            )
        b = check_bits(name, bits)
        return dict.fromkeys(names, b)


_SUPPORTED = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)
_SUPPORTED_TEXT = "Conv2d, Linear, ReLU, MaxPool2d, Flatten (and Dropout/Identity, inactive)"


def _compute_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's Conv2d and Linear modules; TypeError on any unsupported module."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: got {describe(model)}, expected a torch.nn.Module")
    found = []
    for name, module in model.named_modules():
        if len(list(module.children())) > 0:
            continue  # a container: its leaves are checked
        if not isinstance(module, _SUPPORTED):
            raise TypeError(
                f"model: layer {name!r} is {type(module).__name__}, which the integer engine "
                f"does not support; expected only {_SUPPORTED_TEXT}"
            )
        if isinstance(module, nn.Conv2d):
            ok = (
                module.groups == 1
                and tuple(module.dilation) == (1, 1)
                and module.padding_mode == "zeros"
                and not isinstance(module.padding, str)
                and len(set(module.stride)) == 1
                and len(set(module.padding)) == 1
            )
            if not ok:
                raise TypeError(
                    f"model: layer {name!r} is {module}, expected a Conv2d with groups=1, "
                    "dilation 1, equal integer stride and zero padding in both directions"
                )
        if isinstance(module, nn.Conv2d | nn.Linear):
            found.append((name, module))
    if not found:
        raise TypeError("model: has no Conv2d or Linear layer, expected at least one")
    return found


def _glue(out: torch.Tensor, nxt: torch.Tensor) -> tuple[int, bool] | None:
    """Which of ReLU, ReLU + max-pool(k), each optionally flattened, maps ``out`` to
    ``nxt`` exactly: ``(pool, flatten)`` or None."""
    act = F.relu(out)
    for pool in (0, 2, 3, 4):
        if pool:
            if act.ndim != 4 or min(act.shape[2:]) < pool:
                continue
            y = F.max_pool2d(act, pool)
        else:
            y = act
        for flat in (False, True):
            z = y.flatten(1) if flat else y
            if z.shape == nxt.shape and torch.equal(z, nxt):
                return pool, flat
    return None


@torch.no_grad()
def quantize(
    model: nn.Module,
    calibration_images: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> QuantizedNet:
    """Post-training int8 quantization of a feed-forward ReLU network (see the module doc).

    The structure is read from the model: its Conv2d / Linear modules, in the order the
    forward pass calls them (forward hooks on the calibration batch), and between two of
    them ReLU, optionally a max-pool with kernel = stride, optionally a flatten -- found by
    checking which of these maps one layer's output exactly onto the next layer's input.
    The last layer's output must be the model's output (the logits, no ReLU).

    Args:
        model: e.g. ``models.load_trained("lenet")`` (run in eval mode, mode restored).
        calibration_images: uint8 tensor (N, H, W) (N >= 1), e.g. training images; they set
            the input scale and the activation scales (maxima after each ReLU).
        normalize: uint8 images -> float model input (N, 1, H, W); default
            :func:`dnnkernels.data.normalize`.

    Returns:
        :class:`QuantizedNet`.

    Raises:
        TypeError: a module the engine does not support (e.g. BatchNorm2d, Sigmoid).
        ValueError: layers connected by anything but ReLU / max-pool / flatten, or a
            hidden layer without ReLU.
    """
    layers = _compute_layers(model)
    check_tensor("calibration_images", calibration_images, ndim=(3, 4), dtypes=(torch.uint8,))
    if len(calibration_images) == 0:
        raise ValueError("calibration_images: got 0 images, expected at least 1")
    if normalize is None:
        from dnnkernels.data import normalize
    x = normalize(calibration_images)
    records: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    names = {id(m): n for n, m in layers}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: records.append((names[id(mod)], inp[0], out)))
        for _, m in layers
    ]
    was_training = model.training
    model.eval()
    try:
        logits = model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    order = [r[0] for r in records]
    if sorted(order) != sorted(n for n, _ in layers):
        raise ValueError(
            f"model: its forward called the layers {order}, expected each of "
            f"{[n for n, _ in layers]} exactly once"
        )
    if not torch.equal(records[-1][2], logits):
        raise ValueError(
            f"model: its output is not the output of its last layer {order[-1]!r}; "
            "expected logits = last Linear/Conv2d layer, without activation"
        )
    first_in = records[0][1]
    if torch.equal(first_in, x):
        flatten_first = False
    elif torch.equal(first_in, x.flatten(1)):
        flatten_first = True
    else:
        raise ValueError(
            f"model: the input reaches its first layer {order[0]!r} through operations other "
            "than flatten; expected the normalised image (or its flattening)"
        )
    modules = dict(layers)
    in_scale = float(x.abs().max()) / 127 or 1.0
    input_scale = in_scale
    quantized = []
    flatten_in = flatten_first
    for i, (name, inp, out) in enumerate(records):
        module = modules[name]
        last = i == len(records) - 1
        pool, flatten_next = 0, False
        if not last:
            glue = _glue(out, records[i + 1][1])
            if glue is None:
                raise ValueError(
                    f"model: the output of {name!r} reaches {records[i + 1][0]!r} through "
                    "operations other than ReLU, max-pool and flatten (or without a ReLU); "
                    "expected ReLU, then optionally MaxPool2d(k) and flatten"
                )
            pool, flatten_next = glue
        w = module.weight.detach().to(torch.float64)
        w_scale = float(w.abs().max()) / 127 or 1.0
        qw = torch.round(w / w_scale).to(torch.int64)
        acc_scale = in_scale * w_scale
        b = module.bias
        qb = (
            torch.zeros(qw.shape[0], dtype=torch.int64)
            if b is None
            else torch.round(b.detach().to(torch.float64) / acc_scale).to(torch.int64)
        )
        if bool((qb.abs() > 2**31 - 1).any()):
            raise ValueError(f"model: the bias of {name!r} does not fit int32 once quantized")
        if last:
            out_scale = None
            out_shape = tuple(out.shape[1:])
        else:
            nxt = records[i + 1][1]
            out_scale = float(nxt.max()) / 255 or 1.0
            out_shape = tuple(F.max_pool2d(out, pool).shape[1:] if pool else out.shape[1:])
        if isinstance(module, nn.Conv2d):
            kind, stride, padding = "conv", int(module.stride[0]), int(module.padding[0])
        else:
            kind, stride, padding = "linear", 1, 0
        in_shape = tuple(inp.shape[1:])
        quantized.append(
            QuantLayer(
                name=name,
                kind=kind,
                weight=qw,
                bias=qb,
                stride=stride,
                padding=padding,
                in_shape=in_shape,
                out_shape=out_shape,
                flatten_input=flatten_in,
                signed_input=i == 0,
                pool=pool,
                in_scale=in_scale,
                weight_scale=w_scale,
                out_scale=out_scale,
            )
        )
        flatten_in = flatten_next
        in_scale = out_scale if out_scale is not None else in_scale
    return QuantizedNet(quantized, input_scale, tuple(x.shape[1:]), normalize)


def requantize(acc: torch.Tensor, multiplier: float) -> torch.Tensor:
    """uint8 activation from accumulator values: ``clamp(round(acc * multiplier), 0, 255)``.

    ``acc`` (int64, any shape) is converted to float64 and multiplied by the float64
    ``multiplier``; ``round`` is round-half-to-even; the clamp at 0 is the ReLU.

    Returns:
        float64 tensor of the shape of ``acc`` holding integers in [0, 255].
    """
    out = acc.to(torch.float64) * multiplier
    return out.round_().clamp_(0, 255)
