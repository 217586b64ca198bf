import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sr.losses import perceptual
from keras_sr.losses.perceptual import (
    CaffePreprocess,
    PerceptualLoss,
    VGGWeightsUnavailable,
    resolve_vgg19_weights,
    vgg19_features,
)
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


@pytest.fixture(scope="module")
def vgg_weights_file(tmp_path_factory):
    """A random-weight VGG19 saved like the real file, so loading paths are exercised."""
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None,
                             input_shape=(None, None, 3)).save_weights(path)
    return str(path)


def test_caffe_preprocessing_matches_keras_vgg19():
    images = random_images((2, 5, 4, 3))
    expected = keras.applications.vgg19.preprocess_input(images * 255.0)
    np.testing.assert_allclose(CaffePreprocess()(images), expected, atol=1e-4)


def test_before_activation_is_the_conv_output_before_its_relu(vgg_weights_file):
    before = vgg19_features("block2_conv2", before_activation=True, weights=vgg_weights_file)
    after = vgg19_features("block2_conv2", before_activation=False, weights=vgg_weights_file)
    images = random_images((1, 16, 16, 3))
    linear = keras.ops.convert_to_numpy(before(images))
    assert (linear < 0).any()  # a real pre-activation, not ReLU output
    np.testing.assert_allclose(np.maximum(linear, 0), after(images), rtol=1e-4, atol=1e-3)
    assert not before.trainable and not before.trainable_weights


def test_loaded_weights_are_the_files(vgg_weights_file):
    reference = keras.applications.VGG19(include_top=False, weights=None,
                                         input_shape=(None, None, 3))
    reference.load_weights(vgg_weights_file)
    extractor = vgg19_features("block1_conv2", before_activation=False,
                               weights=vgg_weights_file)
    np.testing.assert_array_equal(extractor.get_layer("block1_conv1").get_weights()[0],
                                  reference.get_layer("block1_conv1").get_weights()[0])


def test_missing_weights_fail_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(perceptual.WEIGHTS_ENVIRONMENT_VARIABLE, raising=False)
    calls = []

    def offline(url, timeout):
        calls.append(timeout)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(VGGWeightsUnavailable) as error:
        vgg19_features()
    message = str(error.value)
    assert "no network" in message and perceptual.VGG19_NOTOP_URL in message
    assert "loss.vgg_weights" in message and perceptual.WEIGHTS_ENVIRONMENT_VARIABLE in message
    assert calls == [perceptual.DOWNLOAD_TIMEOUT_SECONDS]
    assert not list(tmp_path.rglob("*.partial"))  # nothing half-written left behind


def test_explicit_and_environment_paths(tmp_path, monkeypatch, vgg_weights_file):
    with pytest.raises(VGGWeightsUnavailable, match="nothere.h5"):
        resolve_vgg19_weights(str(tmp_path / "nothere.h5"))
    assert resolve_vgg19_weights(vgg_weights_file) == vgg_weights_file
    monkeypatch.setenv(perceptual.WEIGHTS_ENVIRONMENT_VARIABLE, vgg_weights_file)
    assert resolve_vgg19_weights("imagenet") == vgg_weights_file
    monkeypatch.setenv(perceptual.WEIGHTS_ENVIRONMENT_VARIABLE, str(tmp_path / "gone.h5"))
    with pytest.raises(VGGWeightsUnavailable, match="gone.h5"):
        resolve_vgg19_weights("imagenet")


def test_a_corrupt_cached_file_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(perceptual.WEIGHTS_ENVIRONMENT_VARIABLE, raising=False)
    cached = tmp_path / "models" / perceptual.VGG19_NOTOP_FILE
    cached.parent.mkdir()
    cached.write_bytes(b"half a download")
    with pytest.raises(VGGWeightsUnavailable, match="no copy at"):
        resolve_vgg19_weights("imagenet", download=False)


def tiny_extractor():
    images = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(images)
    model = keras.Model(images, keras.layers.Conv2D(5, 3, padding="same")(features))
    model.trainable = False
    return model


@pytest.mark.parametrize("criterion", ["l1", "mse"])
def test_perceptual_loss_is_the_feature_distance(criterion):
    extractor = tiny_extractor()
    hr, sr = random_images((3, 8, 8, 3), seed=1), random_images((3, 8, 8, 3), seed=2)
    loss = PerceptualLoss(extractor, criterion, feature_scale=1 / 12.75)
    difference = (keras.ops.convert_to_numpy(extractor(sr))
                  - keras.ops.convert_to_numpy(extractor(hr))) / 12.75
    expected = np.mean(np.abs(difference) if criterion == "l1" else difference**2)
    assert float(loss(hr, sr)) == pytest.approx(expected, rel=1e-5)


def test_perceptual_loss_gradient_reaches_only_the_sr_images():
    loss = PerceptualLoss(tiny_extractor())
    hr = tf.constant(random_images((1, 8, 8, 3), seed=1))
    sr = tf.constant(random_images((1, 8, 8, 3), seed=2))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([hr, sr])
        value = loss(hr, sr)
    assert tape.gradient(value, hr) is None
    assert float(tf.reduce_sum(tf.abs(tape.gradient(value, sr)))) > 0


