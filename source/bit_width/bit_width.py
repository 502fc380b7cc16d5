# %% [markdown]
# # Assignment 4 (bit_width): how many bits does an accumulator need?
#
# **Goals.** Accumulate integer products in a b-bit two's complement accumulator with
# saturation or wrap-around and detect overflow, find the smallest bit-width that holds a
# range of values, and compare the energy of layers under a simple cost model.
#
# **Questions and points.** 3 programming exercises (8 points), 1 plot (3 points) and
# 1 written answer (2 points). Each exercise cell holds the signature and docstring to
# implement; the cell after it runs visible checks.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

torch.manual_seed(0)

# %% [markdown]
# ## 1. A b-bit accumulator
#
# The accumulator starts at 0 and adds the products one at a time, in order. With
# `mode="saturate"` it clamps to `[-2**(b-1), 2**(b-1) - 1]` after every addition; with
# `mode="wrap"` it keeps the sum modulo `2**b`.

# %% tags=["answer:bit_width_accumulate"]
# generated from src/dnnkernels/bitwidth.py: accumulate


# %% tags=["check:bit_width_accumulate"]
def accumulate_by_hand(row, bits, mode):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    acc, overflow = 0, False
    for p in row:
        acc += p
        if not lo <= acc <= hi:
            overflow = True
            acc = min(max(acc, lo), hi) if mode == "saturate" else (acc - lo) % 2**bits + lo
    return acc, overflow


products = torch.randint(-40, 41, (6, 9), dtype=torch.int64)
products[0] = torch.tensor([30, 30, -10, -40, 40, 40, -5, 0, 1])  # saturates, then recovers
for bits in (6, 8, 16):
    for mode in ("saturate", "wrap"):
        sums, overflow = accumulate(products, bits, mode)
        assert sums.dtype == torch.int64 and overflow.dtype == torch.bool, (
            sums.dtype,
            overflow.dtype,
        )
        expected = [accumulate_by_hand(row.tolist(), bits, mode) for row in products]
        assert sums.tolist() == [e[0] for e in expected], (bits, mode, sums.tolist(), expected)
        assert overflow.tolist() == [e[1] for e in expected], (bits, mode, overflow.tolist())
sums, overflow = accumulate(products.reshape(2, 3, 9), 6)  # leading dimensions (...)
assert sums.shape == (2, 3) and overflow.shape == (2, 3), sums.shape
print("accumulate: visible checks passed")

# %% [markdown]
# ## 2. The smallest bit-width for a range

# %% tags=["answer:bit_width_min_bits"]
# generated from src/dnnkernels/bitwidth.py: min_bits

# %% tags=["check:bit_width_min_bits"]
assert min_bits(-128, 127) == 8 and min_bits(-129, 0) == 9 and min_bits(0, 128) == 9
for lo, hi in [(0, 0), (0, 1), (-1, 0), (-5, 3), (-1000, 70000), (-(2**40), 2**40)]:
    b = next(b for b in range(1, 80) if -(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1)
    assert min_bits(lo, hi) == b, (lo, hi, min_bits(lo, hi), b)
print("min_bits: visible checks passed")

# %% [markdown]
# ## 3. The energy of a layer
#
# `E = s_mul * N_mul + s_add * N_add` with `s_mul = 64 * (B_mul / 8)**2` and `s_add = B_add`.

# %% tags=["answer:bit_width_energy"]
# generated from src/dnnkernels/bitwidth.py: layer_energy

# %% tags=["check:bit_width_energy"]
assert layer_energy(1, 0, 8, 32) == 64.0
assert layer_energy(0, 1, 8, 32) == 32.0
assert layer_energy(1000, 1000, 16, 20) == 1000 * 256 + 1000 * 20
assert isinstance(layer_energy(3, 4, 8, 24), float)
print("layer_energy: visible checks passed")

# %% [markdown]
# ## 4. Overflow against bit-width (plot, graded by hand)
#
# For 1000 dot products of 256 random int8 x int8 products, plot the fraction that overflows
# and the relative error of the saturated and the wrapped sums against the accumulator width.

# %% tags=["manual:bit_width_plot:3"]
### BEGIN SOLUTION
a = torch.randint(-128, 128, (1000, 256), dtype=torch.int64)
w = torch.randint(-128, 128, (1000, 256), dtype=torch.int64)
products = a * w
exact = products.sum(dim=1).double()
widths = list(range(12, 27))
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
for mode in ("saturate", "wrap"):
    fractions, errors = [], []
    for bits in widths:
        sums, overflow = accumulate(products, bits, mode)
        fractions.append(overflow.double().mean().item())
        errors.append(((sums.double() - exact).norm() / exact.norm()).item())
    left.plot(widths, fractions, marker="o", label=mode)
    right.plot(widths, errors, marker="o", label=mode)
left.set_xlabel("accumulator bits")
left.set_ylabel("fraction of sums that overflow")
right.set_xlabel("accumulator bits")
right.set_ylabel("relative error of the sums")
right.set_yscale("symlog", linthresh=1e-6)
left.legend()
fig.savefig("bit_width_overflow.png", dpi=100, bbox_inches="tight")
plt.show()
### END SOLUTION

# %% [markdown]
# **Question (graded by hand).** Why is saturation kinder than wrap-around when an
# accumulator is a few bits too narrow?

# %% [markdown] tags=["manual:bit_width_discussion:2"]
# A saturated sum that overflows stays at the edge of the range, close to the true value
# when the overflow is small, and keeps its sign; a wrapped sum jumps by a multiple of `2**b`,
# typically to the other end of the range with the wrong sign, so one overflow turns a large
# activation into a large error of the opposite sign. Both become exact once the accumulator
# holds every partial sum, which `min_bits` of the observed range tells.
