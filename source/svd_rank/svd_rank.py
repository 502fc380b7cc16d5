# %% [markdown]
# # Assignment 2 (svd_rank): how much of a matrix does a low rank keep, and what does it save?
#
# A matrix multiplied by a rank-$r$ factorization costs less than the full product, and the
# truncated SVD gives the most accurate factorization of each rank. How much accuracy a given
# rank keeps depends on the matrix. Noise has no low-rank structure, a photograph has some,
# and a trained layer lies somewhere between. This assignment measures both sides of the
# trade.
#
# **Goals.** By the end of this assignment you will have
#
# 1. computed the reconstruction error of the best rank-$k$ approximation for every $k$ from
#    the singular values alone (`low_rank_errors`), and counted the arithmetic of a factored
#    product (`factored_matmul_flops`);
# 2. plotted error against rank for six kinds of matrices: random, low-rank plus noise, a
#    photograph, a batch of MNIST images, the trained weights of an MLP layer and its
#    activations. For each you answer four questions: the trend, how fast the error changes,
#    where the knee is, and what that says about the data;
# 3. measured the FLOPs and the actual speed-up of a factored product against the rank, with
#    your own `matmul_svd` from the precision assignment.
#
# **Questions and points.** 2 programming exercises and 5 hand-graded questions, 20 points.
#
# | section | what you hand in | graded | points |
# |---|---|---|---|
# | 1 | `low_rank_errors` | automatically | 3 |
# | 2 | `factored_matmul_flops` | automatically | 2 |
# | 3 | Q1: error against rank, one plot per family (code and plots) | by hand | 3 |
# | 3 | Q2–Q4: the four questions for each family, in three pairs (prose) | by hand | 2 + 2 + 2 |
# | 4 | Q5: FLOPs, speed-up and error against rank (code and plot) | by hand | 3 |
# | 4 | Q6: what the speed-up measurements show (prose) | by hand | 3 |
#
# **How to work.** Each exercise cell already holds the signature and the docstring of the
# function to write (shapes, dtypes, formula); replace `raise NotImplementedError(...)` with
# your code and run the cell. The cell after it runs visible checks; graders run more, on
# other inputs. Section 4 calls `dnnkernels.matmul.matmul(..., method="svd")`, which runs
# the `matmul_svd` of your **saved** precision notebook (`precision/precision.ipynb`): finish
# and save that one first.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

torch.set_num_threads(1)  # one thread: steadier timings on a shared machine

# %%
_ = torch.manual_seed(0)  # the visible checks draw reproducible inputs

# %% [markdown]
# ## Background: the truncated SVD
#
# Every real matrix $M \in \mathbb{R}^{m \times n}$ has a singular value decomposition
#
# $$M = U \Sigma V^\top = \sum_{i=1}^{p} \sigma_i\, u_i v_i^\top, \qquad p = \min(m, n),$$
#
# with orthonormal columns $u_i$ of $U$ and $v_i$ of $V$, and singular values
# $\sigma_1 \ge \sigma_2 \ge \dots \ge \sigma_p \ge 0$. Keeping the first $k$ terms gives the
# truncated SVD $M_k = \sum_{i \le k} \sigma_i u_i v_i^\top$. By the Eckart–Young theorem no
# matrix of rank $k$ is closer to $M$ in the Frobenius norm. Since the terms are orthogonal,
# its error needs only the singular values:
#
# $$\lVert M - M_k \rVert_F^2 = \sum_{i > k} \sigma_i^2, \qquad
#   \varepsilon(k) = \frac{\lVert M - M_k \rVert_F}{\lVert M \rVert_F}
#   = \sqrt{\frac{\sigma_{k+1}^2 + \dots + \sigma_p^2}{\sigma_1^2 + \dots + \sigma_p^2}} .$$
#
# $\sigma_i^2 / \sum_j \sigma_j^2$ is the share of the matrix's "energy" along direction $i$.
# So the error curve is the square root of the energy left out, and its shape is the shape
# of the singular value spectrum. A quickly falling spectrum means a few directions hold
# most of the matrix; a flat spectrum means none does.

