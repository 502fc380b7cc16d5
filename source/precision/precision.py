# %% [markdown]
# # Assignment 1 (precision): fast convolution and matrix-multiplication kernels, and their accuracy
#
# Deep-learning libraries ship several kernels for the same layer. cuDNN, for example, has
# GEMM-based, Winograd and FFT convolutions and picks one by timing them all. In exact
# arithmetic these kernels compute the same function. In floating point or integer arithmetic
# they do not: each one rounds, or overflows, in its own places.
#
# **Goals.** By the end of this assignment you will have
#
# 1. written 2-D convolution three ways: as one matrix product (im2col), by Winograd's
#    minimal filtering algorithm F(2×2, 3×3) and F(4×4, 3×3), and as a product of Fourier
#    transforms;
# 2. written matrix multiplication two ways: through truncated SVD factors and with the
#    products taken in the log domain;
# 3. measured the *reconstruction error* of every method at seven numerical precisions (int8,
#    bfloat16, float16, int16, float32, int32, float64), next to the naive definition, and
#    explained the differences from the arithmetic each method does.
#
# **Questions and points.** 5 programming exercises and 4 hand-graded questions, 29 points
# in all, plus an optional extra credit worth 4 bonus points.
#
# | section | what you hand in | graded | points |
# |---|---|---|---|
# | 1 | `conv2d_im2col` | automatically | 4 |
# | 2 | `conv2d_winograd` | automatically | 4 |
# | 3 | `conv2d_fft` | automatically | 4 |
# | 3 | Q1: how your FFT convolution works (prose) | by hand | 2 |
# | 4 | `matmul_svd` | automatically | 3 |
# | 5 | `matmul_log` | automatically | 3 |
# | 6 | Q2: error against precision (code and two plots) | by hand | 3 |
# | 6 | Q3: float formats (prose) | by hand | 3 |
# | 6 | Q4: integer formats (prose) | by hand | 3 |
# | 7 (optional) | `matmul_log_approx`; Q5 (plot); Q6 (prose) | both | 2 + 1 + 1 bonus |
#
# **How to work.** Each exercise cell already holds the signature and the docstring of the
# function to write: the docstring states the shapes, the dtypes and the formula. Replace
# `raise NotImplementedError(...)` with your code and run the cell; the cell after it runs
# visible checks. Graders run more checks, on other inputs. Inside your kernels use only
# `torch`, `torch.nn.functional as F`, `numpy as np`, `math` and the support functions the
# cell imports, and do not call a library convolution (`F.conv2d`, `torch.conv2d`): the checks
# compare against it. The SVD itself (`truncated_svd`) and the FFT (`torch.fft`) are given.
#
# **The method is graded, not only the values.** While the graders' checks call your
# kernels, they record which torch operations the kernels perform (and their FLOPs). A
# kernel that takes a shortcut earns **none** of its task's points, even with right values:
#
# - `conv2d_im2col`, `conv2d_winograd`, `conv2d_fft`: no library convolution of any name
#   (`F.conv2d`, `torch.conv2d`, `nn.Conv2d`, `F.conv_transpose2d`, `torch.ops.aten.convolution`,
#   ...). Allowed: views and copies (`Tensor.unfold`, `F.unfold`, `F.pad`, `as_strided`),
#   matrix products (`@`, `torch.bmm`, `einsum`), `torch.fft`, element-wise arithmetic;
# - `matmul_log`: no matrix product at all (`@`, `matmul`, `mm`, `bmm`, `einsum`, `dot`,
#   `F.linear`): every product is a power of two of a sum of logs, the sum is a `sum`;
# - `matmul_svd`: the FLOPs of the factored product; rebuilding a rank-r matrix from its
#   factors and multiplying it costs those of the dense product, and earns nothing;
# - everywhere: compute with torch operations on the tensors you are given. Work done in
#   numpy or Python lists, or with the recording switched off or replaced, counts as a
#   shortcut (tampering with the recording earns 0 for every kernel it touches).
#
# Your kernels are used again later: the library functions `dnnkernels.conv2d.conv2d(...,
# method=...)` and `dnnkernels.matmul.matmul(..., method=...)` call the functions defined in
# this notebook (or, from another notebook, the ones in this notebook once it is saved). The
# precision study of section 6 and the svd_rank assignment run on your code.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # steadier results on a shared machine

# %%
_ = torch.manual_seed(0)  # the visible checks draw reproducible inputs

# %% [markdown]
# ## Background: one convolution, several algorithms
#
# `conv2d` here means what `torch.nn.functional.conv2d` computes, a cross-correlation (the
# kernel is not flipped). For an input $x$ of shape $(N, C, H, W)$, kernels $k$ of shape
# $(O, C, k_h, k_w)$, a bias $b$ of shape $(O,)$, stride $s$ and zero padding $p$ ($\tilde x$
# is $x$ with $p$ zeros added on every side):
#
# $$y_{n,o,i,j} = b_o + \sum_{c=0}^{C-1} \sum_{u=0}^{k_h-1} \sum_{v=0}^{k_w-1}
#   \tilde x_{n,c,\,s i+u,\,s j+v}\; k_{o,c,u,v},$$
# $$H' = \left\lfloor \frac{H + 2p - k_h}{s} \right\rfloor + 1,\quad
#   W' = \left\lfloor \frac{W + 2p - k_w}{s} \right\rfloor + 1 .$$
#
# The naive method evaluates this sum with loops: $C k_h k_w$ multiplications per output.
# The three fast methods reorganise the same sum.
#
# **Numerical precision.** A floating-point format with a $p$-bit significand rounds every
# real number $z$ in its range to $\mathrm{fl}(z) = z(1 + \delta)$ with $|\delta| \le u = 2^{-p}$,
# the *unit roundoff*. A $b$-bit two's complement integer holds $[-2^{b-1}, 2^{b-1} - 1]$;
# integer arithmetic is exact until a result leaves that range, and then it wraps around
# (adds a multiple of $2^b$).
#
# | format | significand bits $p$ | unit roundoff $u$ | integer range |
# |---|---|---|---|
# | bfloat16 | 8 | $2^{-8} \approx 3.9 \times 10^{-3}$ | |
# | float16 | 11 | $2^{-11} \approx 4.9 \times 10^{-4}$ | |
# | float32 | 24 | $2^{-24} \approx 6.0 \times 10^{-8}$ | |
# | float64 | 53 | $2^{-53} \approx 1.1 \times 10^{-16}$ | |
# | int8, int16, int32 | | | $\pm 2^{7}$, $\pm 2^{15}$, $\pm 2^{31}$ |
#
# **Reconstruction error.** A method's result $\hat y$, computed in some format, is compared
# with the reference $y$, the direct sum computed in float64 on the same float64 inputs, by
# the relative Frobenius error
#
# $$\varepsilon = \frac{\lVert \hat y - y \rVert_F}{\lVert y \rVert_F},
#   \qquad \lVert z \rVert_F = \Big(\sum_{\text{all entries}} z^2\Big)^{1/2}.$$

