"""The integer LeNet: quantize, intengine, partial_sums and the bitwidth study.

(The exercises have their own files: tests/test_accumulator.py, tests/test_energy.py; the
hand-worked quantization is tests/test_quantize.py.) Every engine result is compared
exactly (``torch.equal``) with an independent computation: the naive Python-loop
definitions, a direct float64 convolution reference, or hand arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dnnkernels import bitwidth, bitwidth_bench, intengine, partial_sums
from dnnkernels.accumulator import (
    MODES,
    min_bits,
)
from dnnkernels.bitwidth import greedy_per_layer, uniform_search
from dnnkernels.data import load_mnist
from dnnkernels.energy import (
    add_energy_pj,
    network_energy,
)
from dnnkernels.intengine import integer_forward, reference_logits
from dnnkernels.models import MLP, LeNet, load_trained
from dnnkernels.partial_sums import partial_sum_stats
from dnnkernels.quantize import quantize

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def calibration(mnist):
    return mnist.train_images[::60][:1000]


@pytest.fixture(scope="module")
def trained_qnet(calibration):
    return quantize(load_trained("lenet"), calibration)


@pytest.fixture(scope="module")
def random_qnet(calibration):
    """A randomly initialised LeNet: large, badly scaled partial sums, many overflows."""
    torch.manual_seed(1234)
    return quantize(LeNet().eval(), calibration)


# ------------------------------------------------------------- op counts and energy models


def test_lenet_op_counts_from_shapes(random_qnet):
    # output sizes measured by running the float model, against the closed forms
    model = LeNet()
    sizes = {}

    def record(name):
        def hook(module, inputs, output):
            sizes[name] = tuple(output.shape[1:])

        return hook

    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        getattr(model, name).register_forward_hook(record(name))
    model(torch.zeros(1, 1, 28, 28))
    expected = {
        "conv1": 6 * sizes["conv1"][1] * sizes["conv1"][2] * 1 * 5 * 5,  # O H' W' C kh kw
        "conv2": 16 * sizes["conv2"][1] * sizes["conv2"][2] * 6 * 5 * 5,
        "fc1": 120 * 400,
        "fc2": 84 * 120,
        "fc3": 10 * 84,
    }
    assert expected == {"conv1": 117600, "conv2": 240000, "fc1": 48000, "fc2": 10080, "fc3": 840}
    for op in random_qnet.ops():
        outputs = math.prod(sizes[op.name])
        assert op.n_mul == expected[op.name] == outputs * op.fan_in
        assert op.n_add == op.n_mul + outputs  # one addition per product, one for the bias
        assert op.n_outputs == outputs


def test_network_energy_sums_layers(random_qnet):
    ops = random_qnet.ops()
    bits = {"conv1": 18, "conv2": 17, "fc1": 16, "fc2": 15, "fc3": 14}
    result = network_energy(ops, bits)
    units = sum(64 * op.n_mul + bits[op.name] * op.n_add for op in ops)
    pj = sum(0.2 * op.n_mul + add_energy_pj(bits[op.name]) * op.n_add for op in ops)
    assert result.units == pytest.approx(units, rel=1e-12)
    assert result.pj == pytest.approx(pj, rel=1e-12)
    assert sum(result.per_layer_units.values()) == pytest.approx(result.units)


# ----------------------------------------------------------------------------- quantization


def test_quantization_scheme(trained_qnet, mnist):
    layers = trained_qnet.layers
    assert [layer.name for layer in layers] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    for layer, nxt in zip(layers, layers[1:], strict=False):
        assert layer.out_scale == nxt.in_scale  # one scale per activation tensor
    for layer in layers:
        assert layer.weight.dtype == torch.int64 and int(layer.weight.abs().max()) == 127
        assert layer.bias.dtype == torch.int64 and int(layer.bias.abs().max()) < 2**31
    assert [layer.pool for layer in layers] == [2, 2, 0, 0, 0]
    assert [layer.flatten_input for layer in layers] == [False, False, True, False, False]
    assert layers[-1].out_scale is None
    q = trained_qnet.quantize_input(mnist.test_images[:50])
    assert q.shape == (50, 1, 28, 28) and q.dtype == torch.int64
    assert int(q.min()) >= -128 and int(q.max()) == 127  # white pixels are the largest input
    # the background (pixel 0, normalised to -mean/std) maps to the most negative value
    assert int(q.min()) == round(-0.1307 / 0.3081 / trained_qnet.input_scale)


def test_int8_accuracy_close_to_float(trained_qnet, mnist):
    out = integer_forward(trained_qnet, mnist.test_images[:2000], 32)
    int_acc = (out.logits.argmax(1) == mnist.test_labels[:2000]).double().mean().item()
    model = load_trained("lenet")
    from dnnkernels.data import normalize

    with torch.no_grad():
        float_pred = model(normalize(mnist.test_images[:2000])).argmax(1)
    float_acc = (float_pred == mnist.test_labels[:2000]).double().mean().item()
    assert int_acc >= float_acc - 0.005, (int_acc, float_acc)


# ------------------------------------------------------------------ the integer engine


def _assert_same(fast, loop):
    assert torch.equal(fast.logits, loop.logits), (fast.logits, loop.logits)
    assert fast.overflows.keys() == loop.overflows.keys()
    for name in fast.overflows:
        assert torch.equal(fast.overflows[name], loop.overflows[name]), name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "bits",
    [32, 18, 17, 15, {"conv1": 17, "conv2": 15, "fc1": 16, "fc2": 12, "fc3": 10}],
)
def test_fast_equals_loop_trained(trained_qnet, mnist, bits, mode):
    images = mnist.test_images[[0, 7]]
    fast = integer_forward(trained_qnet, images, bits, mode, "fast")
    loop = integer_forward(trained_qnet, images, bits, mode, "loop")
    _assert_same(fast, loop)
    if bits == 15:
        assert int(fast.overflows["conv1"].sum()) > 0 and int(fast.overflows["conv2"].sum()) > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", [8, 13, 20])
def test_fast_equals_loop_random_lenet(random_qnet, mnist, bits, mode):
    fast = integer_forward(random_qnet, mnist.test_images[[3]], bits, mode, "fast")
    loop = integer_forward(random_qnet, mnist.test_images[[3]], bits, mode, "loop")
    _assert_same(fast, loop)


def test_fast_equals_loop_mlp(calibration, mnist):
    # a network that flattens its input and has no convolution
    torch.manual_seed(7)
    qnet = quantize(MLP().eval(), calibration)
    assert qnet.layers[0].flatten_input and qnet.layers[0].signed_input
    for bits in (32, 14):
        fast = integer_forward(qnet, mnist.test_images[[5]], bits, "saturate", "fast")
        loop = integer_forward(qnet, mnist.test_images[[5]], bits, "saturate", "loop")
        _assert_same(fast, loop)


def test_32_bits_equals_direct_integer_reference(trained_qnet, mnist):
    """Whole test set: the engine with 32-bit accumulators is the exact integer network."""
    images, labels = mnist.test_images, mnist.test_labels
    reference = reference_logits(trained_qnet, images)
    for mode in MODES:
        result = intengine.evaluate(trained_qnet, images, labels, 32, mode)
        assert result.overflow_outputs == dict.fromkeys(trained_qnet.layer_names, 0)
        assert result.accuracy == 100.0 * float((reference.argmax(1) == labels).double().mean())
    out = integer_forward(trained_qnet, images, 32)
    assert torch.equal(out.logits, reference)


def test_reference_is_the_float_layers_on_integers(trained_qnet, mnist):
    # one layer written out by hand: conv1 accumulators from F.conv2d on the integer input
    q = trained_qnet.quantize_input(mnist.test_images[:3]).double()
    layer = trained_qnet.layers[0]
    acc = torch.nn.functional.conv2d(q, layer.weight.double(), padding=2).to(torch.int64)
    acc = acc + layer.bias.reshape(1, -1, 1, 1)
    expected = torch.round(acc.double() * layer.multiplier).clamp(0, 255)
    expected = torch.nn.functional.max_pool2d(expected, 2)
    out = intengine._layer_fast(layer, q.float(), 32, "saturate")[0]
    assert torch.equal(out.double(), expected)


def _prefix_extremes(qnet, images):
    """Per layer: exact (min, max) over the product prefixes (bias excluded) of every output,
    by brute force (all products materialised), and the layer inputs."""
    x = qnet.quantize_input(images).double()
    result = []
    for layer in qnet.layers:
        if layer.flatten_input:
            x = x.flatten(1)
        if layer.kind == "conv":
            cols = torch.nn.functional.unfold(x, layer.weight.shape[2:], padding=layer.padding)
            w = layer.weight.reshape(layer.out_channels, -1).double()
            products = cols.unsqueeze(1) * w.unsqueeze(0).unsqueeze(-1)  # (N, O, K, L)
            prefix = products.cumsum(dim=2)
            shape = (len(x), layer.out_channels, *layer.conv_out_size)
            extremes = prefix.amax(dim=2).reshape(shape), prefix.amin(dim=2).reshape(shape)
        else:
            prefix = (x.unsqueeze(1) * layer.weight.double().unsqueeze(0)).cumsum(dim=2)
            extremes = prefix.amax(dim=2), prefix.amin(dim=2)
        result.append((layer, x.clone(), extremes))
        x = torch.as_tensor(intengine._layer_fast(layer, x.float(), 64, "saturate")[0]).double()
    return result


def test_block_bounds_hold_and_tighten(trained_qnet, random_qnet, calibration, mnist):
    torch.manual_seed(3)
    mlp = quantize(MLP().eval(), calibration)  # a signed linear first layer
    for qnet in (trained_qnet, random_qnet, mlp):
        for layer, x, (high, low) in _prefix_extremes(qnet, mnist.test_images[:3]):
            bounds = intengine._block_bounds(layer, x.float())
            assert bounds is not None, layer.name
            upper, lower = (b.double() for b in bounds)
            pos, neg = (t.double() for t in intengine._signed_sums(layer, x.float()))
            assert bool((upper >= high).all()) and bool((lower <= low).all()), layer.name
            assert bool((upper <= pos).all()) and bool((lower >= neg).all()), layer.name


def test_exact_conv_paths_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 128, (3, 4, 9, 9), generator=g).float()
    w = torch.randint(-127, 128, (8, 2, 3, 3), generator=g).float()
    expected = torch.nn.functional.conv2d(x.double(), w.double(), padding=1, groups=2)
    direct = intengine._exact_conv(x, w, (1, 1), (1, 1), groups=2)  # float32: a direct backend
    gemm = intengine._exact_conv(x.double(), w.double(), (1, 1), (1, 1), groups=2)  # im2col + GEMM
    assert torch.equal(direct.double(), expected) and torch.equal(gemm, expected)


# ------------------------------------------------------------- partial sums and ranges


def test_partial_sum_ranges_are_exact(trained_qnet, mnist):
    images = mnist.test_images[:2]
    stats = partial_sum_stats(trained_qnet, images, progress=False)
    record: dict[str, list] = {}
    q = trained_qnet.quantize_input(images)
    intengine._forward_loop(
        trained_qnet, q, dict.fromkeys(trained_qnet.layer_names, 64), "wrap", record
    )
    for name, s in stats.items():
        assert [s.prefix_min, s.prefix_max] == record[name], name
        assert s.min_bits == min_bits(s.prefix_min, s.prefix_max)
        assert s.prefix_min <= s.final_min <= s.final_max <= s.prefix_max
        assert int(s.hist_counts.sum()) == s.accumulations
        assert s.hist_edges[0] <= s.final_min and s.final_max < s.hist_edges[-1]


def test_min_bits_of_observed_range_is_tight(trained_qnet, mnist):
    """With a layer at its observed min_bits nothing overflows; one bit less, it does."""
    images = mnist.test_images[:20]
    stats = partial_sum_stats(trained_qnet, images, progress=False)
    names = trained_qnet.layer_names
    for name in names:
        bits = dict.fromkeys(names, 64)
        bits[name] = stats[name].min_bits
        assert int(integer_forward(trained_qnet, images, bits).overflows[name].sum()) == 0
        bits[name] -= 1
        assert int(integer_forward(trained_qnet, images, bits).overflows[name].sum()) > 0


def test_histogram_coarsens_beyond_its_size():
    hist = partial_sums._IntHistogram(max_log2=8)
    values = torch.tensor([-1000, -3, 0, 0, 5, 1000, 123456])
    hist.add(values[:4])
    hist.add(values[4:])
    edges, counts = hist.edges_and_counts()
    assert counts.sum() == len(values) and len(counts) <= 2**8
    for v in values.tolist():  # every value lies in a bin that counts it
        j = int((v - edges[0]) // (edges[1] - edges[0]))
        assert edges[j] <= v < edges[j + 1] and counts[j] > 0


def _stats_with(edges: list[float], counts: list[int]) -> partial_sums.PartialSumStats:
    """A PartialSumStats that holds only the given histogram (the ranges are not used)."""
    return partial_sums.PartialSumStats(
        "fc", 0, 0, 0, 0, 1, 1, int(sum(counts)), np.array(edges, float), np.array(counts)
    )


def test_plottable_histogram_merges_whole_bins_by_hand():
    """10 unit bins of 0..9 into at most 4: k = ceil(10 / 4) = 3 bins each, the last padded."""
    stats = _stats_with(list(range(11)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    edges, counts = stats.histogram(bins=4)
    assert edges.tolist() == [0, 3, 6, 9, 12], f"edges {edges.tolist()}, expected steps of 3"
    assert counts.tolist() == [6, 15, 24, 10], f"counts {counts.tolist()} != [1+2+3, ...]"
    edges, counts = stats.histogram(bins=10)  # already few enough bins: unchanged
    assert counts.tolist() == list(range(1, 11)), f"bins=10 changed the counts: {counts}"


def test_plottable_histogram_of_lenet_has_few_bins(trained_qnet, mnist):
    """Q1's trap: hist_counts has ~10**5 bins per layer; histogram() gives <= bins, exactly."""
    stats = partial_sum_stats(trained_qnet, mnist.test_images[:50], progress=False)
    for name, s in stats.items():
        edges, counts = s.histogram(bins=200)
        assert len(counts) <= 200 and len(edges) == len(counts) + 1, f"{name}: {len(counts)}"
        centers = (s.hist_edges[:-1] + s.hist_edges[1:]) / 2  # each fine bin in one coarse bin
        want, _ = np.histogram(centers, bins=edges, weights=s.hist_counts)
        assert np.array_equal(counts, want), f"{name}: merged counts != np.histogram of bins"
        assert edges[0] <= s.final_min and s.final_max < edges[-1], f"{name}: range cut"