# %% [markdown]
# ## 1. Relative error against rank (`svd_rank_errors`)
#
# Compute $\varepsilon(k)$ for every $k$ in `ranks` from the singular values
# (`torch.linalg.svdvals`), in float64, without rebuilding any $M_k$. The left-out energy
# $\sum_{i>k} \sigma_i^2$ is a sum over the *tail*. Summing it from the small end (a reversed
# cumulative sum) is more accurate than subtracting from the total, where the tail is tiny.

# %% tags=["answer:svd_rank_errors"]
# generated from src/dnnkernels/lowrank.py: low_rank_errors

# %% tags=["check:svd_rank_errors"]
# A hand-computed case: diag(3, 4) has singular values 4 and 3, and norm 5.
got = low_rank_errors(torch.diag(torch.tensor([3.0, 4.0])), [1, 2])
assert got.dtype == torch.float64 and got.shape == (2,), (
    f"got dtype {got.dtype} and shape {tuple(got.shape)}, expected float64 of shape (2,)"
)
assert torch.allclose(got, torch.tensor([0.6, 0.0], dtype=torch.float64), atol=1e-12), (
    f"diag(3, 4): got {got.tolist()}, expected [3/5, 0] = [0.6, 0.0]"
)

# Against the rebuilt approximations, with ranks in any order and repeated.
M = torch.randn(30, 20, dtype=torch.float64)
U, S, Vh = torch.linalg.svd(M, full_matrices=False)
ranks = [1, 5, 13, 20, 5]
expected = torch.tensor(
    [
        (torch.linalg.norm(M - U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]) / torch.linalg.norm(M)).item()
        for r in ranks
    ],
    dtype=torch.float64,
)
got = low_rank_errors(M, ranks)
assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12), (
    f"ranks {ranks}: got {[round(v, 6) for v in got.tolist()]}, "
    f"expected {[round(v, 6) for v in expected.tolist()]}"
)

# A float32 matrix still gives float64 errors; the errors never grow with the rank.
got = low_rank_errors(M.float(), list(range(1, 21)))
assert got.dtype == torch.float64, f"float32 input gave dtype {got.dtype}, expected float64"
assert bool((got[1:] <= got[:-1]).all()), "the error must not grow with the rank"
print("low_rank_errors: visible checks passed")

# %% [markdown]
# ## 2. FLOPs of a factored product (`svd_rank_flops`)
#
# Multiplying a $(p, q)$ by a $(q, s)$ matrix takes $p q s$ multiply-adds, $2pqs$ FLOPs. With
# $A \approx U' V_r^\top$, where $U' = U_r \Sigma_r$ is $(m, r)$ (the singular values folded
# in once, ahead of time) and $V_r^\top$ is $(r, k)$, the product with $B$ $(k, n)$ can be
# taken in two orders:
#
# $$\underbrace{2mkn}_{\text{dense } AB} \qquad
#   \underbrace{2rkn + 2mrn}_{U' (V_r^\top B)} \qquad
#   \underbrace{2mrk + 2mkn}_{(U' V_r^\top) B,\ \text{rebuilds } A} .$$
#
# The factored cost is the cheaper order. Right first is cheaper than dense when
# $r < \frac{mk}{m + k}$. With $m \le k$ that bound is $m \cdot \frac{k}{m + k}$, between half
# the smaller dimension (for a square $A$) and the smaller dimension: for the $512 \times 784$
# weight of the MLP's `fc1` it is about 310, where half of 512 is 256. Rebuilding $A$ first
# never beats the dense product, but it can beat the other order when $n$ is large.

# %% tags=["answer:svd_rank_flops"]
# generated from src/dnnkernels/lowrank.py: factored_matmul_flops


# %% tags=["check:svd_rank_flops"]
def gemm(p, q, s):
    """FLOPs of a (p, q) @ (q, s) product."""
    return 2 * p * q * s