# %% [markdown]
# ## 1. Convolution as one matrix product: im2col (`precision_im2col`)
#
# Every output pixel is the dot product of one $C \times k_h \times k_w$ window of the padded
# input with one kernel. Lay the windows of image $n$ out as the columns of a *patch matrix*
# and the kernels as the rows of a kernel matrix:
#
# $$P_n[(c,u,v),\,(i,j)] = \tilde x_{n,c,\,si+u,\,sj+v},$$
# $$K[o,\,(c,u,v)] = k_{o,c,u,v}, \qquad
#   Y_n = K P_n \in \mathbb{R}^{O \times H'W'} .$$
#
# The whole convolution becomes one general matrix product (GEMM), the operation hardware
# and BLAS libraries run fastest. The price is memory: $P_n$ has $C k_h k_w \cdot H'W'$ entries,
# so with stride 1 every input pixel is copied up to $k_h k_w$ times. Build $P$ without a Python
# loop over pixels: `Tensor.unfold(dim, size, step)` returns all windows along one dimension
# as a strided view, with no copy.

# %% tags=["answer:precision_im2col"]
# generated from src/dnnkernels/conv2d.py: conv2d_im2col

# %% tags=["check:precision_im2col"]
# A hand-computed case: the 2x2 windows of 0..15 (4x4), stride 2, summed by a kernel of ones.
x_hand = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
y_hand = conv2d_im2col(x_hand, torch.ones(1, 1, 2, 2, dtype=torch.float64), stride=2)
expected = torch.tensor([[[[10.0, 18.0], [42.0, 50.0]]]], dtype=torch.float64)
assert torch.equal(y_hand, expected), (
    f"windows of arange(16) summed with stride 2: got {y_hand.flatten().tolist()}, "
    "expected [10, 18, 42, 50] (0+1+4+5, 2+3+6+7, 8+9+12+13, 10+11+14+15)"
)

# Against torch in float64, with several strides and paddings and a non-square kernel.
x_check = torch.randn(2, 3, 9, 8, dtype=torch.float64)
k_check = torch.randn(4, 3, 3, 2, dtype=torch.float64)
b_check = torch.randn(4, dtype=torch.float64)
for stride, padding in [(1, 0), (2, 1), (3, 2)]:
    expected = F.conv2d(x_check, k_check, b_check, stride=stride, padding=padding)
    got = conv2d_im2col(x_check, k_check, b_check, stride=stride, padding=padding)
    assert got.shape == expected.shape, (
        f"stride {stride}, padding {padding}: shape {tuple(got.shape)}, "
        f"expected {tuple(expected.shape)}"
    )
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10), (
        f"stride {stride}, padding {padding}: differs from F.conv2d by up to "
        f"{(got - expected).abs().max().item():.3g}"
    )
got = conv2d_im2col(x_check, k_check)
assert torch.allclose(got, F.conv2d(x_check, k_check), rtol=1e-10, atol=1e-10), (
    "b=None: the result differs from F.conv2d(x, k) (no bias should be added)"
)

# Integer inputs stay integers (the precision study runs im2col on int8, int16, int32).
x_int = torch.randint(-3, 4, (1, 2, 5, 6), dtype=torch.int32)
k_int = torch.randint(-3, 4, (3, 2, 3, 3), dtype=torch.int32)
got = conv2d_im2col(x_int, k_int)
assert got.dtype == torch.int32, f"int32 input gave dtype {got.dtype}, expected torch.int32"
assert torch.equal(got.double(), F.conv2d(x_int.double(), k_int.double())), (
    "int32 input: the result differs from the exact integer convolution"
)
print("conv2d_im2col: visible checks passed")

# %% [markdown]
# ## 2. Winograd's minimal filtering F(m×m, 3×3) (`precision_winograd`)
#
# Winograd's algorithm computes $m$ outputs of a 3-tap correlation with fewer multiplications
# than the $3m$ of the direct sum. For F(2, 3), an input tile $d = (d_0, d_1, d_2, d_3)$ and a
# filter $g = (g_0, g_1, g_2)$:
#
# $$m_1 = (d_0 - d_2)\,g_0,\quad m_2 = (d_1 + d_2)\,\tfrac{g_0 + g_1 + g_2}{2},$$
# $$m_3 = (d_2 - d_1)\,\tfrac{g_0 - g_1 + g_2}{2},\quad m_4 = (d_1 - d_3)\,g_2,$$
# $$y_0 = m_1 + m_2 + m_3 = d_0 g_0 + d_1 g_1 + d_2 g_2,$$
# $$y_1 = m_2 - m_3 - m_4 = d_1 g_0 + d_2 g_1 + d_3 g_2 .$$
#
# Four multiplications instead of six; the filter terms such as $(g_0 + g_1 + g_2)/2$ are
# computed once per filter and reused for every tile. In matrix form,
# $y = A^\top \big[(G g) \odot (B^\top d)\big]$ with an $(m+2)$-point input tile, and in two
# dimensions, for a tile $d$ of $(m+2) \times (m+2)$ pixels and a $3 \times 3$ filter $g$:
#
# $$Y = A^\top \Big[ \big(G g G^\top\big) \odot \big(B^\top d B\big) \Big] A
#   \qquad (m \times m \text{ outputs}).$$
#
# `winograd_transforms(m, dtype)` returns $(A^\top, G, B^\top)$ of Lavin and Gray (2016) for
# $m = 2$ and $m = 4$. Per output, the element-wise products cost
#
# | method | multiplications per output |
# |---|---|
# | direct | $9$ |
# | F(2×2, 3×3) | $16 / 4 = 4$ |
# | F(4×4, 3×3) | $36 / 16 = 2.25$ |
#
# but the larger tile needs larger transform coefficients: $B^\top$ of F(4, 3) has entries up
# to 5, $A^\top$ up to 8, and $G$ has $1/6$ and $1/24$, which no binary format holds exactly.
# Section 6 measures what that costs. Neighbouring input tiles overlap by 2 pixels; pad the
# input at the bottom and right so that odd sizes are covered by whole tiles, and sum over the
# channels *before* the output transform (it is linear), as the docstring describes.

