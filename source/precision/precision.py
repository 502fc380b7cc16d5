# %% [markdown]
# # Assignment 1 (precision): fast convolution and matrix-multiplication kernels
#
# **Goals.** Implement 2-D convolution as one matrix product (im2col), by Winograd's minimal
# filtering algorithm and by FFT, and matrix multiplication through truncated SVD factors and
# in the log domain; then measure how far each method's result moves from the exact one when
# the arithmetic is done in a low precision.
#
# **Questions and points.** 6 programming exercises (18 points, of which 2 are extra credit),
# 1 plot (3 points) and 1 written answer (2 points). Each exercise cell already holds the
# signature and docstring of the function to write: the docstring states the shapes, dtypes
# and the formula. The cell right after it runs visible checks; graders run more, on other
# inputs.
#
# Convention: `conv2d` is the cross-correlation of `torch.nn.functional.conv2d`,
# `x (N, C, H, W)`, `k (O, C, kh, kw)`, `b (O,)` or None, output `(N, O, H', W')`.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)

# %% [markdown]
# ## 1. Convolution as one matrix product: im2col
#
# Every output pixel is a dot product of a `C x kh x kw` window of the (padded) input with
# a kernel. Collect all windows as the rows of a patch matrix `P (N*H'*W', C*kh*kw)` and the
# kernels as the columns of `K (C*kh*kw, O)`: the whole convolution is `P @ K`.

# %% tags=["answer:precision_im2col"]
# generated from src/dnnkernels/conv2d.py: conv2d_im2col

# %% tags=["check:precision_im2col"]
x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
k = torch.randn(4, 3, 3, 2, dtype=torch.float64)
b = torch.randn(4, dtype=torch.float64)
for stride, padding in [(1, 0), (2, 1), (3, 2)]:
    expected = F.conv2d(x, k, b, stride=stride, padding=padding)
    got = conv2d_im2col(x, k, b, stride=stride, padding=padding)
    assert got.shape == expected.shape, (
        f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    )
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10), (got - expected).abs().max()
assert torch.allclose(conv2d_im2col(x, k), F.conv2d(x, k), rtol=1e-10, atol=1e-10), "b=None"
print("conv2d_im2col: visible checks passed")

# %% [markdown]
# ## 2. Winograd F(m x m, 3 x 3)
#
# Winograd's algorithm computes an `m x m` output tile from an `(m+2) x (m+2)` input tile
# with `(m+2)^2` element-wise multiplications instead of `9 m^2`. The transform matrices are
# given by `winograd_transforms(m, dtype)` (already imported in the exercise cell).

# %% tags=["answer:precision_winograd"]
# generated from src/dnnkernels/conv2d.py: conv2d_winograd

# %% tags=["check:precision_winograd"]
k3 = torch.randn(4, 3, 3, 3, dtype=torch.float64)
for m in (2, 4):
    for H, W in [(8, 8), (7, 10)]:  # odd sizes too
        x = torch.randn(2, 3, H, W, dtype=torch.float64)
        expected = F.conv2d(x, k3, b)
        got = conv2d_winograd(x, k3, b, m=m)
        assert got.shape == expected.shape, f"m={m}: shape {tuple(got.shape)}"
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10), (
            m,
            (got - expected).abs().max(),
        )
print("conv2d_winograd: visible checks passed")

# %% [markdown]
# ## 3. Convolution by FFT
#
# Flip the kernel (correlation is convolution with the flipped kernel), zero-pad both to the
# linear-convolution size, multiply the spectra and crop the valid part.

# %% tags=["answer:precision_fft"]
# generated from src/dnnkernels/conv2d.py: conv2d_fft

# %% tags=["check:precision_fft"]
x = torch.randn(2, 3, 12, 11, dtype=torch.float64)
for kh, kw in [(3, 3), (5, 2), (12, 11)]:
    k = torch.randn(4, 3, kh, kw, dtype=torch.float64)
    expected = F.conv2d(x, k, b)
    got = conv2d_fft(x, k, b)
    assert got.shape == expected.shape, f"kernel {kh}x{kw}: shape {tuple(got.shape)}"
    assert got.dtype == torch.float64, got.dtype
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (got - expected).abs().max()
print("conv2d_fft: visible checks passed")

# %% [markdown]
# ## 4. Matrix product through truncated SVD factors
#
# With `A ~ U diag(S) Vh` of rank r, `A @ B` costs `r*K*N + M*r*N` multiplications in
# factored form instead of `M*K*N`. `truncated_svd(M, rank)` is given.

# %% tags=["answer:precision_matmul_svd"]
# generated from src/dnnkernels/matmul.py: matmul_svd

# %% tags=["check:precision_matmul_svd"]
A = torch.randn(20, 12, dtype=torch.float64)
B = torch.randn(12, 9, dtype=torch.float64)
assert torch.allclose(matmul_svd(A, B), A @ B, rtol=1e-10, atol=1e-10), "no ranks: A @ B"
assert torch.allclose(matmul_svd(A, B, 12, 9), A @ B, rtol=1e-10, atol=1e-10), "full ranks"
U, S, Vh = torch.linalg.svd(A, full_matrices=False)
A3 = U[:, :3] @ torch.diag(S[:3]) @ Vh[:3]  # best rank-3 approximation of A
got = matmul_svd(A, B, rank_A=3)
assert torch.allclose(got, A3 @ B, rtol=1e-10, atol=1e-10), (got - A3 @ B).abs().max()
errors = [torch.linalg.norm(matmul_svd(A, B, rank_A=r) - A @ B).item() for r in (2, 6, 10)]
assert errors[0] > errors[1] > errors[2], f"error should fall with the rank: {errors}"
print("matmul_svd: visible checks passed")