# ------------------------------------------------------------------------------ searches


def test_uniform_search_scans_down_then_stops():
    accuracy = {20: 99.0, 19: 99.0, 18: 98.9, 17: 98.2, 16: 97.0, 15: 98.5}
    b, seen = uniform_search(accuracy.__getitem__, 19, threshold=98.0)
    assert b == 17 and sorted(seen) == [16, 17, 18, 19]  # 15 meets it again, but 16 fails
    b, seen = uniform_search(accuracy.__getitem__, 16, threshold=98.0)  # start fails: go up
    assert b == 17


def test_greedy_per_layer_search():
    need = {"a": 10, "b": 12, "c": 5}  # accuracy drops when a layer goes below its need

    def accuracy(bits):
        return 99.0 - sum(2.0 for n in bits if bits[n] < need[n])

    bits, trace = greedy_per_layer(accuracy, {"a": 16, "b": 16, "c": 16}, ["b", "a", "c"], 98.0)
    assert bits == need
    assert all(acc >= 98.0 for b, acc in trace if all(b[n] >= need[n] for n in need))


# ---------------------------------------------------------------- bad input of the engine


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"bits": 1}, ValueError, ["bits", "got 1", "[2, 64]"]),
        ({"bits": 65}, ValueError, ["bits", "got 65"]),
        ({"bits": "32"}, TypeError, ["bits", "str", "int or a dict"]),
        ({"bits": {"conv1": 16}}, ValueError, ["bits", "missing", "conv2", "fc3"]),
        (
            {"bits": {"conv1": 16, "conv2": 16, "fc1": 16, "fc2": 70, "fc3": 16}},
            ValueError,
            ["bits['fc2']", "got 70"],
        ),
        ({"mode": "clip"}, ValueError, ["mode", "'clip'", "'saturate'"]),
        ({"method": "numba"}, ValueError, ["method", "'numba'", "'fast', 'loop'"]),
        ({"images": torch.zeros(2, 28, 28)}, TypeError, ["images", "float32", "uint8"]),
        ({"images": torch.zeros(2, 32, 32, dtype=torch.uint8)}, ValueError, ["images", "28"]),
        ({"qnet": LeNet()}, TypeError, ["qnet", "LeNet", "QuantizedNet"]),
    ],
)
def test_engine_bad_input(random_qnet, mnist, kwargs, error, words):
    args = {"qnet": random_qnet, "images": mnist.test_images[:2], "bits": 16} | kwargs
    with pytest.raises(error) as info:
        integer_forward(**args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


class _WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn1(self.conv1(x))).flatten(1))


