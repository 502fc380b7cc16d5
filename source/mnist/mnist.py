# %% [markdown]
# # Assignment 3 (mnist): compressing an MNIST network with SVD layers
#
# **Goals.** Replace the dense layers of a trained MLP (784-512-128-10) by layers that
# multiply by truncated SVD factors, choose ranks for a target compression ratio, and measure
# what the compression costs in accuracy.
#
# **Questions and points.** 2 programming exercises (6 points), 1 plot (3 points) and
# 1 written answer (2 points). Each exercise cell holds the signature and docstring to
# implement; the cell after it runs visible checks.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

torch.manual_seed(0)

# %% [markdown]
# ## 1. An SVD layer
#
# Built from a trained `nn.Linear` with weight `W (out, in)` and a rank k, the layer keeps
# two thin factors of the truncated SVD of `W` and multiplies by them: it never rebuilds `W`.

# %% tags=["answer:mnist_svd_linear"]
# generated from src/dnnkernels/lowrank.py: SVDLinear

# %% tags=["check:mnist_svd_linear"]
linear = nn.Linear(20, 12).double()
x = torch.randn(5, 20, dtype=torch.float64)
W, bias = linear.weight.detach(), linear.bias.detach()
U, S, Vh = torch.linalg.svd(W, full_matrices=False)
for rank in (12, 4, 1):
    layer = SVDLinear(linear, rank)
    assert isinstance(layer, nn.Module), "SVDLinear must be an nn.Module"
    W_k = U[:, :rank] @ torch.diag(S[:rank]) @ Vh[:rank]  # best rank-k approximation of W
    expected = x @ W_k.T + bias
    got = layer(x)
    assert got.shape == (5, 12), got.shape
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (rank, (got - expected).abs().max())
    count = sum(p.numel() for p in layer.parameters())
    assert count == rank * (20 + 12) + 12, f"rank {rank}: {count} parameters"
no_bias = nn.Linear(20, 12, bias=False).double()
assert torch.allclose(SVDLinear(no_bias, 12)(x), no_bias(x), rtol=1e-9, atol=1e-9), "no bias"
print("SVDLinear: visible checks passed")

# %% [markdown]
# ## 2. The rank for a compression ratio
#
# A dense layer has `in*out + out` parameters, its rank-r SVD layer `r*(in + out) + out`.
# Find the largest rank that keeps at most a given fraction of the parameters.

# %% tags=["answer:mnist_rank_for_ratio"]
# generated from src/dnnkernels/lowrank.py: rank_for_ratio

# %% tags=["check:mnist_rank_for_ratio"]
from fractions import Fraction

assert rank_for_ratio(784, 512, 0.25) == 77
for n_in, n_out, ratio in [(784, 512, 0.1), (512, 128, 0.5), (128, 10, 0.9), (100, 100, 0.3)]:
    r = rank_for_ratio(n_in, n_out, ratio)
    budget = Fraction(ratio) * (n_in * n_out + n_out)
    assert r * (n_in + n_out) + n_out <= budget, (n_in, n_out, ratio, r)
    assert (r + 1) * (n_in + n_out) + n_out > budget, f"{r + 1} also fits"
print("rank_for_ratio: visible checks passed")

# %% [markdown]
# ## 3. Accuracy against compression (plot, graded by hand)
#
# Factor the two hidden layers of the trained MLP (`fc1`, `fc2`; the small output layer
# stays dense) at several ranks with `dnnkernels.lowrank.compress` (it builds your
# `SVDLinear` layers) and plot the test accuracy against the compression ratio.

# %% tags=["manual:mnist_plot:3"]
from dnnkernels.data import load_mnist, normalize
from dnnkernels.lowrank import compress, compression_ratio
from dnnkernels.models import load_trained

### BEGIN SOLUTION
mnist = load_mnist()
images = normalize(mnist.test_images[:2000])
labels = mnist.test_labels[:2000]
mlp = load_trained("mlp")


def accuracy(model):
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


points = []
for rank in (2, 4, 8, 16, 64):
    small = compress(mlp, ranks={"fc1": rank, "fc2": rank})
    points.append((compression_ratio(mlp, small), accuracy(small)))
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(*zip(*points, strict=True), marker="o", label="fc1, fc2 factored (ranks 2 to 64)")
ax.axhline(accuracy(mlp), color="gray", linestyle="--", label="dense")
ax.set_xlabel("compression ratio (parameters kept)")
ax.set_ylabel("test accuracy (first 2000 images)")
ax.legend()
fig.savefig("mnist_accuracy.png", dpi=100, bbox_inches="tight")
plt.show()
### END SOLUTION

# %% [markdown]
# **Question (graded by hand).** Explain how your layer saves work, and when it does not.

# %% [markdown] tags=["manual:mnist_discussion:2"]
# A rank-k layer multiplies the input by `V_k (in, k)` and then by `diag(S_k) U_k^T (k, out)`:
# `k*(in + out)` multiply-adds per input row instead of `in*out`, and as many parameters. It
# saves work only while `k < in*out / (in + out)` (about 300 for the 784 -> 512 layer); at
# higher ranks the two thin products cost more than the dense one. The weights of a trained
# layer have quickly decaying singular values, so small ranks keep most of the accuracy.
