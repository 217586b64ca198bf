import keras
import numpy as np
import pytest

from benchmarks import torch_reference
from keras_sr.models import UNetDiscriminatorSN
from tests.helpers import check_config_round_trip, check_keras_reload, random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

# BasicSR's UNetDiscriminatorSN(3, 64): conv0 3x3 with bias, conv1-3 4x4 and conv4-8 3x3
# without, conv9 3x3 to one channel with bias; spectral norm adds no parameters (u and v are
# buffers in PyTorch, non-trainable variables in Keras).
REFERENCE_PARAMETERS = (3 * 64 * 9 + 64 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16
                        + 512 * 256 * 9 + 256 * 128 * 9 + 128 * 64 * 9 + 2 * 64 * 64 * 9
                        + 64 * 9 + 1)


def trainable_count(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def test_parameter_count_is_the_references():
    assert REFERENCE_PARAMETERS == 4_376_897
    assert trainable_count(UNetDiscriminatorSN()) == REFERENCE_PARAMETERS


def test_one_logit_per_pixel_at_any_multiple_of_8():
    model = UNetDiscriminatorSN(num_features=8)
    for shape in ((2, 32, 32, 3), (1, 40, 24, 3)):
        assert model(random_images(shape)).shape == shape[:3] + (1,)


@pytest.mark.parametrize("skip_connection", [True, False])
def test_forward_and_power_iteration_equal_the_pytorch_reference(skip_connection):
    """Real-ESRGAN's netD state dict (weight_orig, weight_u, weight_v) loads through the
    converter; inference (stored vectors) and training calls (one power iteration each) give
    PyTorch's logits, and the vectors afterwards are PyTorch's."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; CI installs it")
    from keras_sr.convert import basicsr

    torch.manual_seed(0)
    unet_class = torch_reference.build_unet_discriminator(torch)
    assert sum(p.numel() for p in unet_class(64).parameters()) == REFERENCE_PARAMETERS
    reference = unet_class(8, skip_connection)
    images = random_images((2, 32, 40, 3), seed=2)
    torch_images = torch.from_numpy(images.transpose(0, 3, 1, 2))
    with torch.no_grad():
        for _ in range(3):  # vectors that are not the initial draws
            reference(torch_images)
    model = UNetDiscriminatorSN(num_features=8, skip_connection=skip_connection)
    basicsr.load_weights(model, {key: value.numpy()
                                 for key, value in reference.state_dict().items()})

    def logits(training):
        return keras.ops.convert_to_numpy(model(images, training=training)).transpose(0, 3, 1, 2)

    for training in (False, True, True):
        reference.train(training)
        with torch.no_grad():
            expected = reference(torch_images).numpy()
        assert np.abs(logits(training) - expected).max() <= 1e-5 * np.abs(expected).max()
    state = basicsr.state_dict_of(model)
    assert set(state) == set(reference.state_dict())
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(state[key], value.numpy(), atol=1e-5, err_msg=key)


def test_training_calls_estimate_each_kernels_spectral_norm():
    keras.utils.set_random_seed(0)
    model = UNetDiscriminatorSN(num_features=8)
    images = random_images((2, 32, 32, 3))
    model(images)
    layer = model.get_layer("conv4")
    kernel = keras.ops.convert_to_numpy(layer.layer.kernel)

    def largest_singular_value(values):
        values = keras.ops.convert_to_numpy(values)
        return np.linalg.svd(values.reshape(-1, values.shape[-1]), compute_uv=False)[0]

    assert largest_singular_value(kernel) > 1.2  # Glorot's initial kernel
    for _ in range(40):  # one power iteration per training call
        model(images, training=True)
    # The conv computes with kernel / sigma, of spectral norm 1; the kernel itself, PyTorch's
    # weight_orig, is what the optimizer moves and no call rewrites it.
    assert largest_singular_value(layer.normalized_kernel()) == pytest.approx(1.0, abs=0.01)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.layer.kernel), kernel)


@pytest.mark.parametrize("bad", [12, 0, True])
def test_input_size_must_be_a_multiple_of_8(bad):
    with pytest.raises(ValueError, match="multiple of 8"):
        UNetDiscriminatorSN(input_size=bad)


def test_config_round_trip_and_reload(tmp_path):
    check_config_round_trip(UNetDiscriminatorSN, num_features=8, skip_connection=False)
    model = UNetDiscriminatorSN(num_features=8, name="critic")
    check_keras_reload(model, random_images((1, 16, 16, 3)), tmp_path)
