"""dnnkernels.energy: the s_mul / s_add model, the 45 nm model and the operation counts
(task marker ``bit_width_energy``), against closed forms worked out by hand.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnnkernels.energy import (
    add_energy_pj,
    conv_ops,
    energy,
    layer_energy,
    linear_ops,
    mul_energy_pj,
)

# ------------------------------------------------------------------ layer_energy (exercise)


@pytest.mark.bit_width_energy
def test_layer_energy_closed_form():
    assert layer_energy(1, 0, 8, 32) == 64.0
    assert layer_energy(0, 1, 8, 32) == 32.0
    assert layer_energy(1000, 1000, 16, 20) == 1000 * 256 + 1000 * 20
    assert layer_energy(10, 3, 4, 7) == 10 * 16 + 3 * 7
    assert isinstance(layer_energy(3, 4, 8, 24), float)
    # conv2 of LeNet with an 18-bit accumulator, written out
    assert layer_energy(240000, 241600, 8, 18) == 64 * 240000 + 18 * 241600


@pytest.mark.bit_width_energy
@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(1, 64), st.integers(1, 64))
def test_layer_energy_formula(n_mul, n_add, bits_mul, bits_add):
    expected = 64 * (bits_mul / 8) ** 2 * n_mul + bits_add * n_add
    assert math.isclose(layer_energy(n_mul, n_add, bits_mul, bits_add), expected, rel_tol=1e-12)


def test_energy_wrapper_and_its_checks():
    assert energy(117600, 122304, 8, 18) == layer_energy(117600, 122304, 8, 18)
    assert energy(10, 20, 8, 32, model="pj") == pytest.approx(10 * 0.2 + 20 * 0.1)
    with pytest.raises(ValueError, match=r"n_mul: got -1, expected an int in \[0, inf\]"):
        energy(-1, 0, 8, 8)
    with pytest.raises(ValueError, match=r"bits_add: got 0, expected an int in \[1, 64\]"):
        energy(1, 1, 8, 0)
    with pytest.raises(ValueError, match=r"model: got 'joules', expected one of 'units', 'pj'"):
        energy(1, 1, 8, 8, model="joules")


# ------------------------------------------------------------- op counts and energy models


def test_op_counts_closed_forms():
    assert conv_ops(6, 1, (5, 5), (28, 28)) == (6 * 28 * 28 * 1 * 5 * 5, 6 * 28 * 28 * 26)
    assert conv_ops(16, 6, (5, 5), (10, 10), bias=False) == (240000, 240000)
    assert linear_ops(400, 120) == (48000, 48120)
    assert linear_ops(84, 10, bias=False) == (840, 840)


def test_horowitz_energy_interpolation():
    assert add_energy_pj(8) == pytest.approx(0.03) and add_energy_pj(32) == pytest.approx(0.1)
    assert mul_energy_pj(8) == pytest.approx(0.2) and mul_energy_pj(32) == pytest.approx(3.1)
    assert add_energy_pj(20) == pytest.approx((0.03 + 0.1) / 2)  # linear: midpoint
    # quadratic in the width: constant second difference, 2 * c2
    c2 = (3.1 - 0.2) / (32**2 - 8**2)
    second = mul_energy_pj(18) - 2 * mul_energy_pj(17) + mul_energy_pj(16)
    assert second == pytest.approx(2 * c2)