# %% [markdown]
# ## 5. Products in the log domain
#
# `x = sign(x) * 2**log2|x|`: a product becomes a sum of logs; the sum over `k` stays in the
# linear domain. Exact zeros must stay zero.

# %% tags=["answer:precision_matmul_log"]
# generated from src/dnnkernels/matmul.py: matmul_log

# %% tags=["check:precision_matmul_log"]
A = torch.randn(7, 5, dtype=torch.float64)
B = torch.randn(5, 6, dtype=torch.float64)
A[0, :] = 0.0  # a zero row
B[2, 3] = 0.0  # a single zero
got = matmul_log(A, B)
assert got.shape == (7, 6) and got.dtype == torch.float64, (got.shape, got.dtype)
assert torch.allclose(got, A @ B, rtol=1e-12, atol=1e-12), (got - A @ B).abs().max()
assert torch.equal(got[0], torch.zeros(6, dtype=torch.float64)), "a zero row gives zeros"
print("matmul_log: visible checks passed")

# %% [markdown]
# ## 6. Extra credit: approximate log-domain addition (US 2021/0056446)
#
# Quantise the exponents to `f` fraction bits, split each product's exponent into quotient
# and remainder, accumulate with shifts per remainder bin, and multiply once per bin by a
# lookup table. The only approximation is the rounding of the exponents.

# %% tags=["answer:precision_matmul_log_approx"]
# generated from src/dnnkernels/matmul.py: matmul_log_approx

# %% tags=["check:precision_matmul_log_approx"]
A = torch.rand(8, 16, dtype=torch.float64) + 0.5
B = torch.rand(16, 5, dtype=torch.float64) + 0.5
errors = []
for f in (0, 2, 4, 8):
    got = matmul_log_approx(A, B, frac_bits=f)
    assert got.shape == (8, 5), got.shape
    errors.append((torch.linalg.norm(got - A @ B) / torch.linalg.norm(A @ B)).item())
assert errors[-1] < 2e-3, f"with 8 fraction bits the error should be tiny: {errors}"
assert errors[0] > errors[2] > errors[3], f"the error should shrink as f grows: {errors}"
powers = torch.tensor([[1.0, -2.0], [0.5, 4.0]], dtype=torch.float64)  # exact in any base
assert torch.allclose(matmul_log_approx(powers, powers, frac_bits=3), powers @ powers)
print("matmul_log_approx: visible checks passed")

# %% [markdown]
# ## 7. Error against numerical precision (plot, graded by hand)
#
# For one random input, plot the relative Frobenius error of each conv2d method in float32
# and bfloat16 against the float64 result of `F.conv2d` (log scale). Use the library
# dispatcher `conv2d(x, k, b, method=...)`: it runs your kernels.

# %% tags=["manual:precision_plot:3"]
from dnnkernels.conv2d import conv2d

### BEGIN SOLUTION
x64 = torch.randn(2, 8, 32, 32, dtype=torch.float64)
k64 = torch.randn(8, 8, 3, 3, dtype=torch.float64)
reference = F.conv2d(x64, k64)
methods = ["naive", "im2col", "winograd", "winograd4", "fft"]
dtypes = [torch.float32, torch.bfloat16]
errors = {}
for dtype in dtypes:
    for method in methods:
        y = conv2d(x64.to(dtype), k64.to(dtype), method=method).to(torch.float64)
        errors[method, dtype] = (
            torch.linalg.norm(y - reference) / torch.linalg.norm(reference)
        ).item()
fig, ax = plt.subplots(figsize=(7, 4))
for offset, dtype in zip((-0.2, 0.2), dtypes, strict=True):
    values = [errors[m, dtype] for m in methods]
    ax.bar(
        np.arange(len(methods)) + offset, values, width=0.4, label=str(dtype).removeprefix("torch.")
    )
ax.set_xticks(np.arange(len(methods)), methods)
ax.set_yscale("log")
ax.set_ylabel("relative Frobenius error vs float64")
ax.legend()
fig.savefig("precision_errors.png", dpi=100, bbox_inches="tight")
plt.show()
### END SOLUTION

# %% [markdown]
# **Question (graded by hand).** Which methods lose the most accuracy in low precision, and
# why? Relate your answer to the arithmetic each method does.

# %% [markdown] tags=["manual:precision_discussion:2"]
# In float32 every method stays near the unit roundoff (about 1e-7), except Winograd
# F(4x4, 3x3), about ten times worse: its transforms have coefficients far from one (up to 8,
# and 1/24 that is not exact in binary), which amplify the rounding errors of the inputs and
# of the element-wise products. F(2x2, 3x3) has coefficients 0, 1/2 and 1 and loses little.
# In bfloat16 (8 significant bits) the rounding of the inputs and of the result dominates:
# naive, im2col and FFT (which computes in float32 and rounds once at the end) show about
# the same error, near 3e-3, and Winograd again adds its amplification on top.