# %% tags=["answer:precision_winograd"]
# generated from src/dnnkernels/conv2d.py: conv2d_winograd

# %% tags=["check:precision_winograd"]
# A hand-computed case: a kernel of ones on an input of ones gives 9 everywhere.
ones_3x3 = torch.ones(1, 1, 3, 3, dtype=torch.float64)
for m, size in [(2, 4), (4, 6)]:  # exactly one tile
    got = conv2d_winograd(torch.ones(1, 1, size, size, dtype=torch.float64), ones_3x3, m=m)
    assert got.shape == (1, 1, m, m), f"m={m}, one {size}x{size} tile: shape {tuple(got.shape)}"
    assert torch.allclose(got, torch.full_like(got, 9.0), rtol=0, atol=1e-12), (
        f"m={m}: ones * ones should give 9 everywhere, got {got.flatten().tolist()}"
    )

# Against torch in float64, for both tile sizes, sizes that are and are not multiples of m.
k3 = torch.randn(4, 3, 3, 3, dtype=torch.float64)
b3 = torch.randn(4, dtype=torch.float64)
for m in (2, 4):
    for H, W in [(8, 8), (7, 10), (3, 3)]:
        x_check = torch.randn(2, 3, H, W, dtype=torch.float64)
        expected = F.conv2d(x_check, k3, b3)
        got = conv2d_winograd(x_check, k3, b3, m=m)
        assert got.shape == expected.shape, (
            f"m={m}, input {H}x{W}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        )
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10), (
            f"m={m}, input {H}x{W}: differs from F.conv2d by up to "
            f"{(got - expected).abs().max().item():.3g}"
        )
got = conv2d_winograd(x_check, k3, m=4)
assert torch.allclose(got, F.conv2d(x_check, k3), rtol=1e-10, atol=1e-10), (
    "b=None: the result differs from F.conv2d(x, k)"
)

# The arithmetic stays in the input's dtype.
got = conv2d_winograd(x_check.float(), k3.float(), m=4)
assert got.dtype == torch.float32, f"float32 input gave dtype {got.dtype}, expected float32"
print("conv2d_winograd: visible checks passed")

# %% [markdown]
# ## 3. Convolution by FFT (`precision_fft`)
#
# The discrete Fourier transform $\mathcal{F}$ of length $L$ turns *circular* convolution into
# an element-wise product: $\mathcal{F}(x \circledast g) = \mathcal{F}(x) \cdot \mathcal{F}(g)$,
# where $(x \circledast g)_i = \sum_u x_u\, g_{(i - u) \bmod L}$. Three things separate this
# from conv2d:
#
# - **Correlation, not convolution.** conv2d computes $y_i = \sum_u x_{i+u}\, g_u$. With the
#   flipped kernel $\bar g_u = g_{k-1-u}$ this is the convolution
#   $y_i = (x * \bar g)_{i + k - 1}$.
# - **Linear, not circular.** Zero-padding both signals to $L \ge H + k_h - 1$ (and
#   $W + k_w - 1$) makes the circular convolution equal the linear one: nothing wraps around.
# - **Valid part only.** The full linear convolution has $H + k_h - 1$ rows; conv2d keeps the
#   $H - k_h + 1$ rows where the kernel lies entirely inside the input.
#
# The sum over input channels can be done on the spectra,
# $\hat Y_{n,o} = \sum_c \hat X_{n,c} \cdot \hat K_{o,c}$, so that one inverse FFT per
# $(n, o)$ suffices. The cost, $O(HW \log HW)$ per transform plus $O(C \cdot HW)$ per output
# channel for the spectral products, does not grow with the kernel size, unlike the
# $C k_h k_w$ multiplications per output of the direct methods. Use the real transforms
# `torch.fft.rfft2` / `torch.fft.irfft2`; `fast_fft_size(n)` (given) rounds a length up to one
# with prime factors 2, 3 and 5 only, on which FFTs are fastest.

# %% tags=["answer:precision_fft"]
# generated from src/dnnkernels/conv2d.py: conv2d_fft

# %% tags=["check:precision_fft"]
# A hand-computed case that tells correlation from convolution: the kernel (1, -1) takes
# x[j] - x[j+1] = -1 on the row 1, 2, 3, 4 (a convolution would give +1).
got = conv2d_fft(
    torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]], dtype=torch.float64),
    torch.tensor([[[[1.0, -1.0]]]], dtype=torch.float64),
)
assert got.shape == (1, 1, 1, 3), f"row of 4, kernel of 2: shape {tuple(got.shape)}"
assert torch.allclose(got, torch.full_like(got, -1.0), rtol=0, atol=1e-12), (
    f"kernel (1, -1) on (1, 2, 3, 4): got {got.flatten().tolist()}, expected [-1, -1, -1]; "
    "+1 means a convolution: flip the kernel"
)

