"""Energy of a layer and of a network under the s_mul / s_add model and at 45 nm.

Part of the bit_width assignment. Exercise: :func:`layer_energy` (the course kit holds its
reference solution; the student build runs the student's own function, see
``dnnkernels._student``; wrapper :func:`energy`).

Energy
------
``E = sum over layers (s_mul * N_mul + s_add * N_add)``, ``s_mul = 64 * (B_mul / 8)**2``,
``s_add = B_add`` (model units per image), with the counts of :func:`conv_ops` /
:func:`linear_ops`; and a physical model in picojoules at 45 nm (Horowitz, ISSCC 2014),
:func:`add_energy_pj`, :func:`mul_energy_pj`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np  # noqa: F401  (available to the exercise functions)

from dnnkernels.accumulator import MAX_BITS
from dnnkernels.checks import check_choice, check_int

#: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: energy per operation in pJ
HOROWITZ_45NM_PJ = {"add": {8: 0.03, 32: 0.1}, "mul": {8: 0.2, 32: 3.1}}


def layer_energy(n_mul: int, n_add: int, bits_mul: int, bits_add: int) -> float:
    """Energy of one layer in model units: ``s_mul * n_mul + s_add * n_add``.

    ``s_mul = 64 * (bits_mul / 8) ** 2`` (a multiplier's cost grows with the square of
    its operand width: 64 units for 8 x 8 bits) and ``s_add = bits_add`` (an adder's
    cost grows linearly with the accumulator width).

    Args:
        n_mul: number of multiplications, int >= 0.
        n_add: number of additions, int >= 0.
        bits_mul: operand width of the multiplications, int >= 1.
        bits_add: width of the adder (the accumulator), int >= 1.

    Returns:
        float, the energy in model units.
    """
    ### BEGIN SOLUTION
    s_mul = 64 * (bits_mul / 8) ** 2
    s_add = bits_add
    return float(s_mul * n_mul + s_add * n_add)
    ### END SOLUTION


def add_energy_pj(bits: int | float) -> float:
    """Energy of one integer addition at 45 nm in pJ, linear in the width.

    The line through Horowitz's two points, 8-bit add 0.03 pJ and 32-bit add 0.1 pJ:
    ``E_add(b) = 0.03 + (b - 8) * (0.1 - 0.03) / (32 - 8)``.
    """
    (b0, e0), (b1, e1) = sorted(HOROWITZ_45NM_PJ["add"].items())
    return e0 + (bits - b0) * (e1 - e0) / (b1 - b0)


def mul_energy_pj(bits: int | float) -> float:
    """Energy of one integer multiplication at 45 nm in pJ, quadratic in the width.

    ``E_mul(b) = c2 * b**2 + c0`` through Horowitz's two points, 8-bit multiply 0.2 pJ and
    32-bit multiply 3.1 pJ: ``c2 = (3.1 - 0.2) / (32**2 - 8**2)``, ``c0 = 0.2 - c2 * 8**2``
    (an array multiplier has about b**2 cells; the small constant absorbs the rest).
    """
    (b0, e0), (b1, e1) = sorted(HOROWITZ_45NM_PJ["mul"].items())
    c2 = (e1 - e0) / (b1**2 - b0**2)
    return c2 * bits**2 + (e0 - c2 * b0**2)


def energy(n_mul: int, n_add: int, bits_mul: int, bits_add: int, model: str = "units") -> float:
    """Validate, then the energy of one layer.

    ``model="units"``: :func:`layer_energy` (``64 * (bits_mul/8)**2 * n_mul + bits_add * n_add``);
    ``model="pj"``: ``mul_energy_pj(bits_mul) * n_mul + add_energy_pj(bits_add) * n_add``.

    Args:
        n_mul, n_add: operation counts, ints >= 0.
        bits_mul: multiplier operand width, int in [1, 64].
        bits_add: adder (accumulator) width, int in [1, 64].
        model: ``"units"`` or ``"pj"``.
    """
    n_mul, n_add = _as_count("n_mul", n_mul), _as_count("n_add", n_add)
    bits_mul = check_int("bits_mul", _plain(bits_mul), low=1, high=MAX_BITS)
    bits_add = check_int("bits_add", _plain(bits_add), low=1, high=MAX_BITS)
    check_choice("model", model, ("units", "pj"))
    if model == "units":
        return layer_energy(n_mul, n_add, bits_mul, bits_add)
    return mul_energy_pj(bits_mul) * n_mul + add_energy_pj(bits_add) * n_add


def _plain(value: object) -> object:
    return int(value) if isinstance(value, np.integer) else value


def _as_count(name: str, value: object) -> int:
    return check_int(name, _plain(value), low=0)


# ============================================================================ op counts


@dataclass(frozen=True)
class LayerOps:
    """Operation counts of one layer for one image.

    Attributes:
        name: layer name (``"conv1"``, ...).
        kind: ``"conv"`` or ``"linear"``.
        n_outputs: accumulations per image (``O * H' * W'`` or ``out_features``).
        fan_in: products per accumulation, ``K = C * kh * kw`` or ``in_features``.
        n_mul: multiplications, ``n_outputs * K``.
        n_add: additions into the accumulator, ``n_outputs * (K + 1)`` with a bias
            (every product, the first one included, plus the bias), ``n_outputs * K`` without.
    """

    name: str
    kind: str
    n_outputs: int
    fan_in: int
    n_mul: int
    n_add: int


def conv_ops(
    out_channels: int,
    in_channels: int,
    kernel_size: tuple[int, int],
    out_size: tuple[int, int],
    bias: bool = True,
) -> tuple[int, int]:
    """Multiplications and additions of a convolution for one image.

    ``N_mul = O * H' * W' * C * kh * kw`` (zero-padded positions included, as a dense
    array computes them) and ``N_add = N_mul + O * H' * W'`` with a bias (each product is
    one addition into the accumulator, the bias one more), ``N_add = N_mul`` without.

    Returns:
        ``(n_mul, n_add)``.
    """
    (kh, kw), (ho, wo) = kernel_size, out_size
    outputs = out_channels * ho * wo
    n_mul = outputs * in_channels * kh * kw
    return n_mul, n_mul + (outputs if bias else 0)


def linear_ops(in_features: int, out_features: int, bias: bool = True) -> tuple[int, int]:
    """Multiplications and additions of a fully connected layer for one input vector.

    ``N_mul = out * in``; ``N_add = out * in + out`` with a bias, ``out * in`` without.
    """
    n_mul = out_features * in_features
    return n_mul, n_mul + (out_features if bias else 0)


@dataclass
class NetworkEnergy:
    """Energy of one inference (one image).

    Attributes:
        units: ``sum_l layer_energy(N_mul, N_add, bits_mul, bits[l])`` (model units).
        pj: ``sum_l mul_energy_pj(bits_mul) * N_mul + add_energy_pj(bits[l]) * N_add``.
        per_layer_units, per_layer_pj: layer name -> the layer's share.
    """

    units: float
    pj: float
    per_layer_units: dict[str, float]
    per_layer_pj: dict[str, float]


def network_energy(
    ops: Sequence[LayerOps], bits: Mapping[str, int], bits_mul: int = 8
) -> NetworkEnergy:
    """Energy per image of the layers ``ops`` with accumulator widths ``bits`` (both models).

    ``B_mul = bits_mul`` (8: int8 x int8/uint8 operands) in every layer, ``B_add = bits[l]``.
    """
    units = {op.name: layer_energy(op.n_mul, op.n_add, bits_mul, bits[op.name]) for op in ops}
    pj = {
        op.name: mul_energy_pj(bits_mul) * op.n_mul + add_energy_pj(bits[op.name]) * op.n_add
        for op in ops
    }
    return NetworkEnergy(sum(units.values()), sum(pj.values()), units, pj)
