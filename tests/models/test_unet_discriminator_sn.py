import keras
import numpy as np
import pytest

from benchmarks import torch_reference
from keras_sr.models import UNetDiscriminatorSN
from tests.helpers import check_config_round_trip, check_keras_reload, random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

# BasicSR's UNetDiscriminatorSN(3, 64): conv0 3x3 with bias, conv1-3 4x4 and conv4-8 3x3
# without, conv9 3x3 to one channel with bias; spectral norm adds no parameters (u and v are
# buffers in PyTorch, a non-trainable vector in Keras).
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
def test_forward_equals_the_pytorch_reference(skip_connection):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; CI installs it")
    torch.manual_seed(0)
    unet_class = torch_reference.build_unet_discriminator(torch)
    reference = unet_class(8, skip_connection)
    images = random_images((2, 32, 40, 3), seed=2)
    with torch.no_grad():  # power iterations, so that each sigma is the kernel's norm
        for _ in range(30):
            reference(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    reference.eval()
    assert sum(p.numel() for p in unet_class(64).parameters()) == REFERENCE_PARAMETERS
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    model = UNetDiscriminatorSN(num_features=8, skip_connection=skip_connection)
    model(images)
    # In eval mode PyTorch uses weight_orig / sigma from its stored vectors, computed by the
    # forward above; Keras at inference uses the conv's kernel as it stands: give it those.
    for index in range(10):
        module = getattr(reference, f"conv{index}")
        layer = model.get_layer("logits" if index == 9 else f"conv{index}")
        conv = layer.layer if isinstance(layer, keras.layers.SpectralNormalization) else layer
        values = [module.weight.detach().numpy().transpose(2, 3, 1, 0)]
        if module.bias is not None:
            values.append(module.bias.detach().numpy())
        conv.set_weights(values)
    logits = keras.ops.convert_to_numpy(model(images))
    expected = expected.transpose(0, 2, 3, 1)
    assert np.abs(logits - expected).max() <= 1e-5 * np.abs(expected).max()


def test_training_calls_normalise_the_kernels():
    keras.utils.set_random_seed(0)
    model = UNetDiscriminatorSN(num_features=8)
    images = random_images((2, 32, 32, 3))
    model(images)

    def largest_singular_value():
        kernel = keras.ops.convert_to_numpy(model.get_layer("conv4").layer.kernel)
        return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]

    assert largest_singular_value() > 1.2  # Glorot's initial kernel
    for _ in range(40):  # one power iteration per call, each on the normalised kernel
        model(images, training=True)
    assert largest_singular_value() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("bad", [12, 0, True])
def test_input_size_must_be_a_multiple_of_8(bad):
    with pytest.raises(ValueError, match="multiple of 8"):
        UNetDiscriminatorSN(input_size=bad)


def test_config_round_trip_and_reload(tmp_path):
    check_config_round_trip(UNetDiscriminatorSN, num_features=8, skip_connection=False)
    model = UNetDiscriminatorSN(num_features=8, name="critic")
    check_keras_reload(model, random_images((1, 16, 16, 3)), tmp_path)
