"""dnnkernels.models and dnnkernels.train: architectures, committed weights, training."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from torch import nn

from dnnkernels import train as train_module
from dnnkernels.data import load_mnist, make_loader, normalize
from dnnkernels.models import (
    MLP,
    LeNet,
    create,
    evaluate,
    load_trained,
    trained_metrics,
)
from dnnkernels.train import DEFAULT_EPOCHS, DEFAULT_SEED, main, train

TARGET_ACCURACY = {"mlp": 0.975, "lenet": 0.985}


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- architectures


def test_output_shapes():
    x = _images(5)
    mlp, lenet = MLP(), LeNet()
    assert mlp(x).shape == (5, 10) and mlp(x).dtype == torch.float32
    assert lenet(x).shape == (5, 10) and lenet(x).dtype == torch.float32
    assert torch.equal(mlp(x.reshape(5, 784)), mlp(x))  # both input layouts


def _parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_layer_names_and_parameter_counts():
    mlp, lenet = MLP(), LeNet()
    assert [n for n, _ in mlp.named_children()] == ["fc1", "fc2", "fc3"]
    assert [n for n, _ in lenet.named_children()] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert _parameter_count(mlp) == (784 * 512 + 512) + (512 * 128 + 128) + (128 * 10 + 10)
    conv = 6 * 1 * 5 * 5 + 6 + 16 * 6 * 5 * 5 + 16
    dense = (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert _parameter_count(lenet) == conv + dense
    assert lenet.conv1.padding == (2, 2) and lenet.conv2.padding == (0, 0)


def test_mlp_matches_a_float64_reference():
    model, x = MLP(), _images(4, seed=1)
    p = {k: v.double() for k, v in model.state_dict().items()}
    h = x.double().reshape(4, 784)
    h = (h @ p["fc1.weight"].T + p["fc1.bias"]).clamp_min(0)
    h = (h @ p["fc2.weight"].T + p["fc2.bias"]).clamp_min(0)
    expected = h @ p["fc3.weight"].T + p["fc3.bias"]
    assert_close(model(x), expected, rtol=1e-4, atol=1e-5, what="MLP logits")


def test_lenet_matches_a_float64_reference_and_its_shape_table():
    model, x = LeNet(), _images(3, seed=2)
    p = {k: v.double() for k, v in model.state_dict().items()}
    h = F.conv2d(x.double(), p["conv1.weight"], p["conv1.bias"], padding=2)
    assert h.shape == (3, 6, 28, 28)
    h = F.max_pool2d(h.clamp_min(0), 2)
    assert h.shape == (3, 6, 14, 14)
    h = F.conv2d(h, p["conv2.weight"], p["conv2.bias"])
    assert h.shape == (3, 16, 10, 10)
    h = F.max_pool2d(h.clamp_min(0), 2).reshape(3, 400)
    h = (h @ p["fc1.weight"].T + p["fc1.bias"]).clamp_min(0)
    h = (h @ p["fc2.weight"].T + p["fc2.bias"]).clamp_min(0)
    expected = h @ p["fc3.weight"].T + p["fc3.bias"]
    assert_close(model(x), expected, rtol=1e-4, atol=1e-5, what="LeNet logits")


def test_models_reject_bad_input_shapes():
    with pytest.raises(ValueError, match=r"x: got tensor of shape \(2, 3, 28, 28\)"):
        MLP()(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"x: got tensor of shape \(2, 784\)"):
        LeNet()(torch.zeros(2, 784))
    with pytest.raises(TypeError, match="x: got list"):
        MLP()([0.0] * 784)


@pytest.mark.parametrize("call", [create, load_trained, trained_metrics])
def test_unknown_model_name_is_a_value_error_naming_it(call):
    with pytest.raises(ValueError, match=r"name: got 'resnet', expected one of 'mlp', 'lenet'"):
        call("resnet")


# ----------------------------------------------------------------------------- evaluate


class _AlwaysThree(nn.Module):
    """Predicts digit 3 for every image (and records the mode it ran in)."""

    def forward(self, x):
        self.ran_in_training_mode = self.training
        logits = torch.zeros(len(x), 10)
        logits[:, 3] = 1.0
        return logits


def test_evaluate_by_hand_and_mode_restored():
    images = torch.zeros(7, 28, 28, dtype=torch.uint8)
    labels = torch.tensor([3, 3, 1, 3, 0, 9, 3])
    model = _AlwaysThree().train()
    assert evaluate(model, make_loader(images, labels, batch_size=3)) == pytest.approx(4 / 7)
    assert model.ran_in_training_mode is False
    assert model.training is True


def test_evaluate_rejects_bad_input():
    with pytest.raises(TypeError, match="model: got function"):
        evaluate(lambda x: x, [])
    with pytest.raises(ValueError, match="data: got no batches"):
        evaluate(MLP(), [])


# ----------------------------------------------------------------------------- committed weights


@pytest.mark.parametrize("name", ["mlp", "lenet"])
def test_committed_weights_reach_the_target_and_the_recorded_accuracy(mnist, name):
    model = load_trained(name)
    assert isinstance(model, MLP if name == "mlp" else LeNet) and not model.training
    accuracy = evaluate(model, mnist)
    assert accuracy >= TARGET_ACCURACY[name], f"{name}: test accuracy {accuracy:.4f}"
    recorded = trained_metrics(name)["test_accuracy"]
    # one image is 1e-4; another CPU may round one near-tie logit differently
    assert abs(accuracy - recorded) <= 1e-4 + 1e-12, f"{name}: {accuracy} vs recorded {recorded}"


def test_evaluate_agrees_with_one_full_batch(mnist):
    model = load_trained("mlp")
    with torch.no_grad():
        predictions = model(normalize(mnist.test_images)).argmax(1)
    expected = (predictions == mnist.test_labels).double().mean().item()
    assert evaluate(model, mnist.test_loader) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["mlp", "lenet"])
def test_recorded_metrics_describe_the_default_command(name):
    metrics = trained_metrics(name)
    assert metrics["epochs"] == DEFAULT_EPOCHS[name]
    assert metrics["seed"] == DEFAULT_SEED
    assert metrics["train_size"] == 60000
    assert metrics["torch_version"].split("+")[0] == torch.__version__.split("+")[0]
    assert 0 < metrics["train_seconds"]


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", ["mlp", "lenet"])
def test_training_is_deterministic(mnist, name):
    def run(seed):
        model, _ = train(name, 1, seed, data=mnist, train_size=512, progress=False)
        return model.state_dict()

    first, second, other = run(0), run(0), run(1)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{name}.{key} differs between two runs"
    assert not all(torch.equal(first[k], other[k]) for k in first), "the seed has no effect"


def test_training_learns_and_leaves_global_state_alone(mnist):
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    model, metrics = train("mlp", 1, data=mnist, train_size=4096, progress=False)
    assert metrics["test_accuracy"] > 0.5, "1 epoch on 4096 images should beat chance (0.1) by far"
    assert metrics["test_accuracy"] == evaluate(model, mnist)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.get_rng_state(), rng)


def test_train_rejects_bad_arguments(mnist):
    with pytest.raises(ValueError, match="name: got 'vgg'"):
        train("vgg", 1, data=mnist)
    with pytest.raises(ValueError, match="epochs: got 0"):
        train("mlp", 0, data=mnist)
    with pytest.raises(ValueError, match="train_size: got 70000"):
        train("mlp", 1, data=mnist, train_size=70000)
    with pytest.raises(ValueError, match="lr: got -1"):
        train("mlp", 1, data=mnist, lr=-1)


def test_command_line_writes_weights_and_keeps_other_metrics(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text(json.dumps({"lenet": {"test_accuracy": 0.5}}))
    args = ["mlp", "--epochs", "1", "--train-size", "512", "--out", str(tmp_path)]
    assert main([*args, "--no-progress"]) == 0
    assert "mlp: test accuracy" in capsys.readouterr().out
    recorded = json.loads((tmp_path / "metrics.json").read_text())
    assert recorded["lenet"] == {"test_accuracy": 0.5}
    assert recorded["mlp"]["epochs"] == 1 and recorded["mlp"]["train_size"] == 512
    model = MLP()
    model.load_state_dict(torch.load(tmp_path / "mlp.pt", weights_only=True))
    assert evaluate(model, load_mnist()) == recorded["mlp"]["test_accuracy"]
    with pytest.raises(SystemExit):
        main(["resnet"])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err


def test_weights_dir_is_the_package_data_dir():
    assert train_module.WEIGHTS_DIR.name == "weights"
    assert (train_module.WEIGHTS_DIR / "metrics.json").is_file()
