"""Tests of dnnkernels.precision: errors, the meaning of each (method, precision), the table.

References are independent of the harness: closed-form errors on hand cases, numpy int64
arithmetic cast to int8/int16 (numpy's integer casts wrap like two's complement hardware)
for the integer formats, a tile-by-tile integer Winograd that wraps after every matrix
product, and hand-rounded float16 computations for :class:`FormatMode`.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from hypothesis import given
from strategies import seeds

from dnnkernels import matmul as matmul_module
from dnnkernels import precision as P
from dnnkernels import precision_report as R
from dnnkernels.conv2d import winograd_transforms
from dnnkernels.formats import FormatMode, winograd_scale, wrap
from dnnkernels.tasks import TASKS

SMALL = {"conv2d": (1, 3, 7, 7, 2), "matmul": (5, 12, 4)}
MEDIUM = {"conv2d": (2, 8, 9, 9, 4), "matmul": (16, 64, 16)}


def _ints(shape, high, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-high, high + 1, shape, generator=g).to(torch.float64)


def _np_conv_int64(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid cross-correlation in exact int64: windows (N, C, H', W', kh, kw) times k."""
    kh, kw = k.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return np.einsum("ncijuv,ocuv->noij", win, k)


# ---------------------------------------------------------------------------------------------
# reconstruction_error
# ---------------------------------------------------------------------------------------------


def test_reconstruction_error_hand_case():
    exact = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    approx = torch.tensor([[1.0, 2.0], [4.0, 3.0]])  # differences 0, 0, 1, -2
    mae, rel = P.reconstruction_error(approx, exact)
    assert mae == pytest.approx(3 / 4, rel=1e-15)
    assert rel == pytest.approx(math.sqrt(5) / math.sqrt(39), rel=1e-15)


def test_reconstruction_error_mixed_dtypes_and_exact_zero():
    exact = torch.tensor([3, -4], dtype=torch.int32)
    assert P.reconstruction_error(exact.to(torch.int8), exact) == (0.0, 0.0)
    approx = torch.tensor([0.0, 0.0], dtype=torch.float16)  # the whole signal lost
    mae, rel = P.reconstruction_error(approx, exact)
    assert (mae, rel) == (pytest.approx(3.5), pytest.approx(1.0))
    zero = torch.zeros(3)
    assert P.reconstruction_error(zero, zero) == (0.0, 0.0)
    assert P.reconstruction_error(torch.ones(3), zero)[1] == math.inf


def test_reconstruction_error_bad_input():
    with pytest.raises(ValueError, match=r"approx: got tensor of shape \(2,\).*shape of exact"):
        P.reconstruction_error(torch.zeros(2), torch.zeros(3))
    with pytest.raises(TypeError, match="exact: got list"):
        P.reconstruction_error(torch.zeros(2), [0.0, 0.0])
    with pytest.raises(ValueError, match="exact: .*NaN or inf"):
        P.reconstruction_error(torch.zeros(2), torch.tensor([0.0, math.inf]))


# ---------------------------------------------------------------------------------------------
# Float formats
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, method",
    [("conv2d", m) for m in ("im2col", "winograd", "winograd4", "fft", "naive")]
    + [("matmul", m) for m in ("svd", "log", "naive")],
)
def test_float64_methods_are_accurate(op, method):
    inputs = P.draw_inputs(op, "float", SMALL[op], seed=1)
    options = {"rank_A": 5} if method == "svd" else {}  # full rank: the factored path
    y = P.run_method(op, method, "float64", inputs, options)
    assert y.dtype == torch.float64
    _, rel = P.reconstruction_error(y, P.reference(op, inputs))
    assert rel < 1e-10, f"{op}/{method} float64: relative error {rel:.3g}"


@pytest.mark.parametrize(
    "op, method",
    [("conv2d", m) for m in ("naive", "torch", "im2col", "winograd", "winograd4", "fft")]
    + [("matmul", m) for m in ("naive", "torch", "svd", "log")],
)
def test_error_grows_as_the_format_shrinks(op, method):
    # log_approx is left out on purpose: its error is set by frac_bits, not the format.
    inputs = P.draw_inputs(op, "float", MEDIUM[op], seed=2)
    exact = P.reference(op, inputs)
    options = {"rank_A": min(inputs["A"].shape)} if method == "svd" else {}
    rel = {}
    for p in ("float64", "float32", "float16", "bfloat16"):
        y = P.run_method(op, method, p, inputs, options)
        assert y.dtype == P.DTYPES[p]
        rel[p] = P.reconstruction_error(y, exact)[1]
    assert rel["float64"] < rel["float32"] < rel["float16"] < rel["bfloat16"], rel
    # the unit roundoffs are 2**-24, 2**-11 and 2**-8: errors sit within a few hundred of them
    assert rel["float32"] < 300 * 2**-24 and rel["float16"] < 300 * 2**-11, rel