# Against torch in float64, for small, lopsided and full-size kernels.
x_check = torch.randn(2, 3, 12, 11, dtype=torch.float64)
b_check = torch.randn(4, dtype=torch.float64)
for kh, kw in [(3, 3), (5, 2), (12, 11)]:
    k_check = torch.randn(4, 3, kh, kw, dtype=torch.float64)
    expected = F.conv2d(x_check, k_check, b_check)
    got = conv2d_fft(x_check, k_check, b_check)
    assert got.shape == expected.shape, (
        f"kernel {kh}x{kw}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    )
    assert got.dtype == torch.float64, f"kernel {kh}x{kw}: dtype {got.dtype}, expected float64"
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (
        f"kernel {kh}x{kw}: differs from F.conv2d by up to "
        f"{(got - expected).abs().max().item():.3g}"
    )
got = conv2d_fft(x_check.float(), k_check.float())
assert got.dtype == torch.float32, f"float32 input gave dtype {got.dtype}, expected float32"
print("conv2d_fft: visible checks passed")

# %% [markdown]
# **Q1 (2 points).** Describe your FFT convolution in a few sentences: why and how the kernel
# is flipped, which size you transform at and what would go wrong with a smaller one, which
# part of the inverse transform you keep, and where the sum over input channels happens.
# For which kernel sizes do you expect it to beat im2col, and why?

# %% [markdown] tags=["manual:precision_fft_description:2"]
# *Model answer.* The FFT computes convolutions and conv2d is a correlation, so I flip the
# kernel in both spatial dimensions (`k.flip(-2, -1)`): correlating with $k$ is convolving
# with the flipped kernel. Both the input and the flipped kernel are zero-padded to
# $H_f \times W_f$ with $H_f \ge H + k_h - 1$ and $W_f \ge W + k_w - 1$ (the `s=` argument of
# `rfft2`, rounded up with `fast_fft_size`). A smaller size would make the circular
# convolution wrap around: the last rows and columns of the product would be added onto the
# first ones. I multiply the spectra and sum over the input channels in the frequency domain,
# $\hat Y_{n,o} = \sum_c \hat X_{n,c} \hat K_{o,c}$ (one `einsum`), so there is one inverse
# transform per $(n, o)$ instead of one per $(n, o, c)$. The inverse transform holds the full
# convolution; the correlation is its valid part, rows $k_h - 1$ to $H - 1$ and columns
# $k_w - 1$ to $W - 1$, to which I add the bias. The result is computed in float64 for
# float64 inputs and in float32 otherwise, and cast back.
#
# im2col costs $C k_h k_w$ multiply-adds per output, which grows with the kernel area; the
# FFT costs $O(\log(HW))$ per pixel for the transforms plus $C$ complex products per output
# frequency, independent of the kernel size. So the FFT wins for large kernels. For the
# $3 \times 3$ kernels of most CNNs, im2col or Winograd is faster, since the padded transforms
# and the complex arithmetic cost more than nine multiply-adds per output.

# %% [markdown]
# ## 4. Matrix product through truncated SVD factors (`precision_matmul_svd`)
#
# Every matrix $A \in \mathbb{R}^{M \times K}$ has a singular value decomposition
# $A = U \Sigma V^\top$, with orthonormal columns in $U$ and $V$ and singular values
# $\sigma_1 \ge \sigma_2 \ge \dots \ge 0$ on the diagonal of $\Sigma$. Keeping the $r$ largest
# gives $A_r = U_r \Sigma_r V_r^\top$, the best rank-$r$ approximation of $A$ in the Frobenius
# norm (Eckart and Young). Multiplied in factored form,
#
# $$A_r B = U_r \big(\Sigma_r (V_r^\top B)\big)
#   \qquad \text{costs } rKN + MrN \text{ multiply-adds instead of } MKN,$$
#
# which is cheaper when $r < MK / (M + K)$. The decomposition itself is given:
# `truncated_svd(M, rank)` returns $U_r$ $(m, r)$, the singular values $(r,)$ and $V_r^\top$
# $(r, n)$. Never rebuild $A_r$ as a full matrix: that would cost more than $AB$ itself. The
# svd_rank assignment measures the speed-up of this product.

# %% tags=["answer:precision_matmul_svd"]
# generated from src/dnnkernels/matmul.py: matmul_svd

# %% tags=["check:precision_matmul_svd"]
# A hand-computed case: the rank-1 part of diag(3, 2, 1) is diag(3, 0, 0).
got = matmul_svd(
    torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)),
    torch.eye(3, dtype=torch.float64),
    rank_A=1,
)
assert torch.allclose(got.abs(), torch.diag(torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64))), (
    f"the rank-1 part of diag(3, 2, 1) is diag(3, 0, 0), got {got.tolist()}"
)

# Against products of the best approximations computed with torch.linalg.svd in float64.
A = torch.randn(20, 12, dtype=torch.float64)
B = torch.randn(12, 9, dtype=torch.float64)


def best_rank(M, r):
    """The best rank-r approximation of M (rebuilt here only to check the factored product)."""
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    return U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]


cases = [
    (None, None, A @ B),
    (12, 9, A @ B),
    (3, None, best_rank(A, 3) @ B),
    (None, 2, A @ best_rank(B, 2)),
    (5, 4, best_rank(A, 5) @ best_rank(B, 4)),
]
for rank_A, rank_B, expected in cases:
    got = matmul_svd(A, B, rank_A, rank_B)
    assert got.shape == (20, 9), f"rank_A={rank_A}, rank_B={rank_B}: shape {tuple(got.shape)}"
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10), (
        f"rank_A={rank_A}, rank_B={rank_B}: differs from the product of the best approximations "
        f"by up to {(got - expected).abs().max().item():.3g}"
    )
got = matmul_svd(A.float(), B.float(), rank_A=3)
assert got.dtype == torch.float32, f"float32 input gave dtype {got.dtype}, expected float32"
print("matmul_svd: visible checks passed")

# %% [markdown]
# ## 5. Products in the log domain (`precision_matmul_log`)
#
# A nonzero number is a sign and a base-2 logarithm, $a = \operatorname{sign}(a)\,
# 2^{\log_2 |a|}$. A product becomes an addition of logarithms,
#
# $$a\,b = \operatorname{sign}(a)\operatorname{sign}(b)\; 2^{\log_2|a| + \log_2|b|},$$
# $$C_{ij} = \sum_k \operatorname{sign}(A_{ik}) \operatorname{sign}(B_{kj})\,
#   2^{\log_2|A_{ik}| + \log_2|B_{kj}|},$$
#
# which is why log-number-system hardware replaces multipliers with adders. The sum over $k$
# has no such shortcut: here it is done in the linear domain, after converting each product
# back. Zeros need no special case if you let IEEE arithmetic work:
# $\log_2 0 = -\infty$, $-\infty + \text{finite} = -\infty$, $2^{-\infty} = 0$ and
# $\operatorname{sign}(0) = 0$.