got = factored_matmul_flops(1024, 1024, 1024, 64)
assert got == (268_435_456, 2_147_483_648), (
    f"m = k = n = 1024, rank 64: got {got}, expected (268435456, 2147483648) (the docstring)"
)
got = factored_matmul_flops(300, 200, 50, 10)  # right first is cheaper
expected = (gemm(10, 200, 50) + gemm(300, 10, 50), gemm(300, 200, 50))
assert got == expected, f"(300, 200, 50), rank 10: got {got}, expected {expected} (U' (Vh B))"
got = factored_matmul_flops(10, 10, 1000, 10)  # rebuilding A first is cheaper here
expected = (gemm(10, 10, 10) + gemm(10, 10, 1000), gemm(10, 10, 1000))
assert got == expected, (
    f"(10, 10, 1000), rank 10: got {got}, expected {expected}: take the cheaper order"
)
got = factored_matmul_flops(7, 5, 3, 2)
assert all(type(v) is int for v in got), (
    f"got types {[type(v).__name__ for v in got]}, expected int"
)
print("factored_matmul_flops: visible checks passed")

# %% [markdown]
# ## 3. Error against rank for six kinds of matrices
#
# `dnnkernels.matrix_families.matrix_family(name, ...)` returns one matrix of each kind
# (float32, the same every time):
#
# | name | shape | what it is |
# |---|---|---|
# | `random` | 1024 × 1024 | independent standard normal entries |
# | `lowrank_noise` | 1024 × 1024 | $G_1 G_2 / \sqrt{32}$ (rank 32, variance 1) plus $0.05\,N$ |
# | `photo` | 600 × 512 | grey-scale photograph of Grace Hopper (matplotlib), pixels in [0, 1] |
# | `mnist_batch` | 1000 × 784 | 1000 MNIST test images, one per row, pixels in [0, 1] |
# | `mlp_weight` | 512 × 784 | weight of the first layer `fc1` of the trained MLP 784-512-128-10 |
# | `mlp_activations` | 1000 × 512 | $\mathrm{relu}(\mathrm{fc1}(x))$ of those images (into `fc2`) |
#
# The next cell loads them and shows them as images (students need not change it).

# %%
from dnnkernels.data import load_mnist
from dnnkernels.matrix_families import FAMILIES, matrix_family
from dnnkernels.models import load_trained

mnist = load_mnist()
mlp = load_trained("mlp")
matrices = {name: matrix_family(name, model=mlp, data=mnist) for name in FAMILIES}

