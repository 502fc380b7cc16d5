"""The method checks (autograder/methods.py) on records made in this process.

The runner's recorder (``runner.record_call``, loaded by path as the sandbox does) runs here
on the reference kernels and on shortcuts; the trusted side's judgement is tested directly,
without a grading run. SVDLinear (mnist, not graded in the class run of
tests/test_autograder.py) is tested here through the runner's own ``svd_linear`` adapter.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from autograder import methods
from autograder.hidden import hidden_files
from autograder.methods import MethodViolation
from autograder.paths import REPO
from autograder.student import RECORDED_CALLS, Recorded
from dnnkernels import compress, conv2d, matmul


def _runner():
    spec = importlib.util.spec_from_file_location("_dnnk_runner", REPO / "autograder" / "runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _runner()


def recorded(name, function, *args, **kwargs) -> Recorded:
    value, record = runner.record_call(function, args, kwargs)
    return Recorded(name, args, kwargs, record, value)


def randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


X, K, B = randn(2, 4, 34, 34, seed=1), randn(8, 4, 3, 3, seed=2), randn(8, seed=3)


# ---------------------------------------------------------------------------- SVDLinear


class NotFactored(compress.SVDLinear):
    """The issue's shortcut: right values, the full weight rebuilt in every forward pass."""

    def forward(self, x):
        y = x @ (self.V @ self.SUt)
        return y if self.bias is None else y + self.bias


class OutsideTorch(compress.SVDLinear):
    """The product done in numpy."""

    def forward(self, x):
        y = torch.from_numpy(x.numpy() @ self.V.detach().numpy() @ self.SUt.detach().numpy())
        return y + self.bias


def layer_call(cls, rows=64, rank=5):
    W, b, x = randn(200, 300, seed=11), randn(200, seed=12), randn(rows, 300, seed=13)
    out = runner.adapter_svd_linear({"SVDLinear": cls}, W, b, rank, x, backward=False, record=True)
    trace = out.pop("record")
    return Recorded("svd_linear", (W, b, rank, x), {"backward": False}, trace, out)


def test_svd_linear_factored_passes():
    call = layer_call(compress.SVDLinear)
    assert call.record["flops"] == methods.svd_linear_flops(64, 300, 200, 5)
    methods.judge(call)
    methods.require_work(call)


def test_svd_linear_not_factored_earns_nothing():
    call = layer_call(NotFactored)
    assert torch.allclose(call.value["y"], layer_call(compress.SVDLinear).value["y"])
    with pytest.raises(MethodViolation, match="FLOPs of a dense product"):
        methods.judge(call)
    with pytest.raises(MethodViolation, match="rebuilt weight"):
        methods.require_work(call)


def test_svd_linear_outside_torch_earns_nothing():
    call = layer_call(OutsideTorch)
    with pytest.raises(MethodViolation, match="outside"):
        methods.judge(call)


# ---------------------------------------------------------------------------- kernels


HONEST = [
    ("conv2d_im2col", conv2d.conv2d_im2col, (X, K, B), {"padding": 1}),
    ("conv2d_winograd", conv2d.conv2d_winograd, (X, K, B), {"m": 2}),
    ("conv2d_winograd", conv2d.conv2d_winograd, (X, K, B), {"m": 4}),
    ("conv2d_fft", conv2d.conv2d_fft, (X, K, B), {}),
    ("matmul_log", matmul.matmul_log, (randn(40, 30, seed=4), randn(30, 50, seed=5)), {}),
]
A, BM = randn(200, 160, seed=6), randn(160, 120, seed=7)
HONEST += [
    ("matmul_svd", matmul.matmul_svd, (A, BM), {"rank_A": ra, "rank_B": rb})
    for ra, rb in [(3, None), (None, 4), (3, 5)]
]


@pytest.mark.parametrize("name, function, args, kwargs", HONEST)
def test_reference_kernels_pass(name, function, args, kwargs):
    call = recorded(name, function, *args, **kwargs)
    methods.judge(call)
    methods.require_work(call)


@pytest.mark.parametrize("name", ["conv2d_im2col", "conv2d_winograd", "conv2d_fft"])
def test_library_convolution_is_found(name):
    module = torch.nn.Conv2d(4, 8, 3, dtype=torch.float64)
    for shortcut in (
        lambda x, k, b: F.conv2d(x, k, b),
        lambda x, k, b: torch.ops.aten.convolution(x, k, b, [1, 1], [0, 0], [1, 1], False, [0], 1),
        lambda x, k, b: module(x),
        lambda x, k, b: F.conv_transpose2d(x, k.transpose(0, 1).flip(-1, -2)),
    ):
        with pytest.raises(MethodViolation, match="library convolution"):
            methods.judge(recorded(name, shortcut, X, K, B))