# %% tags=["answer:precision_matmul_log"]
# generated from src/dnnkernels/matmul.py: matmul_log

# %% tags=["check:precision_matmul_log"]
# A hand-computed case with powers of two (exact with base-2 logarithms), signs and a zero.
A_hand = torch.tensor([[2.0, -4.0], [0.0, 8.0]], dtype=torch.float64)
B_hand = torch.tensor([[0.5, 1.0], [0.25, -2.0]], dtype=torch.float64)
got = matmul_log(A_hand, B_hand)
expected = torch.tensor([[0.0, 10.0], [2.0, -16.0]], dtype=torch.float64)
assert torch.allclose(got, expected, rtol=1e-14, atol=1e-14), (
    f"powers of two: got {got.tolist()}, expected [[0, 10], [2, -16]] (mind the signs)"
)

# Against A @ B in float64, with a zero row and a single zero.
A = torch.randn(7, 5, dtype=torch.float64)
B = torch.randn(5, 6, dtype=torch.float64)
A[0, :] = 0.0
B[2, 3] = 0.0
got = matmul_log(A, B)
assert got.shape == (7, 6), f"shape {tuple(got.shape)}, expected (7, 6)"
assert bool(torch.isfinite(got).all()), "zeros gave inf or NaN: let log2(0) = -inf do the work"
assert torch.equal(got[0], torch.zeros(6, dtype=torch.float64)), (
    f"a zero row of A gives a zero row of C, got {got[0].tolist()}"
)
assert torch.allclose(got, A @ B, rtol=1e-12, atol=1e-12), (
    f"differs from A @ B by up to {(got - A @ B).abs().max().item():.3g}"
)
got = matmul_log(A.float(), B.float())
assert got.dtype == torch.float32, f"float32 input gave dtype {got.dtype}, expected float32"
print("matmul_log: visible checks passed")

# %% [markdown]
# ## 6. Reconstruction error against numerical precision
#
# `dnnkernels.precision` runs every method of `conv2d` and `matmul` at every precision and
# compares it with the float64 direct result on the same float64 inputs. Through the library
# dispatchers it runs **your** kernels, the ones defined above. What "method at precision"
# means (the docstring of `dnnkernels.precision` has the details):
#
# - **Float formats.** The inputs are standard normal numbers rounded to the format, and the
#   result of *every* torch operation inside the method is rounded to the format as well. So
#   one GEMM or one FFT is one rounding, like mixed-precision hardware that accumulates in a
#   wider register. The operations torch cannot run in half precision on a CPU (`torch.fft`,
#   the SVD) run in float32 and are then rounded (the `computed` column says where).
# - **Integer formats.** The inputs are integers drawn uniformly from $\{-3, \dots, 3\}$, and
#   the arithmetic is $b$ bits wide with wrap-around, like an integer multiply-accumulate unit
#   without saturation. Methods whose transforms are not integers are defined as follows.
#   Winograd runs with its transforms scaled to integers (scale $S = 4$ for F(2×2, 3×3) and
#   $S = 576$ for F(4×4, 3×3)) and divides by $S$ at the end. FFT and SVD run in a float type
#   that holds every integer of the format, and their result is rounded. The log-domain
#   product stores each operand as a sign and an integer exponent,
#   $a \approx \operatorname{sign}(a)\, 2^{\operatorname{round}(\log_2 |a|)}$, so products
#   are shifts.
#
# `precision_table(...)` returns one row per (op, method, precision) with the errors;
# `plot_error_vs_precision(rows, path, op=...)` draws error against precision, one line per
# method and a log scale, and writes a PNG (an error of exactly 0 is drawn on a floor line
# marked "exact (0)"); `to_markdown(rows)` formats the table.
#
# **Q2 (3 points, code and plots).** Compute the reconstruction error of the naive
# definition, torch's own kernel and all your methods (im2col, Winograd with $m = 2$ and
# $m = 4$, FFT, SVD, log) at all seven precisions, with the default sizes and seed 0 (pass
# `progress=False` to hide the progress bar). Plot conv2d and matmul into
# `precision_conv2d.png` and `precision_matmul.png`, show both, and show the table. For Q3,
# also print the error that the rounding of the inputs alone causes in each float format
# (the exact sum of the rounded inputs against the exact sum); for Q4, print which fraction
# of the exact integer results does not fit into int8.

# %% tags=["manual:precision_error_plot:3"]
from IPython.display import Image, Markdown, display

from dnnkernels.precision import (
    FLOAT_PRECISIONS,
    draw_inputs,
    precision_table,
    reconstruction_error,
    reference,
)
from dnnkernels.precision_report import plot_error_vs_precision, to_markdown

### BEGIN SOLUTION
rows = precision_table(
    methods=["naive", "torch", "im2col", "winograd", "winograd4", "fft", "svd", "log"],
    seed=0,
    progress=False,
)
for op in ("conv2d", "matmul"):
    path = plot_error_vs_precision(rows, f"precision_{op}.png", op=op)
    display(Image(filename=str(path)))
display(Markdown(to_markdown(rows, seed=0, int_high=3)))

# Q3: the rounding of the inputs alone (exact arithmetic on the rounded inputs)
x, k = draw_inputs("conv2d", "float", seed=0).values()
for precision in FLOAT_PRECISIONS[:-1]:
    dtype = getattr(torch, precision)
    rounded = F.conv2d(x.to(dtype).double(), k.to(dtype).double())
    error = reconstruction_error(rounded, F.conv2d(x, k))[1]
    unit = torch.finfo(dtype).eps / 2  # u = 2**-p
    print(f"conv2d, inputs rounded to {precision}: error {error:.2e} = {error / unit:.2f} u")

