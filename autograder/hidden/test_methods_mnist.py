"""Method checks of the mnist assignment (never released to students).

Run after ``test_mnist.py``: the forward pass of every ``SVDLinear`` the value checks built
was recorded in the runner (``runner.record_call``); the check here builds one more, large
enough to tell two thin products from a product with the rebuilt weight, and
:mod:`autograder.methods` judges them all (a layer that is not factored voids the task).
"""

from __future__ import annotations

import pytest
import torch

from autograder.checking import CheckFailed, expect_close, randn
from autograder.methods import check_method, require_work


@pytest.mark.mnist_svd_linear
@pytest.mark.points(0)
def test_svd_linear_method(student):
    """SVDLinear: the forward pass costs two thin products, not a product with the full weight"""
    W, b, x = randn(200, 300, seed=9901), randn(200, seed=9902), randn(64, 300, seed=9903)
    out, call = check_method(student, "svd_linear", W, b, 5, x, backward=False)
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    expected = x @ ((U[:, :5] * S[:5]) @ Vh[:5]).T + b
    y = out.get("y") if isinstance(out, dict) else out
    try:
        expect_close(y, expected, dtype=torch.float64, rtol=1e-8, atol=1e-8)
    except CheckFailed as failure:
        raise CheckFailed(
            f"the method could not be judged, the result is wrong ({failure})"
        ) from None
    require_work(call)