def test_format_mode_rounds_every_intermediate():
    one = torch.ones(3, dtype=torch.float16)
    with FormatMode(torch.float16):
        # the method asks for float64, but every result is held in float16:
        # 1 + 2**-12 rounds to 1 (float16 has 10 fraction bits), so the difference is 0
        y = (one.to(torch.float64) + 2.0**-12) - 1.0
        z = torch.zeros(2, dtype=torch.float32)  # created inside: held in float16
    assert y.dtype == torch.float16 and z.dtype == torch.float16
    assert torch.equal(y, torch.zeros(3, dtype=torch.float16))
    assert torch.equal((one.double() + 2.0**-12) - 1.0, torch.full((3,), 2.0**-12).double())


def test_format_mode_emulates_missing_kernels_in_float32_and_rounds():
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    with pytest.raises(RuntimeError):
        torch.fft.rfft(x)  # torch has no CPU bfloat16 FFT: the reason for the emulation
    mode = FormatMode(torch.bfloat16)
    with mode:
        X = torch.fft.rfft(x)
        back = torch.fft.irfft(X * 2, n=8)
    parts = torch.view_as_real(torch.fft.rfft(x.float()))
    want = torch.view_as_complex(parts.to(torch.bfloat16).float().contiguous())
    assert X.dtype == torch.complex64 and torch.equal(X, want)
    want_back = torch.fft.irfft((want * 2), n=8).to(torch.bfloat16)
    assert back.dtype == torch.bfloat16 and torch.equal(back, want_back)
    assert mode.emulated == {"fft_rfft"}  # irfft ran natively on complex64


def test_format_mode_inplace_and_views():
    base = torch.zeros(2, 3, dtype=torch.float16)
    with FormatMode(torch.float16):
        base[0] = torch.tensor([1.0, 2.0, 1.0 + 2.0**-12], dtype=torch.float64)
        base[1].add_(1.0 / 3.0)
    assert torch.equal(base[0], torch.tensor([1.0, 2.0, 1.0], dtype=torch.float16))
    assert torch.equal(base[1], torch.full((3,), 1.0 / 3.0).to(torch.float16))
    with pytest.raises(ValueError, match="fmt: got torch.int8"):
        FormatMode(torch.int8)


# ---------------------------------------------------------------------------------------------
# Integer formats
# ---------------------------------------------------------------------------------------------


def test_wrap_hand_values():
    v = torch.tensor([127, 128, 255, 256, -128, -129, 1000])
    assert wrap(v, 8).tolist() == [127, -128, -1, 0, -128, 127, -24]
    assert torch.equal(wrap(v, 8), torch.from_numpy(v.numpy().astype(np.int8).astype(np.int64)))
    assert wrap(torch.tensor([32768.0, -3.0]), 16).tolist() == [-32768, -3]
    with pytest.raises(ValueError, match="values: got .* with fractions"):
        wrap(torch.tensor([0.5]), 8)
    with pytest.raises(ValueError, match="bits: got 64"):
        wrap(v, 64)


@pytest.mark.parametrize(
    "op, method",
    [("conv2d", m) for m in ("naive", "torch", "im2col", "winograd", "winograd4", "fft")]
    + [("matmul", m) for m in ("naive", "torch", "svd")],
)
def test_int32_is_exact_within_range(op, method):
    inputs = P.draw_inputs(op, "int", SMALL[op], seed=4, int_high=3)
    options = {"rank_A": 5} if method == "svd" else {}
    y = P.run_method(op, method, "int32", inputs, options)
    assert y.dtype == torch.int32
    assert P.reconstruction_error(y, P.reference(op, inputs)) == (0.0, 0.0)


@given(seed=seeds)
def test_int8_im2col_wraps_like_an_independent_emulation(seed):
    x, k = _ints((2, 4, 6, 6), 100, seed), _ints((3, 4, 3, 3), 100, seed + 1)
    want = _np_conv_int64(x.numpy().astype(np.int64), k.numpy().astype(np.int64))
    for method in ("im2col", "torch", "fft"):
        y = P.run_method("conv2d", method, "int8", {"x": x, "k": k})
        assert y.dtype == torch.int8
        assert np.array_equal(y.numpy(), want.astype(np.int8)), method
    mae, rel = P.reconstruction_error(y, torch.from_numpy(want))
    assert mae > 0 and rel > 0.1  # values of tens of thousands do not fit in 8 bits