fig, axes = plt.subplots(1, len(FAMILIES), figsize=(3 * len(FAMILIES), 3))
for ax, (name, matrix) in zip(axes, matrices.items(), strict=True):
    shown = matrix[:512, :512].numpy()  # the top-left corner of the larger ones
    limit = np.quantile(np.abs(shown), 0.99)  # a few outliers would wash out the colours
    signed = shown.min() < 0
    ax.imshow(shown, cmap="RdBu_r" if signed else "gray", vmin=-limit if signed else 0, vmax=limit)
    ax.set_title(f"{name}\n{tuple(matrix.shape)}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.savefig("svd_rank_matrices.png", dpi=100, bbox_inches="tight")
plt.show()

# %% [markdown]
# **Q1 (3 points, code and plots).** For each family, compute $\varepsilon(k)$ for every
# rank $k = 1, \dots, \min(m, n)$ with your `low_rank_errors`, and plot it against $k$: one
# figure per family, log scale for the error, saved as `errors_<name>.png` and shown. The
# error is exactly 0 at full rank, which a log axis cannot show: leave that point out. Mark
# the ranks at which the error first falls to 10 % and to 1 %. Then print one line per
# family: its shape and the smallest ranks that reach 50 %, 10 % and 1 % error, also as a
# fraction of the full rank.


# %% tags=["manual:svd_rank_error_plots:3"]
### BEGIN SOLUTION
def first_rank(errors, level):
    """The smallest rank whose error is at most ``level`` (errors[i] is rank i + 1)."""
    return int(torch.nonzero(errors <= level)[0, 0]) + 1


curves = {}
for name, matrix in matrices.items():
    full = min(matrix.shape)
    ranks = list(range(1, full + 1))
    errors = low_rank_errors(matrix, ranks)
    curves[name] = errors
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.semilogy(ranks[:-1], errors[:-1].numpy(), color="C0")
    marks = [(f"{level:.0%}", level, first_rank(errors, level)) for level in (0.1, 0.01)]
    if errors[-2] < 1e-10:  # rank-deficient: below this the error is rounding noise
        marks.append(("exact (rank)", 1e-4, first_rank(errors, 1e-10)))
    for (label, level, r), color in zip(marks, ["C1", "C3", "C2"], strict=False):
        ax.axvline(r, color=color, linestyle=":", linewidth=1)
        if level > 1e-4:
            ax.axhline(level, color=color, linestyle=":", linewidth=1)
        right = r > 0.75 * full  # keep the label inside the axes
        ax.annotate(
            f"{label} at k = {r}",
            (r, level),
            xytext=(-4 if right else 4, 4),
            textcoords="offset points",
            ha="right" if right else "left",
            color=color,
            fontsize=8,
        )
    ax.set_xlim(0, full)
    ax.set_ylim(1e-4, 1.5)  # smaller errors (rounding level) fall off the bottom
    ax.set_xlabel("rank k")
    ax.set_ylabel(r"$\|M - M_k\|_F \, / \, \|M\|_F$")
    ax.set_title(f"{name} ({matrix.shape[0]} x {matrix.shape[1]})")
    ax.grid(True, which="major", alpha=0.3)
    fig.savefig(f"errors_{name}.png", dpi=100, bbox_inches="tight")
    plt.show()

print(f"{'family':<16}{'shape':>10}  rank for 50 % / 10 % / 1 % error (fraction of full rank)")
for name, errors in curves.items():
    full = len(errors)
    found = [first_rank(errors, level) for level in (0.5, 0.1, 0.01)]
    text = " / ".join(f"{r} ({r / full:.0%})" for r in found)
    if errors[-2] < 1e-10:
        text += f"; rank {first_rank(errors, 1e-10)} of {full}"
    shape = "x".join(map(str, matrices[name].shape))
    print(f"{name:<16}{shape:>10}  {text}")
### END SOLUTION

# %% [markdown]
# For each family, answer four questions (a few sentences each; use your plots and numbers):
# **(i)** the trend: how does the error behave as the rank grows? **(ii)** how fast does it
# change, and where is it fast or slow? **(iii)** is there a knee, and at which rank? If
# there is none, why not? **(iv)** what does this say about the data?
#
# **Q2 (2 points).** `random` and `lowrank_noise`.

# %% [markdown] tags=["manual:svd_rank_synthetic:2"]
# *Model answer (numbers from the solution run).*
#
# **random.** (i) The error falls from 1 to 0, but very slowly at first: rank 1 keeps 0.4 %
# of the energy (error 0.998), and rank 512, half of the full rank, still leaves an error of
# 0.33. (ii) The decrease speeds up as $k$ grows: 50 % error needs $k = 350$, 10 % needs 790
# (77 % of the full rank), 1 % needs 973 (95 %), and the curve plunges only in the last few
# percent of the ranks. (iii) There is no knee. The singular values of a Gaussian matrix
# spread smoothly over an interval (the quarter-circle law) without a gap, so no rank
# separates important from unimportant directions. (iv) Independent noise has no structure
# to compress: no direction carries much more than its share of the energy, and a low-rank
# approximation of it is simply bad.
#
# **lowrank_noise.** (i) The error falls steeply up to rank 32, then decreases slowly from
# 0.05, like the random matrix's curve scaled down to the noise level. (ii) Between
# $k = 10$ (error 0.77) and $k = 32$ (0.049) each added direction removes a large share of
# the energy; after 32 each one removes only a sliver of the noise (0.045 at 64, 0.017 at
# 512). (iii) A sharp knee at exactly $k = 32$, the rank of the product $G_1 G_2$. (iv) The
# matrix is a rank-32 signal plus noise. The error just after the knee is the noise level:
# the noise has variance $0.05^2$ against 1 for the signal, so its share of the norm is
# $\sqrt{0.0025 / 1.0025} \approx 0.05$. The best rank-32 approximation keeps the signal and
# drops almost all of the noise, so truncation also denoises. Beyond the knee, extra rank
# only fits noise.

# %% [markdown]
# **Q3 (2 points).** `photo` and `mnist_batch`.

# %% [markdown] tags=["manual:svd_rank_images:2"]
# *Model answer (numbers from the solution run).*
#
# **photo.** (i) The error drops fast over the first ranks and then keeps falling steadily on
# the log scale. (ii) Rank 1 already leaves only 0.52 (it captures the overall brightness
# pattern, since all pixels are positive); 10 % needs rank 57 (11 % of the full rank), but
# 1 % needs 307 (60 %). Each tenfold drop costs several times more rank than the previous
# one. (iii) There is no sharp knee, but a gradual bend in the first 20 to 50 ranks: after
# that, the curve is nearly a straight line on the log axis. (iv) A natural image is
# strongly correlated from row to row, so a few dozen directions reproduce its large-scale
# content (the face, the uniform, the dark background). The fine detail (texture, edges,
# noise of the camera and of the JPEG compression) is spread over many small singular
# values. A rank-50 version is recognisable; a faithful one needs hundreds.
#
# **mnist_batch.** (i) The error falls steadily, then drops straight to zero at rank 582.
# (ii) Rank 1 (the average digit, all pixels positive) leaves 0.75; 50 % needs rank 15,
# 10 % needs 228 and 1 % needs 489. That is slower than for the photograph. (iii) There is no
# knee in the middle of the curve, only the cliff at $k = 582$: the matrix has rank 582, not
# 784. 182 border pixels are 0 in all 1000 images and give empty columns, and a few rarely
# used pixels add columns that depend on each other (36 pixels are lit in a single image,
# and those images are only 22). (iv) Handwritten digits share strokes and positions, so a
# few dozen directions hold half of the energy, but each image has its own details, and no
# small number of directions describes them all. The exact rank is set by the pixels that
# are ever used, not by the number of images.

# %% [markdown]
# **Q4 (2 points).** `mlp_weight` and `mlp_activations`.

# %% [markdown] tags=["manual:svd_rank_network:2"]
# *Model answer (numbers from the solution run).*
#
# **mlp_weight.** (i) After a quick drop over the first 20 to 30 ranks (0.98 at rank 1,
# 0.66 at rank 32), the error falls slowly and steadily, much like that of a random matrix.
# (ii) 50 % needs rank 103 (20 % of the full rank 512), 10 % needs 420 (82 %) and 1 % needs
# 510: the fast part is only at the very end. (iii) No sharp knee, only a soft bend around
# rank 20 to 30. The singular values decrease smoothly from 4.6 to 0.12 without a gap.
# (iv) The weight is far from low rank in the Frobenius sense: it is a random initialisation
# plus what training added. Training strengthened a few dozen directions (hence the first
# drop, faster than for a Gaussian matrix of the same shape), but much of the matrix is
# still the random initialisation. For example, the 182 columns of the border pixels, which
# are 0 in every training image, never receive a gradient and keep their initial values.
# The Frobenius error of the weight is not what matters for the network, though: section 4
# shows that the *product* with real images loses far less (0.13 at rank 64, against 0.57
# for the weight).
#
# **mlp_activations.** (i) The error falls fast over the first ranks, then steadily, and
# drops to zero at rank 496. (ii) Rank 1 leaves 0.81; 50 % needs rank 11, 10 % needs 223 and
# 1 % needs 478. (iii) No knee in the middle, and a cliff at $k = 496$: 16 of the 512 units
# never fire on these images (columns of zeros), so the rank is 496. (iv) After the ReLU,
# 60 % of the activations are 0 and all are non-negative, so one direction (the average
# activation pattern) holds a third of the energy, and a dozen directions hold half of it.
# Like the images they come from, the activations have structure but no small exact rank.
# They also change with every batch, so factoring them would cost an SVD per batch
# (section 4); their spectrum matters because it tells which input directions the next
# layer actually sees.

# %% [markdown]
# ## 4. What a low rank saves: FLOPs and measured speed-up
#
# Take the first layer of the MLP: $W$ = `fc1.weight` $(512, 784)$, applied to a batch of
# 256 normalised test images stored as columns, $X$ $(784, 256)$, so the product is
# $W X$ $(512, 256)$. For a rank $r$ there are three ways to compute (an approximation of)
# it:
#
# - **dense**: $W X$, $2 m k n$ FLOPs;
# - **factored, factors precomputed**: $U' (V_r^\top X)$ with $U' = U_r \Sigma_r$ and
#   $V_r^\top$ computed once, ahead of time. This is what an SVD layer does at inference,
#   since a weight does not change between batches;
# - **your `matmul_svd` end to end**: `matmul(W, X, method="svd", rank_A=r)`, which
#   computes the SVD of $W$ at every call and then multiplies in factored form.
#
# Time them with `torch.utils.benchmark`, on one thread. `fastest_times(fns)` (next cell)
# times each callable in many short samples of about 2 ms, in a few interleaved rounds, and
# returns the shortest time per call of any sample. On a shared machine other jobs can only
# *add* time to a run, never remove it, so the fastest sample is the best estimate of what
# the computation itself costs. (The median answers another question: how long it
# typically takes on the busy machine.) Interleaving the rounds exposes the dense and the
# factored product to the same conditions. The speed-up is `time dense / time other`, above 1
# when the other is faster.
#
# The next cell defines `fastest_times`, prepares $W$ and $X$ and checks that your
# `matmul_svd` can be reached (students need not change it).

# %%
from torch.utils import benchmark

from dnnkernels.data import normalize
from dnnkernels.matmul import matmul, truncated_svd


def fastest_times(fns, rounds=5, samples=5, sample_seconds=2e-3):
    """Shortest seconds per call of each callable in ``fns`` (a dict name -> callable).

    A sample is one ``Timer.timeit(number)`` of torch.utils.benchmark (one thread), with
    ``number`` calls chosen from a first single call so that a sample takes about
    ``sample_seconds``: short samples are often not interrupted by other jobs. Each of
    ``rounds`` rounds takes ``samples`` samples of every callable in turn; the result is the
    smallest time per call of all samples, the first single call included.
    """
    timers = {
        name: benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=1)
        for name, fn in fns.items()
    }
    best = {name: timer.timeit(1).mean for name, timer in timers.items()}  # one call each
    calls = {name: max(1, int(sample_seconds / best[name])) for name in fns}  # per sample
    for _ in range(rounds):
        for name, timer in timers.items():
            for _ in range(samples):
                best[name] = min(best[name], timer.timeit(calls[name]).mean)
    return best