def test_bad_criterion_is_named():
    with pytest.raises(ValueError, match="criterion must be 'l1' or 'mse', got 'l2'"):
        PerceptualLoss(tiny_extractor(), "l2")


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """The fixture's random VGG19, written as torchvision's state dict (with a classifier key,
    as the real file has, which is ignored)."""
    from keras_sr.convert import torch as torch_files
    from tests.fixtures import torchvision_vgg19

    path = tmp_path_factory.mktemp("torchvision") / "vgg19-random.pth"
    state = torchvision_vgg19.state_dict()
    state["classifier.6.bias"] = np.zeros(1000, np.float32)
    torch_files.save(str(path), state, wrapper=None)
    return str(path)


def keras_conv5_4(path):
    from tests.fixtures import torchvision_vgg19

    extractor = vgg19_features("block5_conv4", before_activation=True, weights=path)
    return keras.ops.convert_to_numpy(extractor(torchvision_vgg19.images()))


def test_torchvision_weights_give_torchvisions_features(torchvision_file):
    # The values PyTorch computed once (tests/fixtures/torchvision_vgg19.py): this runs
    # without PyTorch.
    from tests.fixtures import torchvision_vgg19

    expected = np.load(torchvision_vgg19.OUTPUT)["features"]
    features = keras_conv5_4(torchvision_file)
    assert (features < 0).any()  # before the ReLU
    assert np.abs(features - expected).max() <= 1e-4 * np.abs(expected).max()


def test_torchvision_weights_match_pytorch_now(torchvision_file):
    pytest.importorskip("torch", reason="PyTorch is not installed (pip install keras-sr[torch])")
    from tests.fixtures import torchvision_vgg19

    expected = torchvision_vgg19.torch_features(torchvision_vgg19.state_dict(),
                                                torchvision_vgg19.images())
    features = keras_conv5_4(torchvision_file)
    assert np.abs(features - expected).max() <= 1e-4 * np.abs(expected).max()


def test_a_pth_file_that_is_not_vgg19_is_named(tmp_path):
    from keras_sr.convert import torch as torch_files

    path = tmp_path / "not-vgg.pth"
    torch_files.save(str(path), {"features.0.weight": np.zeros((64, 3, 3, 3), np.float32)},
                     wrapper=None)
    with pytest.raises(VGGWeightsUnavailable, match="not-vgg.pth.*no features.0.bias"):
        vgg19_features(weights=str(path))
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VGGWeightsUnavailable, match="garbage.pth"):
        vgg19_features(weights=str(tmp_path / "garbage.pth"))


def test_torchvision_weights_are_found_or_the_message_says_where(tmp_path, monkeypatch,
                                                                   torchvision_file):
    monkeypatch.delenv(perceptual.TORCHVISION_ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: (
        _ for _ in ()).throw(urllib.error.URLError("offline")))
    with pytest.raises(VGGWeightsUnavailable) as error:
        resolve_vgg19_weights("torchvision")
    message = str(error.value)
    assert perceptual.TORCHVISION_URL in message and "loss.vgg_weights" in message
    assert perceptual.TORCHVISION_ENVIRONMENT_VARIABLE in message
    # A cached file whose SHA-256 does not start with the name's digits is not trusted.
    cached = tmp_path / "torch" / "hub" / "checkpoints" / perceptual.TORCHVISION_FILE
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"half a download")
    with pytest.raises(VGGWeightsUnavailable, match="no copy at"):
        resolve_vgg19_weights("torchvision", download=False)
    monkeypatch.setenv(perceptual.TORCHVISION_ENVIRONMENT_VARIABLE, torchvision_file)
    assert resolve_vgg19_weights("torchvision") == torchvision_file


def test_torchvision_preprocessing_is_imagenet_mean_and_std():
    images = random_images((2, 5, 4, 3))
    expected = (images - np.array(perceptual.IMAGENET_RGB_MEAN)) / np.array(
        perceptual.IMAGENET_RGB_STD)
    np.testing.assert_allclose(perceptual.TorchvisionPreprocess()(images), expected, rtol=1e-5)


def test_several_layers_give_a_weighted_sum_of_distances(vgg_weights_file):
    layers = ("block1_conv2", "block2_conv2", "block3_conv4")
    several = vgg19_features(layers, before_activation=True, weights=vgg_weights_file)
    hr, sr = random_images((2, 16, 16, 3), seed=1), random_images((2, 16, 16, 3), seed=2)
    maps = several(hr)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 16, 64), (8, 8, 128), (4, 4, 256)]
    weights = [0.1, 0.5, 2.0]
    expected = sum(
        weight * float(PerceptualLoss(vgg19_features(layer, True, vgg_weights_file))(hr, sr))
        for weight, layer in zip(weights, layers))
    combined = float(PerceptualLoss(several, layer_weights=weights)(hr, sr))
    assert combined == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="2 layer_weights for 3 feature maps"):
        PerceptualLoss(several, layer_weights=[1.0, 1.0])(hr, sr)