def _integer_winograd_f23(x: np.ndarray, k: np.ndarray, dtype) -> np.ndarray:
    """F(2x2, 3x3) tile by tile with integer transforms (G scaled by 2), wrapping to
    ``dtype`` after every product and sum, then an arithmetic shift right by 2 bits."""
    AT, G, BT = (t.numpy() for t in winograd_transforms(2, torch.float64))
    G2 = np.rint(2 * G).astype(np.int64)
    AT, BT = np.rint(AT).astype(np.int64), np.rint(BT).astype(np.int64)

    def w(a):  # wrap to the format
        return np.asarray(a).astype(dtype).astype(np.int64)

    N, C, H, W = x.shape
    O = k.shape[0]
    Ho, Wo = H - 2, W - 2
    y = np.zeros((N, O, Ho, Wo), dtype=np.int64)
    U = [[w(w(G2 @ k[o, c]) @ G2.T) for c in range(C)] for o in range(O)]
    for n in range(N):
        for t in range(0, Ho, 2):
            for s in range(0, Wo, 2):
                d = np.zeros((C, 4, 4), dtype=np.int64)
                patch = x[n, :, t : t + 4, s : s + 4]
                d[:, : patch.shape[1], : patch.shape[2]] = patch
                V = [w(w(BT @ d[c]) @ BT.T) for c in range(C)]
                for o in range(O):
                    M = np.zeros((4, 4), dtype=np.int64)
                    for c in range(C):
                        M = w(M + w(U[o][c] * V[c]))
                    Y = w(w(AT @ M) @ AT.T) >> 2  # exact: 4 * y wrapped is a multiple of 4
                    h, v = min(2, Ho - t), min(2, Wo - s)
                    y[n, o, t : t + h, s : s + v] = Y[:h, :v]
    return y


@pytest.mark.parametrize(
    "precision, np_dtype, high", [("int8", np.int8, 3), ("int16", np.int16, 60)]
)
def test_integer_winograd_matches_a_tile_by_tile_emulation(precision, np_dtype, high):
    x, k = _ints((1, 3, 7, 8), high, 5), _ints((2, 3, 3, 3), high, 6)
    want = _integer_winograd_f23(x.numpy().astype(np.int64), k.numpy().astype(np.int64), np_dtype)
    y = P.run_method("conv2d", "winograd", precision, {"x": x, "k": k})
    assert y.dtype == P.DTYPES[precision]
    assert np.array_equal(y.numpy().astype(np.int64), want)
    exact = P.reference("conv2d", {"x": x, "k": k})
    assert P.reconstruction_error(y, exact)[1] > 0  # 4 * y overflowed somewhere
    if precision == "int8":
        # |y| <= 3 * 9 * 3 * 3 = 81 fits in 8 bits, 4 * y does not: the scaled transforms
        # cost 2 bits of headroom, so the direct method is exact and Winograd is not
        direct = P.run_method("conv2d", "im2col", precision, {"x": x, "k": k})
        assert P.reconstruction_error(direct, exact) == (0.0, 0.0)


def test_winograd_scales():
    assert winograd_scale(2) == 4
    assert winograd_scale(4) == 576


def test_integer_log_uses_integer_log2_magnitudes():
    A = torch.tensor([[3.0, -2.0, 0.0], [5.0, 1.0, -7.0]])
    B = torch.tensor([[1.0, 6.0], [-3.0, 0.0], [2.0, 12.0]])
    # round(log2 |a|): 3 -> 2 (4), 2 -> 1, 5 -> 2 (4), 7 -> 3 (8), 6 -> 3 (8), 12 -> 4 (16)
    Aq = np.array([[4, -2, 0], [4, 1, -8]], dtype=np.int64)
    Bq = np.array([[1, 8], [-4, 0], [2, 16]], dtype=np.int64)
    y = P.run_method("matmul", "log", "int8", {"A": A, "B": B})
    assert np.array_equal(y.numpy(), (Aq @ Bq).astype(np.int8))  # [[12, 32], [-12, -96]]


def test_svd_and_log_approx_int_are_rounded_float_results():
    inputs = P.draw_inputs("matmul", "int", SMALL["matmul"], seed=7, int_high=40)
    exact = P.reference("matmul", inputs).numpy().astype(np.int64)
    y = P.run_method("matmul", "svd", "int8", inputs, {"rank_A": 5})
    assert np.array_equal(y.numpy(), exact.astype(np.int8))
    approx = P.run_method("matmul", "log_approx", "int32", inputs, {"frac_bits": 6})
    from dnnkernels.matmul import matmul

    A, B = inputs["A"].float(), inputs["B"].float()
    want = torch.round(matmul(A, B, method="log_approx", frac_bits=6).double())
    assert torch.equal(approx.to(torch.float64), want)