W = mlp.fc1.weight.detach().contiguous()  # (512, 784) float32
X = normalize(mnist.test_images[:256]).reshape(256, -1).T.contiguous()  # (784, 256) float32
print(f"W {tuple(W.shape)}, X {tuple(X.shape)}, {W.dtype}")

try:  # your matmul_svd, from precision/precision.ipynb (saved)
    matmul(torch.eye(2), torch.eye(2), method="svd", rank_A=1)
    have_matmul_svd = True
except NotImplementedError as error:
    have_matmul_svd = False
    print(f"{error}\n-> The end-to-end timing of matmul_svd is skipped until it is implemented.")

# %% [markdown]
# **Q5 (3 points, code and plot).** For the ranks $r$ = 4, 8, 16, 32, 64, 128, 256, 384 and
# 512, compute:
#
# - the FLOPs of the factored and the dense product (`factored_matmul_flops`) and their
#   ratio;
# - the measured speed-up of the factored product with precomputed factors (compute the SVD
#   once with `truncated_svd`, in float64, then slice and convert the factors to contiguous
#   float32 before timing);
# - the measured speed-up of your `matmul_svd` end to end (if `have_matmul_svd`; it is slow,
#   so at the ranks 4, 64 and 512 only);
# - the relative error of the weight, $\lVert W - W_r \rVert_F / \lVert W \rVert_F$, and of
#   the product, $\lVert W_r X - W X \rVert_F / \lVert W X \rVert_F$.
#
# Plot the FLOP ratio and both speed-ups against the rank (log–log, with a line at 1 and a
# mark at the break-even rank $mk/(m+k)$), and both errors against the rank, side by side,
# into `svd_rank_speedup.png`. Print the numbers as a table. Keep the timing short: the
# default `fastest_times` for the dense and factored products, and one round of one sample
# (`rounds=1, samples=1`) for the slow end-to-end calls, compared with the same dense time.

