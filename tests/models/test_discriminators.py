import keras
import numpy as np
import pytest

from keras_sr.models import SRGANDiscriminator, VGGStyleDiscriminator
from tests.helpers import check_config_round_trip, check_keras_reload, random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


def test_srgan_discriminator_follows_figure_4():
    model = SRGANDiscriminator()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.filters for conv in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [conv.strides[0] for conv in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert model.get_layer("stage7_lrelu").output.shape == (None, 6, 6, 512)
    assert model.get_layer("dense1").units == 1024
    assert model(random_images((3, 96, 96, 3))).shape == (3, 1)


def test_vgg_style_discriminator_reaches_4x4_at_128():
    model = VGGStyleDiscriminator()
    assert model.get_layer("conv4_1_lrelu").output.shape == (None, 4, 4, 512)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.filters for conv in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert [conv.kernel_size[0] for conv in convs] == [3, 4] * 5
    assert model.get_layer("dense1").units == 100
    assert model(random_images((3, 128, 128, 3))).shape == (3, 1)


@pytest.mark.parametrize(
    "model_class,size", [(SRGANDiscriminator, 32), (VGGStyleDiscriminator, 64)]
)
def test_one_logit_per_image_unbounded(model_class, size):
    model = model_class(input_size=size, num_features=8)
    images = random_images((4, size, size, 3))
    logits = keras.ops.convert_to_numpy(model(images))
    assert logits.shape == (4, 1)
    # Logits, not probabilities (the sigmoid lives in the loss): the bias of the last Dense
    # layer shifts the outputs one for one, past 0 and 1 both ways.
    head = model.get_layer("logits")
    for shift in (-7.0, 7.0):
        head.bias.assign(head.bias + shift)
        shifted = keras.ops.convert_to_numpy(model(images))
        np.testing.assert_allclose(shifted, logits + shift, atol=1e-4)
        head.bias.assign(head.bias - shift)


@pytest.mark.parametrize(
    "model_class,bad_size,multiple",
    [(SRGANDiscriminator, 100, 16), (VGGStyleDiscriminator, 96 + 16, 32),
     (VGGStyleDiscriminator, 0, 32)],
)
def test_input_size_must_be_a_multiple(model_class, bad_size, multiple):
    with pytest.raises(ValueError, match=f"multiple of {multiple}, got input_size={bad_size}"):
        model_class(input_size=bad_size)


@pytest.mark.parametrize("model_class", [SRGANDiscriminator, VGGStyleDiscriminator])
def test_config_round_trip_and_reload(model_class, tmp_path):
    check_config_round_trip(model_class, input_size=64, num_features=8)
    model = model_class(input_size=64, num_features=8, name="critic")
    for layer in model.layers:
        for variable in layer.non_trainable_weights:
            variable.assign(keras.random.uniform(variable.shape, 0.5, 1.5))
    check_keras_reload(model, random_images((2, 64, 64, 3)), tmp_path)


@pytest.mark.parametrize("model_class", [SRGANDiscriminator, VGGStyleDiscriminator])
def test_mixed_precision_logits_are_float32(model_class):
    model = model_class(input_size=64, num_features=8, dtype="mixed_bfloat16")
    logits = model(random_images((2, 64, 64, 3)))
    assert logits.dtype == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(logits)).all()
