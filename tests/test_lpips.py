"""LPIPS against the `lpips` package (its own code and linear heads, with one random trunk
given to both in torchvision's layout), and its pieces on their own."""

import sys
import types

import numpy as np
import pytest

from benchmarks.perceptual_metrics import linear_state, trunk_state
from keras_sr import lpips as lpips_module
from keras_sr import metrics, pretrained_files
from keras_sr.convert import torch as torch_files
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


@pytest.fixture
def weight_files(tmp_path):
    def write(net):
        trunk, linear = tmp_path / f"{net}-trunk.pth", tmp_path / f"{net}-linear.pth"
        torch_files.save(str(trunk), trunk_state(net), wrapper=None)
        torch_files.save(str(linear), linear_state(net), wrapper=None)
        return str(trunk), str(linear)
    return write


def numpy_lpips(net, image_a, image_b):
    """LPIPS written out in numpy from the paper and the package's constants, through a
    direct (slow) convolution: an independent check that needs no PyTorch."""
    state, heads = trunk_state(net), linear_state(net)

    def conv(x, weight, bias, stride, padding):
        x = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
        out_c, in_c, k, _ = weight.shape
        rows = (x.shape[0] - k) // stride + 1
        cols = (x.shape[1] - k) // stride + 1
        patches = np.stack([x[i:i + stride * rows:stride, j:j + stride * cols:stride]
                            for i in range(k) for j in range(k)], axis=2)  # [r, c, k*k, in]
        kernel = weight.transpose(2, 3, 1, 0).reshape(k * k, in_c, out_c)
        return np.einsum("rcpi,pio->rco", patches, kernel) + bias

    def pool(x, size, stride):
        rows = (x.shape[0] - size) // stride + 1
        cols = (x.shape[1] - size) // stride + 1
        return np.max(np.stack([x[i:i + stride * rows:stride, j:j + stride * cols:stride]
                                for i in range(size) for j in range(size)]), axis=0)

    def taps(image):
        x = (2 * image.astype(np.float64) - 1 - np.array(lpips_module.SHIFT)) / np.array(
            lpips_module.SCALE)
        found = []
        for op in lpips_module.TRUNKS[net][0]:
            if op[0] == "conv":
                _, index, _, _, stride, padding = op
                x = np.maximum(conv(x, state[f"features.{index}.weight"],
                                    state[f"features.{index}.bias"], stride, padding), 0)
            elif op[0] == "pool":
                x = pool(x, op[1], op[2])
            else:
                found.append(x)
        return found

    total = 0.0
    for k, (a, b) in enumerate(zip(taps(image_a), taps(image_b))):
        a = a / (np.sqrt((a**2).sum(-1, keepdims=True)) + 1e-10)
        b = b / (np.sqrt((b**2).sum(-1, keepdims=True)) + 1e-10)
        total += ((a - b) ** 2 * heads[f"lin{k}.model.1.weight"].reshape(-1)).sum(-1).mean()
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_a_numpy_rendering_of_the_definition(net, weight_files):
    trunk, linear = weight_files(net)
    image_a, image_b = random_images((2, 40, 36, 3), seed=3)
    expected = numpy_lpips(net, image_a, image_b)
    measured = metrics.lpips(image_a, image_b, net, trunk, linear)
    assert measured == pytest.approx(expected, rel=1e-5)
    assert metrics.lpips(image_a, image_a, net, trunk, linear) == pytest.approx(0, abs=1e-6)


def fake_torchvision(torch, net, state):
    """A `torchvision` module whose `models.alexnet` / `models.vgg16` give torchvision's
    `features` layout holding `state`: the lpips package's own code then runs on this trunk."""
    nn = torch.nn
    layers, channels = [], 3
    plan = lpips_module.TRUNKS[net][0]
    for op in plan:
        if op[0] == "conv":
            _, index, filters, kernel, stride, padding = op
            while len(layers) < index:
                layers.append(nn.Identity())
            layers += [nn.Conv2d(channels, filters, kernel, stride, padding), nn.ReLU()]
            channels = filters
        elif op[0] == "pool":
            layers.append(nn.MaxPool2d(op[1], op[2]))
    layers.append(nn.MaxPool2d(3 if net == "alex" else 2, 2))
    features = nn.Sequential(*layers)
    features.load_state_dict({key.removeprefix("features."): torch.from_numpy(value)
                              for key, value in state.items()})

    def model(pretrained=False, **kwargs):
        return types.SimpleNamespace(features=features)

    module = types.ModuleType("torchvision")
    module.models = types.SimpleNamespace(alexnet=model, vgg16=model)
    return module


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package(net, weight_files, monkeypatch):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; CI installs it")
    pytest.importorskip("scipy", reason="the lpips package imports scipy; CI installs it")
    if "lpips" not in sys.modules and not __import__("importlib").util.find_spec("lpips"):
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips); CI "
                    "installs it")
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision(torch, net,
                                                                     trunk_state(net)))
    for name in [name for name in sys.modules if name == "lpips" or name.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    import lpips

    reference = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # real v0.1 heads
    trunk, _ = weight_files(net)
    images = random_images((4, 48, 56, 3), seed=4)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images[:2].transpose(0, 3, 1, 2)),
                             torch.from_numpy(images[2:].transpose(0, 3, 1, 2)),
                             normalize=True).numpy().reshape(-1)
    ours = lpips_module.LPIPS(net, trunk_weights=trunk)  # heads found in the package
    np.testing.assert_allclose(ours(images[:2], images[2:]).numpy(), expected, atol=1e-5)


def test_missing_weights_say_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_SR_ALEXNET_WEIGHTS", raising=False)
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: (_ for _ in ()).throw(
        OSError("offline")))
    with pytest.raises(pretrained_files.WeightsUnavailable) as error:
        lpips_module.LPIPS("alex", linear_weights=str(tmp_path / "x.pth"))
    message = str(error.value)
    assert "alexnet-owt-7be5be79.pth" in message and "KERAS_SR_ALEXNET_WEIGHTS" in message
    trunk = tmp_path / "trunk.pth"
    torch_files.save(str(trunk), trunk_state("alex"), wrapper=None)
    with pytest.raises(pretrained_files.WeightsUnavailable, match="nothere.pth does not exist"):
        lpips_module.LPIPS("alex", trunk_weights=str(trunk),
                           linear_weights=str(tmp_path / "nothere.pth"))
    with pytest.raises(ValueError, match="net must be one of"):
        lpips_module.LPIPS("squeeze")


def test_images_of_other_shapes_or_too_small_are_refused(weight_files):
    trunk, linear = weight_files("alex")
    metric = lpips_module.LPIPS("alex", trunk, linear)
    with pytest.raises(ValueError, match="one shape"):
        metric(np.zeros((40, 40, 3)), np.zeros((40, 44, 3)))
    with pytest.raises(ValueError, match="at least 32x32"):
        metric(np.zeros((20, 40, 3)), np.zeros((20, 40, 3)))