# %% tags=["manual:svd_rank_speedup_plot:3"]
### BEGIN SOLUTION
ranks = [4, 8, 16, 32, 64, 128, 256, 384, 512]
m, k = W.shape
n = X.shape[1]
exact = W @ X
U, S, Vh = truncated_svd(W.double())  # once, at full rank: the factors of every rank below
weight_error = low_rank_errors(W, ranks)
table = []
for r, w_error in zip(ranks, weight_error.tolist(), strict=True):
    flops_factored, flops_dense = factored_matmul_flops(m, k, n, r)
    left = (U[:, :r] * S[:r]).float().contiguous()  # U' = U_r diag(S_r), (m, r)
    right = Vh[:r].float().contiguous()  # Vh_r, (r, k)
    times = fastest_times(
        {"dense": lambda: W @ X, "factored": lambda left=left, right=right: left @ (right @ X)}
    )
    row = {
        "rank": r,
        "flop_ratio": flops_dense / flops_factored,
        "speedup": times["dense"] / times["factored"],
        "weight_error": w_error,
        "product_error": (
            torch.linalg.norm(left @ (right @ X) - exact) / torch.linalg.norm(exact)
        ).item(),
        "speedup_matmul_svd": math.nan,
    }
    if have_matmul_svd and r in (4, 64, 512):  # slow, and hardly depends on the rank
        svd = fastest_times(
            {"svd": lambda r=r: matmul(W, X, method="svd", rank_A=r)}, rounds=1, samples=1
        )
        row["speedup_matmul_svd"] = times["dense"] / svd["svd"]
    table.append(row)

