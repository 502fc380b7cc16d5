"""dnnkernels.quantize: a two-layer network quantized and run by hand.

The fast engine, the loop engine and the reference share one QuantLayer, so comparing them
cannot catch a change of the quantization arithmetic (``round`` -> ``floor``, ``/ 127`` ->
``/ 128``, ``/ 255`` -> ``/ 256``). Here every scale, integer weight, bias and output is
worked out by hand from the scheme in the module docstring.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnkernels.intengine import integer_forward, reference_logits
from dnnkernels.quantize import quantize

# two calibration images of 1 x 2 pixels; the normalisation below maps pixels p to p - 100
IMAGES = torch.tensor([[[227, 0]], [[100, 150]]], dtype=torch.uint8)


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32).reshape(len(images), 1, *images.shape[-2:]) - 100


@pytest.fixture(scope="module")
def qnet():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.5, -1.27], [1.0, 0.337]]))
        model[1].bias.copy_(torch.tensor([0.5, -0.3]))
        model[3].weight.copy_(torch.tensor([[0.8, -0.41], [-0.21, 0.6]]))
        model[3].bias.copy_(torch.tensor([0.1, 0.0]))
    return quantize(model, IMAGES, normalize=_normalize)


def test_input_scale_and_int8_input_by_hand(qnet):
    # x = [[127, -100], [0, 50]]: s0 = max|x| / 127 = 1, q0 = round(x / s0)
    assert qnet.input_scale == pytest.approx(1.0, rel=1e-12), "s0 = 127 / 127"
    got = qnet.quantize_input(IMAGES).flatten(1).tolist()
    assert got == [[127, -100], [0, 50]], f"q0 {got}, expected round(x / 1)"


def test_weights_biases_and_activation_scale_by_hand(qnet):
    fc1, fc2 = qnet.layers
    # fc1: sw = 1.27 / 127 = 0.01; 0.337 / 0.01 = 33.7 rounds to 34 (floor would give 33)
    assert fc1.weight_scale == pytest.approx(0.01, rel=1e-6), "sw = max|w| / 127"
    assert fc1.weight.tolist() == [[50, -127], [100, 34]], f"qw {fc1.weight.tolist()}"
    # qb = round(b / (s0 * sw)) = round([0.5, -0.3] / 0.01)
    assert fc1.bias.tolist() == [50, -30], f"qb {fc1.bias.tolist()}"
    # largest ReLU output over the calibration images: 0.5*127 + 1.27*100 + 0.5 = 191
    assert fc1.out_scale == pytest.approx(191 / 255, rel=1e-6), "s1 = max activation / 255"
    # fc2: sw = 0.8 / 127; -0.41 / sw = -65.09 -> -65, -0.21 / sw = -33.34 -> -33,
    # 0.6 / sw = 95.25 -> 95; qb = round(0.1 / (s1 * sw)) = round(21.19) = 21
    assert fc2.weight_scale == pytest.approx(0.8 / 127, rel=1e-6), "sw = max|w| / 127"
    assert fc2.weight.tolist() == [[127, -65], [-33, 95]], f"qw {fc2.weight.tolist()}"
    assert fc2.bias.tolist() == [21, 0], f"qb {fc2.bias.tolist()}"
    assert fc2.in_scale == fc1.out_scale and fc2.out_scale is None, "logits stay unscaled"


def test_integer_logits_by_hand(qnet):
    # image 1: acc1 = [50*127 + 127*100 + 50, 100*127 - 34*100 - 30] = [19100, 9270];
    # M = s0 * sw / s1 = 0.01 * 255 / 191: q1 = clamp(round(acc1 * M), 0, 255) = [255, 124]
    # (9270 * M = 123.76: floor would give 123); logits = qw2 @ q1 + qb2
    #   = [127*255 - 65*124 + 21, -33*255 + 95*124] = [24346, 3365]
    # image 2: acc1 = [-127*50 + 50, 34*50 - 30] = [-6300, 1670] -> q1 = [0, round(22.30)]
    #   = [0, 22]; logits = [-65*22 + 21, 95*22] = [-1409, 2090]
    want = [[24346, 3365], [-1409, 2090]]
    for method in ("fast", "loop"):
        got = integer_forward(qnet, IMAGES, 32, method=method).logits.tolist()
        assert got == want, f"{method} engine: logits {got}, expected {want} (by hand)"
    got = reference_logits(qnet, IMAGES).tolist()
    assert got == want, f"reference_logits {got}, expected {want} (by hand)"