def test_matrix_product_in_matmul_log_is_found():
    A, B = randn(40, 30, seed=4), randn(30, 50, seed=5)
    for shortcut in (
        lambda A, B: A @ B,
        lambda A, B: torch.einsum("ik,kj->ij", A, B),
        lambda A, B: F.linear(A, B.T),
    ):
        with pytest.raises(MethodViolation, match="matrix product"):
            methods.judge(recorded("matmul_log", shortcut, A, B))
    # the broadcast product without logs is no matrix product, but too little of the method
    plain = recorded("matmul_log", lambda A, B: (A[:, :, None] * B[None]).sum(1), A, B)
    methods.judge(plain)
    with pytest.raises(MethodViolation, match="powers of two"):
        methods.require_work(plain)


def test_rebuilt_svd_product_is_found():
    def rebuilt(A, B, rank_A=None, rank_B=None):
        U, S, Vh = matmul.truncated_svd(A, rank_A)
        return ((U * S) @ Vh) @ B

    call = recorded("matmul_svd", rebuilt, A, BM, rank_A=3)
    with pytest.raises(MethodViolation, match="dense product"):
        methods.judge(call)


def test_recording_switched_off_is_found():
    from torch.utils._python_dispatch import _disable_current_modes

    def hidden(x, k, b):
        with _disable_current_modes(), torch._C.DisableTorchFunction():
            return F.conv2d(x, k, b)

    with pytest.raises(MethodViolation, match="no recorded torch operation"):
        methods.judge(recorded("conv2d_im2col", hidden, X, K, B))
    cloned = recorded("conv2d_im2col", lambda x, k, b: hidden(x, k, b).clone(), X, K, B)
    with pytest.raises(MethodViolation, match="outside"):
        methods.judge(cloned)


def test_forged_or_damaged_records_fail():
    honest = recorded("conv2d_im2col", conv2d.conv2d_im2col, X, K, B, padding=1)
    empty = dict(honest.record, ops={}, elements={}, functions={}, flops=0)
    forged = Recorded("conv2d_im2col", honest.args, honest.kwargs, empty, honest.value)
    methods.judge(forged)  # nothing forbidden in it ...
    with pytest.raises(MethodViolation, match="less work"):
        methods.require_work(forged)  # ... but less than a correct result needs
    for bad in (None, "ok", dict(empty, flops=-1), dict(empty, ops={"aten.mm": "1"})):
        with pytest.raises(MethodViolation, match="damaged"):
            methods.validate(bad, "conv2d_im2col")
    with pytest.raises(MethodViolation, match="switched off or replaced"):
        methods.validate(dict(honest.record, intact=False), "conv2d_im2col")


def test_popping_the_modes_is_found():
    """Popping the recorder's mode for good breaks the call itself (no value, no points)."""
    from torch.overrides import _pop_mode

    def pops(x, k, b):
        _pop_mode()
        return conv2d.conv2d_im2col(x, k, b)

    with pytest.raises(RuntimeError, match="empty mode stack"):
        runner.record_call(pops, (X, K, B), {})


def test_factored_flops_match_the_docstring():
    assert methods.factored_flops(7, 12, 30, None, None) is None
    assert (
        methods.factored_flops(200, 160, 120, 3, None)
        == (2 * 3 * 160 * 120 + 2 * 200 * 3 * 120,) * 2
    )
    low, high = methods.factored_flops(200, 160, 120, 3, 5)
    assert low < high < 2 * 200 * 160 * 120 / 10


# ---------------------------------------------------------------------------- plumbing


def test_a_violation_voids_the_task():
    records = [
        {"task": "t", "outcome": "passed", "earned": 1.0, "message": ""},
        {"task": "t", "outcome": "failed", "earned": 0.0, "message": "wrong"},
        {"task": "t", "outcome": "failed", "earned": 0.0, "message": "shortcut", "veto": True},
        {"task": "u", "outcome": "passed", "earned": 2.0, "message": ""},
    ]
    methods.apply_vetoes(records)
    assert [r["earned"] for r in records] == [0.0, 0.0, 0.0, 2.0]
    assert records[0]["outcome"] == "failed" and "not counted" in records[0]["message"]
    assert records[1]["message"] == "wrong"


def test_method_checks_run_last():
    files = hidden_files("precision")
    assert [f.name for f in files] == ["test_precision.py", "test_methods_precision.py"]
    assert hidden_files("mnist")[-1].name == "test_methods_mnist.py"
    assert [f.name for f in hidden_files("svd_rank")] == ["test_svd_rank.py"]
    assert {"conv2d_im2col", "matmul_log", "matmul_svd"} <= RECORDED_CALLS