class _WithSigmoidModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.act = nn.Sigmoid()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x.flatten(1))))


class _WithSigmoidFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.sigmoid(self.fc1(x.flatten(1))))


def test_quantize_rejects_unsupported_models(calibration):
    with pytest.raises(TypeError, match=r"model: layer 'bn1' is BatchNorm2d.*Conv2d, Linear"):
        quantize(_WithBatchNorm(), calibration[:8])
    with pytest.raises(TypeError, match=r"model: layer 'act' is Sigmoid"):
        quantize(_WithSigmoidModule(), calibration[:8])
    with pytest.raises(ValueError, match=r"model: the output of 'fc1' reaches 'fc2' through"):
        quantize(_WithSigmoidFunction(), calibration[:8])
    with pytest.raises(TypeError, match=r"model: got str 'lenet', expected a torch.nn.Module"):
        quantize("lenet", calibration[:8])
    with pytest.raises(TypeError, match=r"calibration_images: got dtype torch.float32"):
        quantize(LeNet(), calibration[:8].float())


def test_evaluate_checks_labels(random_qnet, mnist):
    with pytest.raises(ValueError, match=r"labels: got 3 labels, expected 2"):
        intengine.evaluate(random_qnet, mnist.test_images[:2], mnist.test_labels[:3])