def test_integer_inputs_must_fit_the_format():
    inputs = {"A": torch.full((2, 2), 200.0), "B": torch.ones(2, 2)}
    with pytest.raises(ValueError, match=r"inputs\['A'\]: got values in \[200, 200\].*int8"):
        P.run_method("matmul", "torch", "int8", inputs)
    inputs = {"A": torch.full((2, 2), 0.5), "B": torch.ones(2, 2)}
    with pytest.raises(ValueError, match=r"inputs\['A'\].*integral: False"):
        P.run_method("matmul", "torch", "int32", inputs)


# ---------------------------------------------------------------------------------------------
# Inputs, names, the table, the writers and the plot
# ---------------------------------------------------------------------------------------------


def test_draw_inputs_are_seeded_and_in_range():
    a = P.draw_inputs("conv2d", "int", (2, 3, 5, 6, 4), seed=9, int_high=3)
    b = P.draw_inputs("conv2d", "int", (2, 3, 5, 6, 4), seed=9, int_high=3)
    c = P.draw_inputs("conv2d", "int", (2, 3, 5, 6, 4), seed=10, int_high=3)
    assert a["x"].shape == (2, 3, 5, 6) and a["k"].shape == (4, 3, 3, 3)
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], c["x"])
    assert set(a["x"].unique().tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}
    f = P.draw_inputs("matmul", "float", (30, 40, 20), seed=0)
    assert f["A"].dtype == torch.float64 and abs(float(f["A"].std()) - 1) < 0.1


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda i: P.run_method("conv2d", "sparse", "float32", i), r"method: got 'sparse'"),
        (lambda i: P.run_method("conv2d", "torch", "int4", i), r"precision: got 'int4'"),
        (lambda i: P.run_method("conv3d", "torch", "float32", i), r"op: got 'conv3d'"),
        (lambda i: P.run_method("conv2d", "svd", "float32", i), r"method: got 'svd'"),
        (lambda i: P.precision_table(methods=["bogus"]), r"methods: got 'bogus'"),
        (lambda i: P.precision_table(precisions=["fp8"]), r"precisions: got 'fp8'"),
        (lambda i: P.precision_table(int_high=128), r"int_high: got 128, .* fit int8"),
        (lambda i: P.draw_inputs("conv2d", "complex"), r"kind: got 'complex'"),
        (lambda i: P.draw_inputs("conv2d", size=(1, 2, 3)), r"size: got tuple"),
        (lambda i: P.run_method("conv2d", "torch", "float32", {"x": i["x"]}), r"inputs: got"),
        (lambda i: P.run_method("conv2d", "torch", "float32", i, {"b": 1}), r"options: got"),
        (lambda i: P.precision_table(options={"im2col": {}}), r"options: got key 'im2col'"),
    ],
)
def test_bad_names_raise_value_error_naming_the_argument(call, pattern):
    inputs = P.draw_inputs("conv2d", "float", SMALL["conv2d"])
    with pytest.raises(ValueError, match=pattern):
        call(inputs)