# Q4: how many exact integer results leave the int8 range
for op in ("conv2d", "matmul"):
    exact = reference(op, draw_inputs(op, "int", seed=0))
    outside = (exact.abs() > 127).double().mean().item()
    print(
        f"{op}: exact integer results have standard deviation {exact.std().item():.1f}; "
        f"{100 * outside:.1f} % of them lie outside the int8 range [-128, 127]"
    )
### END SOLUTION
# plot_error_vs_precision switches matplotlib to its file-only Agg backend: switch back to
# inline plots for the cells below
# %matplotlib inline

# %% [markdown]
# **Q3 (3 points). Float formats.** (a) For the naive method, compare the error in each float
# format with the unit roundoff $u$ of that format. What sets the error? (b) Which methods
# stay within a small factor of the naive method in every format, and which lose accuracy,
# by how much? (c) Explain the differences from the arithmetic each method does: the
# transform coefficients of Winograd F(2×2, 3×3) and F(4×4, 3×3), the extra factors and
# products of the SVD method, the length of the sums inside an FFT, the rounding of the
# logarithms and powers in the log domain.

# %% [markdown] tags=["manual:precision_float_discussion:3"]
# *Model answer (numbers from the solution run; your kernels may differ slightly).*
#
# (a) The naive method's error is of the order of the unit roundoff of each format:
# $3.2 \times 10^{-3} \approx 0.8u$ in bfloat16, $4.1 \times 10^{-4} \approx 0.8u$ in float16,
# $9 \times 10^{-8} \approx 1.5u$ in float32 and $4 \times 10^{-16} \approx 4u$ in float64.
# Most of it, in the half formats, is the rounding of the *inputs* to the format, which no
# algorithm can undo: the exact sum of the rounded inputs is already off by $0.6u$ in every
# format. Each input carries a relative error of up to $u$ and each product up to about
# $2u$. The relative error of a sum of many random products is that of a typical product,
# not of the worst one, and it does not shrink with the number of terms: $0.6u$ for a single
# product as for sums of 144 (conv2d) or 128 (matmul) terms. The
# rounding of the products and of the sums adds the rest, which is why float64, whose inputs
# are exact, still shows $4u$. torch and im2col do one GEMM (the harness rounds its
# accumulated result once) and land within a factor 2.5 of the naive loop in every format;
# the difference comes from the order and the width in which the sums are accumulated.
#
# (b) FFT, Winograd F(2×2, 3×3) and the log-domain product stay within about a factor 2 of
# the naive method in every float format. The SVD product is close in the half formats
# (factor 1.4, where the input rounding dominates) but loses a factor 4 to 5 against torch
# where the arithmetic dominates ($9 \times 10^{-7}$ against $2 \times 10^{-7}$ in float32,
# $2 \times 10^{-15}$ in float64). Winograd F(4×4, 3×3) is the clear loser: 5 to 10 times the
# naive error in every format ($2.8 \times 10^{-2}$ in bfloat16, $3.2 \times 10^{-3}$ in
# float16, $9 \times 10^{-7}$ in float32, $2 \times 10^{-15}$ in float64). In bfloat16 that is
# a 3 % error, enough to matter in a network.
#
# (c) Winograd computes the outputs as combinations of transformed tiles. For F(2×2, 3×3)
# the coefficients are $0, \pm 1, \pm 1/2$: the transformed values are about as large as the
# data, and $1/2$ is exact in binary, so the algorithm adds little error. For F(4×4, 3×3),
# $B^\top$ has entries up to 5 and $A^\top$ up to 8. The transformed tiles are several times
# larger than the result, their rounding errors are relative to that larger size, and the
# output transform combines them with large coefficients, so they are amplified. On top,
# $1/6$ and $1/24$ in $G$ are rounded when stored. The SVD method rounds quantities that the
# direct product never forms: the factors $U$, $\Sigma$, $V^\top$ (computed in float32 or
# float64 and rounded to the format) and two or three thin products instead of one. The SVD
# is backward stable, so this costs a constant factor, not a growth with the size. An FFT of
# length $L$ mixes every input into every output through $\log_2 L$ butterfly stages with
# twiddle factors of modulus 1, and its error grows only like $u \log_2 L$. So FFT stays close
# to the direct methods. Its error is spread evenly over all outputs, however, so small
# outputs get a larger *relative* error, which this norm-wise measure hides. The log-domain
# product rounds $\log_2|a|$, the sum of two logarithms and the power $2^{(\cdot)}$. An
# absolute error $\delta$ in an exponent becomes a relative error $\delta \ln 2$ of the
# product, and the absolute rounding error of an exponent grows with its size, so products of
# numbers far from 1 lose more. For standard normal inputs the exponents are small, and the
# loss stays below a factor 1.3.

# %% [markdown]
# **Q4 (3 points). Integer formats.** (a) Why are naive and im2col exact in int16 and int32
# but not in int8? Use the fraction of results outside the int8 range. (b) Which integer
# widths make Winograd exact, and why does F(4×4, 3×3) need more bits than F(2×2, 3×3)? (c) Why
# do FFT and SVD behave like the naive method? (d) Why does the log-domain product have a large
# error at every width, and why is it worse in int8? (e) Which methods would you build into an
# int8 accelerator, with which accumulator?