break_even = m * k / (m + k)
fig, (ax_speed, ax_error) = plt.subplots(1, 2, figsize=(12, 4.2))
ax_speed.loglog(ranks, [t["flop_ratio"] for t in table], "k--", label="FLOPs: dense / factored")
ax_speed.loglog(ranks, [t["speedup"] for t in table], "o-", label="measured, factors precomputed")
if have_matmul_svd:
    timed = [t for t in table if not math.isnan(t["speedup_matmul_svd"])]
    ax_speed.loglog(
        [t["rank"] for t in timed],
        [t["speedup_matmul_svd"] for t in timed],
        "s-",
        label="measured, your matmul_svd (SVD every call)",
    )
ax_speed.axhline(1.0, color="gray", linewidth=1)
ax_speed.axvline(break_even, color="gray", linestyle=":", linewidth=1)
ax_speed.text(
    break_even * 0.95,
    0.02,
    f"mk/(m+k) = {break_even:.0f}",
    rotation=90,
    ha="right",
    va="bottom",
    fontsize=8,
)
ax_speed.set_xlabel("rank r")
ax_speed.set_ylabel("speed-up over dense W @ X")
ax_speed.set_title(f"W {m}x{k} times X {k}x{n}")
ax_speed.grid(True, which="both", alpha=0.3)
ax_speed.legend(fontsize=8, loc="upper right")
shown = table[:-1]  # the errors are 0 at full rank: not on a log axis
ax_error.semilogy(
    ranks[:-1], [t["weight_error"] for t in shown], "o-", label=r"weight: $\|W - W_r\|_F / \|W\|_F$"
)
ax_error.semilogy(
    ranks[:-1],
    [t["product_error"] for t in shown],
    "s-",
    label=r"product: $\|W_r X - W X\|_F / \|W X\|_F$",
)
ax_error.set_xscale("log")
ax_error.set_xlabel("rank r")
ax_error.set_ylabel("relative error")
ax_error.set_title("what the rank costs in accuracy")
ax_error.grid(True, which="both", alpha=0.3)
ax_error.legend(fontsize=8)
fig.savefig("svd_rank_speedup.png", dpi=100, bbox_inches="tight")
plt.show()