# ------------------------------------------------------------------- study and reporting


def test_prefix_cached_runner_equals_evaluate(trained_qnet, mnist):
    images, labels = mnist.test_images[:100], mnist.test_labels[:100]
    runner = bitwidth._PrefixCachedRunner(trained_qnet, images, labels, batch_size=40)
    names = trained_qnet.layer_names
    assignments = [
        dict.fromkeys(names, 17),
        {"conv1": 17, "conv2": 17, "fc1": 15, "fc2": 14, "fc3": 13},  # reuses conv1, conv2
        {"conv1": 17, "conv2": 16, "fc1": 15, "fc2": 14, "fc3": 13},  # reuses conv1
    ]
    for mode in MODES:
        for bits in assignments:
            cached = runner.evaluate(bits, mode)
            direct = intengine.evaluate(trained_qnet, images, labels, bits, mode)
            assert cached.accuracy == direct.accuracy
            assert cached.overflow_outputs == direct.overflow_outputs
            assert cached.overflow_images == direct.overflow_images
    assert ("saturate", (17, 17)) in runner.cache  # the prefix was kept


def test_study_command_on_a_subset(tmp_path, mnist):
    summary = bitwidth.main(
        ["--out", str(tmp_path), "--images", "300", "--calibration", "500", "--no-bench"]
    )
    for name in ("partial_sums.png", "accuracy_vs_bits.png", "energy.png", "approaches.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    table = (tmp_path / "approaches.md").read_text()
    for label in ("| A |", "| B |", "| C |", "| 32-bit |"):
        assert label in table
    rows = {a["label"]: a for a in summary["approaches"]}
    threshold = summary["accuracy_32"] - 1.0
    assert rows["A"]["accuracy"] == summary["accuracy_32"]  # A covers the observed range
    assert rows["B"]["accuracy"] >= threshold and rows["C"]["accuracy"] >= threshold
    bits_a = rows["A"]["bits"]["conv1"]
    assert rows["B"]["bits"]["conv1"] <= bits_a
    assert rows["B"]["energy_units"] <= rows["A"]["energy_units"] < rows["32-bit"]["energy_units"]
    ops = {op["name"]: op for op in summary["ops"]}
    for label in ("A", "B", "C"):
        bits = rows[label]["bits"]
        expected = sum(64 * ops[n]["n_mul"] + bits[n] * ops[n]["n_add"] for n in bits)
        assert rows[label]["energy_units"] == pytest.approx(expected)


def test_benchmark_section(trained_qnet, mnist):
    section, numbers = bitwidth_bench.benchmark(
        trained_qnet, mnist.test_images[:200], mnist.test_labels[:200], [32], 1, repeats=1
    )
    assert "<= 5 s" in section and ("| met |" in section or "| missed |" in section)
    assert [r["bits"] for r in numbers["full_set"]] == [32, 32]  # saturate and wrap
    (loop,) = numbers["loop_vs_fast"]
    assert loop["identical"], "loop and fast engines disagree"
    assert loop["loop"] > 0 and loop["fast"] > 0, f"timings missing: {loop}"
    assert "| speed ratio loop / fast |" in section, "the section states the loop/fast ratio"