# %% [markdown] tags=["manual:precision_int_discussion:3"]
# *Model answer (numbers from the solution run).*
#
# (a) Integer multiply-add is exact as long as no result leaves the range. The products of
# two inputs in $\{-3, \dots, 3\}$ are at most 9 in magnitude, but a conv2d output sums
# $C \cdot 9 = 144$ of them (matmul: 128), so the exact results have a standard deviation of
# about 48 (45). 1.0 % of the conv2d results and 0.6 % of the matmul results lie outside
# $[-128, 127]$, and each of those wraps around by 256. These few wrapped results are enough
# to make the relative Frobenius error 0.54 (conv2d) and 0.43 (matmul) in int8: one error of
# 256 weighs as much as 28 typical results. int16 and int32 hold every result, and the error
# is exactly 0.
#
# (b) Integer Winograd computes $S y$ (scale $S = 4$ for F(2×2, 3×3), $576 = 24^2$ for
# F(4×4, 3×3), from the fractions in $G$), and the intermediate values of the transforms
# are larger still. F(2×2, 3×3) is exact in int16 and int32, but in int8 $4y$ overflows for
# most outputs (error about 1, the result is garbage). F(4×4, 3×3) needs $576\,|y| < 2^{15}$,
# that is $|y| < 57$, in int16, which most outputs break (error 1.2), so it is exact only in
# int32. Each step from F(2, 3) to F(4, 3) costs about $\log_2(576/4) \approx 7$ more bits.
#
# (c) FFT and SVD compute in float32 (float64 for int32) and round the result to the
# nearest integer. Their float errors are far below 0.5, so the rounding lands on the exact
# integer and the only error left is the same int8 wrap-around as for the naive method
# (0.54 and 0.43), and zero in int16 and int32.
#
# (d) With an integer exponent, each operand is rounded to the nearest power of two:
# $3 \to 4$ (since $\log_2 3 \approx 1.58$ rounds to 2) and $\pm 2$, $\pm 1$ are exact.
# A product such as $3 \cdot 3 = 9$ becomes 16. This representation error, about 0.54, does
# not depend on the accumulator width, so int16 and int32 show the same error. In int8 the
# rounded-up products make the sums larger and more of them wrap around (error 1.15).
#
# (e) Build direct (im2col) GEMMs with int8 × int8 products and a wide (int32) accumulator,
# which is what int8 hardware does: exact whenever the exact result fits. Winograd
# F(2×2, 3×3) works too, at the price of a few more bits for the transformed tiles and the
# accumulator (the scaled output $4y$ alone needs 2 more bits than $y$). F(4×4, 3×3), FFT and
# SVD do not suit 8-bit arithmetic, and a log-domain format needs fraction bits in its
# exponents (section 7) to be accurate.

# %% [markdown]
# ## 7. Extra credit: approximate log-domain addition (`precision_matmul_log_approx`)
#
# *Optional, 4 bonus points: 2 for the kernel (autograded), 1 for Q5, 1 for Q6.* If you skip
# it, the cells of this section stop with `NotImplementedError`. That is expected; the rest
# of the notebook is complete without them.
#
# `matmul_log` converts every product back to the linear domain before adding, so the
# hardware needs an exponential per product. NVIDIA's patent application US 2021/0056446
# avoids this. Store each value as a sign and a fixed-point base-2 logarithm with $f$
# fraction bits, $e = \operatorname{round}(2^f \log_2|a|)$. A product's exponent is then an
# integer $q = e_a + e_b$, counted in units of $2^{-f}$. Split it into a quotient and a
# remainder,
#
# $$q = 2^f Q + r,\quad 0 \le r < 2^f, \qquad
#   2^{q / 2^f} = 2^{Q} \cdot 2^{r / 2^f},$$
#
# so that each product is a power of two $2^Q$ (a shift) times one of only $2^f$ constants.
# Accumulate the shifted terms separately for each remainder $r$ (exact integer additions),
# and multiply once per remainder at the end by a lookup table,
#
# $$C_{ij} = \sum_{r=0}^{2^f - 1} \mathrm{LUT}[r]\; P_{ij}[r], \qquad
#   P_{ij}[r] = \sum_{k:\ r_k = r} \pm 2^{Q_k}, \qquad \mathrm{LUT}[r] = 2^{r / 2^f}.$$
#
# Everything after the first rounding is exact, so the result is exactly the product of the
# quantised matrices, and the only approximation is that rounding. An exponent rounded to
# $2^{-f}$ is off by at most $2^{-(f+1)}$, which is a relative error of at most
# $2^{2^{-(f+1)}} - 1 \approx 0.35 \cdot 2^{-f}$ per factor.

# %% tags=["answer:precision_matmul_log_approx"]
# generated from src/dnnkernels/matmul.py: matmul_log_approx

# %% tags=["check:precision_matmul_log_approx"]
# Hand-computed: with f = 0, 3 is stored as 2**round(log2 3) = 4, so 3 * 3 becomes 16; with
# f = 1 it is 2**(3/2), and 2**(3/2) * 2**(3/2) = 8.
three = torch.tensor([[3.0]], dtype=torch.float64)
for f, expected in [(0, 16.0), (1, 8.0)]:
    got = matmul_log_approx(three, three, frac_bits=f)
    assert torch.allclose(got, torch.tensor([[expected]], dtype=torch.float64)), (
        f"frac_bits={f}: 3 * 3 gave {got.item()}, expected {expected}"
    )

# Powers of two have integer exponents: exact for every f.
powers = torch.tensor([[1.0, -2.0, 0.0], [0.5, 4.0, -0.25]], dtype=torch.float64)
for f in (0, 3, 10):
    got = matmul_log_approx(powers, powers.T, frac_bits=f)
    assert torch.equal(got, powers @ powers.T), (
        f"frac_bits={f}: powers of two must be exact, got {got.tolist()}"
    )


# The result is exactly the product of the quantised matrices (with zeros and signs) ...
def quantised(M, f):
    """sign(M) * 2**(round(2**f * log2|M|) / 2**f), zeros kept (float64)."""
    e = torch.round(torch.log2(M.abs()) * 2**f) / 2**f
    return torch.where(M == 0, torch.zeros_like(M), torch.sign(M) * torch.exp2(e))


A = torch.randn(9, 17, dtype=torch.float64)
B = torch.randn(17, 6, dtype=torch.float64)
A[2, 3] = 0.0
for f in (0, 3, 8):
    got = matmul_log_approx(A, B, frac_bits=f)
    expected = quantised(A, f) @ quantised(B, f)
    assert got.shape == (9, 6) and got.dtype == torch.float64, (got.shape, got.dtype)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12), (
        f"frac_bits={f}: differs from the product of the quantised matrices by up to "
        f"{(got - expected).abs().max().item():.3g}"
    )