def test_table_rows_and_columns():
    rows = P.precision_table(sizes=SMALL, progress=False)
    n_methods = len(P.METHODS["conv2d"]) + len(P.METHODS["matmul"])
    assert len(rows) == n_methods * len(P.PRECISIONS)
    assert all(tuple(r) == P.COLUMNS for r in rows)
    assert {(r["op"], r["method"], r["precision"]) for r in rows} == {
        (op, m, p) for op in P.OPS for m in P.METHODS[op] for p in P.PRECISIONS
    }
    conv = [r for r in rows if r["op"] == "conv2d"]
    assert all(r["n_elements"] == 1 * 2 * 5 * 5 and r["shape"] == "1x2x5x5" for r in conv)
    assert all(r["bits"] == P.BITS[r["precision"]] for r in rows)
    assert all(r["mae"] >= 0 and r["rel_fro"] >= 0 for r in rows)
    # the svd row runs the factored product (full rank), not the plain A @ B shortcut
    svd = {r["precision"]: r for r in rows if r["method"] == "svd"}
    assert "linalg_svd" in svd["float16"]["computed"]
    assert svd["float64"]["rel_fro"] > 0

    sub = P.precision_table(
        ops="matmul", methods=["svd", "torch"], precisions=["float32", "int8"],
        sizes={"matmul": (3, 4, 2)}, progress=False,
    )  # fmt: skip
    assert [(r["method"], r["precision"]) for r in sub] == [
        ("torch", "int8"), ("torch", "float32"), ("svd", "int8"), ("svd", "float32"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="methods: got 'im2col'.*methods of matmul"):
        P.precision_table(ops="matmul", methods=["im2col"], progress=False)


def test_writers_and_plot(tmp_path):
    rows = P.precision_table(
        methods=["torch", "im2col", "svd"], precisions=["float16", "float64", "int8", "int32"],
        sizes=SMALL, progress=False,
    )  # fmt: skip
    path = R.write_csv(rows, tmp_path / "t" / "table.csv")
    with path.open() as fh:
        read = list(csv.DictReader(fh))
    assert len(read) == len(rows) and tuple(read[0]) == P.COLUMNS
    assert float(read[0]["rel_fro"]) == rows[0]["rel_fro"]  # 17 digits round-trip
    text = R.write_markdown(rows, tmp_path / "table.md").read_text()
    assert "| method | int8 | float16 | int32 | float64 |" in text
    assert "## conv2d" in text and "## matmul" in text
    for op in P.OPS:
        png = R.plot_error_vs_precision(rows, tmp_path / "plots" / f"{op}.png", op=op)
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="op: got None"):
        R.plot_error_vs_precision(rows, tmp_path / "x.png")
    with pytest.raises(ValueError, match="metric: got 'max'"):
        R.plot_error_vs_precision(rows, tmp_path / "x.png", op="conv2d", metric="max")


@pytest.mark.slow
def test_command_line_writes_table_and_plots(tmp_path):
    written = R.main(["--out", str(tmp_path), "--no-progress"])
    names = sorted(p.name for p in written)
    assert names == ["conv2d.png", "matmul.png", "table.csv", "table.md"]
    rows = list(csv.DictReader((tmp_path / "table.csv").open()))
    assert len(rows) == (len(P.METHODS["conv2d"]) + len(P.METHODS["matmul"])) * 7


def test_reference_is_float64_direct():
    inputs = P.draw_inputs("conv2d", "float", SMALL["conv2d"], seed=11)
    assert_close(
        P.reference("conv2d", inputs), F.conv2d(inputs["x"], inputs["k"]), 0, 0, "reference"
    )


# ------------------------------------------------------------- traps of the student build


def _stub(task_id: str):
    """What the student build runs for an exercise the student has not written."""

    def stub(*args, **kwargs):
        raise NotImplementedError(TASKS[task_id].not_implemented_message())

    return stub


def test_default_table_leaves_out_an_unwritten_extra_credit_method(monkeypatch):
    """precision Q2: precision_table() is complete without the optional log_approx."""
    monkeypatch.setattr(matmul_module, "matmul_log_approx", _stub("precision_matmul_log_approx"))
    rows = P.precision_table(ops="matmul", precisions=["float32", "int8"], progress=False)
    got = {r["method"] for r in rows}
    want = set(P.METHODS["matmul"]) - {"log_approx"}
    assert got == want, f"default methods ran {sorted(got)}, expected {sorted(want)}"
    with pytest.raises(NotImplementedError, match="precision_matmul_log_approx"):
        P.precision_table(ops="matmul", methods=["log_approx"], progress=False)


def test_default_table_still_raises_for_a_required_method(monkeypatch):
    """Only optional exercises are left out: an unwritten matmul_log still stops the table."""
    monkeypatch.setattr(matmul_module, "matmul_log", _stub("precision_matmul_log"))
    with pytest.raises(NotImplementedError, match="precision_matmul_log:"):
        P.precision_table(ops="matmul", precisions=["float32"], progress=False)


def test_nan_from_log_of_zero_is_named_not_blamed_on_magnitudes(monkeypatch):
    """A matmul_log that multiplies 0 * inf gives NaN: the message names NaN and log2(0)."""

    def naive_log(A, B):
        logs = torch.log2(A.abs())[:, :, None] + torch.log2(B.abs())[None, :, :]
        signs = torch.sign(A)[:, :, None] * torch.sign(B)[None, :, :]
        return (signs * torch.exp2(logs) * (logs * 0 + 1)).sum(dim=1)  # -inf * 0 = NaN

    monkeypatch.setattr(matmul_module, "matmul_log", naive_log)
    A = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    B = torch.tensor([[3.0, 0.0], [1.0, 2.0]])
    with pytest.raises(ValueError) as info:
        P.run_method("matmul", "log", "int16", {"A": A, "B": B})
    message = str(info.value)
    assert "NaN or infinite" in message and "log2(0)" in message, message
    assert "2**52" not in message, f"blames the magnitudes: {message}"