header = ["rank", "FLOP ratio", "speed-up", "matmul_svd", "W error", "WX error"]
print(f"{header[0]:>5}{header[1]:>12}{header[2]:>10}{header[3]:>12}{header[4]:>10}{header[5]:>10}")
for t in table:
    svd = "-" if math.isnan(t["speedup_matmul_svd"]) else f"{t['speedup_matmul_svd']:.3f}"
    print(
        f"{t['rank']:>5}{t['flop_ratio']:>12.2f}{t['speedup']:>10.2f}{svd:>12}"
        f"{t['weight_error']:>10.3f}{t['product_error']:>10.3f}"
    )
### END SOLUTION

# %% [markdown]
# **Q6 (3 points).** (a) From the FLOP count: up to which rank does the factored product
# save arithmetic, and how does the FLOP ratio scale with $r$? (b) How do the measured
# speed-ups with precomputed factors compare with the FLOP ratio, at small ranks and near the
# break-even? Explain the gap. (c) Why is your `matmul_svd` end to end slower than the
# dense product at every rank, and when does factoring pay off? (d) Compare the two error
# curves. Why does the product lose much less than the weight? Which rank would you choose
# for this layer, and what speed-up would you expect?

# %% [markdown] tags=["manual:svd_rank_speedup_discussion:3"]
# *Model answer (numbers from the solution run; the FLOP counts are exact, the timings vary a
# little from machine to machine).*
#
# (a) The factored product costs $2rn(m + k)$ FLOPs against $2mkn$, a ratio of
# $\frac{mk}{r(m + k)} \approx 310 / r$: inversely proportional to the rank, 77 at $r = 4$,
# 4.8 at $r = 64$, 1.2 at $r = 256$. It saves arithmetic only below the break-even rank
# $mk/(m + k) \approx 310$, 60 % of the full rank 512. At full rank the factored form costs
# 1.65 times the dense product.
#
# (b) From $r = 32$ up, the measured speed-up follows the FLOP ratio closely, within about
# 12 % (8.5 against 9.7 at $r = 32$, 4.8 against 4.8 at 64, 1.20 against 1.21 at 256). It
# crosses 1 where the FLOPs predict, between 256 and 384. At small ranks it falls short:
# 35 to 40 instead of 77 at $r = 4$, about 27 instead of 39 at $r = 8$. Halving the rank from
# 16 to 8 to 4 doubles the FLOP ratio each time, but the speed-up grows only from about 16 to
# 27 to 37. Such thin products do very little arithmetic per byte they move. Their time is
# set by reading $X$ (800 kB), writing the $r \times 256$ intermediate and the fixed cost of
# two calls, not by the multiply-adds that the FLOP count measures. A GEMM reaches its peak
# rate only when all three dimensions are large. So at small ranks a smaller rank buys much
# less time than the FLOPs promise, while the error keeps growing.
#
# (c) `matmul_svd` computes the SVD of $W$ at every call, $O(mk \min(m, k))$ work, much more
# than the product itself. Its time hardly depends on the rank (the full SVD is computed,
# then truncated), and it is 70 to 100 times slower than the dense product at every rank.
# Factoring pays off only when the SVD is computed once and reused, for a weight that
# multiplies many batches, as in an SVD layer (the mnist assignment). It never pays for two
# matrices that change at every call, such as two activations.
#
# (d) The weight loses a lot at moderate ranks (0.57 at $r = 64$), but the product with
# real images loses far less (0.13 at $r = 64$, 0.05 at $r = 256$). The images occupy only a
# small part of the 784-dimensional input space, and the top right singular vectors of the
# trained $W$ are aligned with that part: training shaped $W$ along the directions that
# images use. The discarded directions are mostly the random part of $W$ (for example the
# weights of the border pixels, which are always 0), which images never excite. Since the
# network sees $WX$, not $W$, I would choose the rank from the product error, or better from
# the accuracy. Around $r = 64$ the product error is about 13 % at a measured speed-up of
# about 4.8 (the FLOP ratio). The mnist assignment measures what such errors cost in
# accuracy.