# ... so, for positive inputs, every entry is within the rounding bound of A @ B.
A_pos, B_pos = A.abs() + 0.1, B.abs() + 0.1
for f in (2, 6):
    delta = 2.0 ** (2.0 ** -(f + 1)) - 1  # largest relative error of one quantised factor
    got = matmul_log_approx(A_pos, B_pos, frac_bits=f)
    bound = ((1 + delta) ** 2 - 1) * (A_pos @ B_pos)
    assert bool(((got - A_pos @ B_pos).abs() <= bound * (1 + 1e-9)).all()), (
        f"frac_bits={f}: an entry is further from A @ B than the exponent rounding allows"
    )
got = matmul_log_approx(A.float(), B.float(), frac_bits=4)
assert got.dtype == torch.float32, f"float32 input gave dtype {got.dtype}, expected float32"
print("matmul_log_approx: visible checks passed")

# %% [markdown]
# **Q5 (1 bonus point, code and plot).** Measure the reconstruction error of
# `matmul_log_approx` against the number of fraction bits $f = 0, 1, \dots, 10$ for inputs in
# each float format (bfloat16, float16, float32, float64), with the matmul inputs of
# section 6 (`run_method("matmul", "log_approx", precision, inputs, {"frac_bits": f})`).
# Plot the errors on a log scale into `precision_log_approx.png`, next to
#
# - the error of the naive method in each format (a horizontal line: what the format alone
#   costs), and
# - the estimate $\varepsilon \approx \ln 2 \cdot 2^{-f} / \sqrt{6}$. It holds if both
#   exponent rounding errors are uniform on $[-2^{-(f+1)}, 2^{-(f+1)}]$ and independent:
#   their sum has variance $2 \cdot 4^{-f} / 12$, and a relative error $\ln 2$ times that sum
#   carries through to the norm of $C$.

# %% tags=["manual:precision_log_approx_plot:1"]
from dnnkernels.precision import run_method

### BEGIN SOLUTION
inputs = draw_inputs("matmul", "float", seed=0)
exact = reference("matmul", inputs)
bits = list(range(11))
naive_rows = precision_table(
    ops=("matmul",), methods=["naive"], precisions=FLOAT_PRECISIONS, seed=0, progress=False
)
naive_error = {r["precision"]: r["rel_fro"] for r in naive_rows}
errors = {
    precision: [
        reconstruction_error(
            run_method("matmul", "log_approx", precision, inputs, {"frac_bits": f}), exact
        )[1]
        for f in bits
    ]
    for precision in FLOAT_PRECISIONS
}
estimate = [math.log(2) * 2.0**-f / math.sqrt(6) for f in bits]

fig, ax = plt.subplots(figsize=(7, 4.5))
for index, (precision, marker) in enumerate(zip(FLOAT_PRECISIONS, "osD^", strict=True)):
    color = f"C{index}"
    label = f"log_approx, {precision} inputs"
    ax.semilogy(bits, errors[precision], marker=marker, color=color, alpha=0.8, label=label)
    if naive_error[precision] > 1e-5:  # float32 and float64 lie far below the axis
        ax.axhline(naive_error[precision], color=color, linestyle=":", linewidth=1)
        ax.annotate(
            f"naive matmul, {precision}",
            (bits[0], naive_error[precision]),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=8,
            color=color,
        )
ax.semilogy(bits, estimate, "k--", label=r"estimate $\ln 2 \cdot 2^{-f} / \sqrt{6}$")
ax.set_ylim(1e-5, 1)
ax.set_xlabel("fraction bits f of the log-domain exponents")
ax.set_ylabel("relative Frobenius error vs float64")
ax.set_title("Approximate log-domain matmul: error against fraction bits")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8, loc="upper right")
fig.savefig("precision_log_approx.png", dpi=120, bbox_inches="tight")
plt.show()
print("f  " + "".join(f"{p:>10}" for p in FLOAT_PRECISIONS) + "  estimate")
for f in bits:
    measured = "".join(f"{errors[p][f]:10.2e}" for p in FLOAT_PRECISIONS)
    print(f"{f:<3}{measured}{estimate[f]:10.2e}")
### END SOLUTION

# %% [markdown]
# **Q6 (1 bonus point).** Explain your implementation in a few sentences (how you quantise,
# split and accumulate, and what is exact), then read the plot. How does the error depend on
# $f$, and does the estimate hold? From which $f$ on does the input format, rather than the
# number of fraction bits, limit the accuracy, for each format? How many fraction bits would
# you choose for bfloat16 inputs?

# %% [markdown] tags=["manual:precision_log_approx_discussion:1"]
# *Model answer.* I quantise every nonzero entry to the integer exponent
# $e = \operatorname{round}(2^f \log_2|a|)$ and keep its sign (zeros get sign 0 and add
# nothing). For a block of rows I form all exponent sums $q = e_a + e_b$ at once, split them
# into `Q = q >> f` and `r = q & (2**f - 1)`, and add $\pm 2^{Q}$ (`ldexp`) into one
# of $2^f$ bins per output with `scatter_add_`. At the end I multiply the bins by
# $\mathrm{LUT}[r] = 2^{r/2^f}$ and sum them. The shifts and sums are exact in float64 at
# these sizes, so the result equals the product of the quantised matrices (the check cell
# confirms it).
#
# The error halves with every extra fraction bit: from 0.3 at $f = 0$ to $2.6 \times 10^{-4}$
# at $f = 10$ (float64 inputs). It follows the estimate $\ln 2 \cdot 2^{-f} / \sqrt 6$ within
# 7 % at every $f$, so the model of uniform, independent exponent rounding errors is right.
# With float64 and float32 inputs the curve keeps falling down to $f = 10$, because the
# format's own error ($10^{-16}$, $10^{-7}$) is far below. With float16 inputs it leaves the
# estimate at $f = 9$ and reaches the naive float16 error ($4 \times 10^{-4}$) at $f = 10$.
# With bfloat16 inputs it leaves the estimate at $f = 6$ and settles at $3 \times 10^{-3}$,
# the naive bfloat16 level, from $f = 8$ on. Beyond these points the rounding of the inputs
# dominates, and more fraction bits buy nothing. For bfloat16 inputs I would choose 7
# fraction bits ($3.8 \times 10^{-3}$, within 25 % of the floor) and a 128-entry lookup
# table. More bits cost table size and accumulators without improving accuracy.
