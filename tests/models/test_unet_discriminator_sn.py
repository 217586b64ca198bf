import keras
import numpy as np
import pytest

from keras_sr.models import UNetDiscriminatorSN
from tests.helpers import check_config_round_trip, check_keras_reload, random_images

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


def torch_reference(torch, num_features, skip_connection=True):
    """BasicSR's UNetDiscriminatorSN, written from its architecture."""
    nn, functional = torch.nn, torch.nn.functional
    norm = nn.utils.spectral_norm

    class Reference(nn.Module):
        def __init__(self):
            super().__init__()
            f = num_features
            self.conv0 = nn.Conv2d(3, f, 3, 1, 1)
            self.conv1 = norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
            self.conv2 = norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
            self.conv3 = norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
            self.conv4 = norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
            self.conv5 = norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
            self.conv6 = norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
            self.conv7 = norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
            self.conv8 = norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
            self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

        def forward(self, x):
            def act(y):
                return functional.leaky_relu(y, 0.2)

            def up(y):
                return functional.interpolate(y, scale_factor=2, mode="bilinear",
                                              align_corners=False)

            x0 = act(self.conv0(x))
            x1 = act(self.conv1(x0))
            x2 = act(self.conv2(x1))
            x3 = act(self.conv3(x2))
            x4 = act(self.conv4(up(x3)))
            x4 = x4 + x2 if skip_connection else x4
            x5 = act(self.conv5(up(x4)))
            x5 = x5 + x1 if skip_connection else x5
            x6 = act(self.conv6(up(x5)))
            x6 = x6 + x0 if skip_connection else x6
            return self.conv9(act(self.conv8(act(self.conv7(x6)))))

    return Reference()


@pytest.mark.parametrize("skip_connection", [True, False])
def test_forward_equals_the_pytorch_reference(skip_connection):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; CI installs it")
    torch.manual_seed(0)
    reference = torch_reference(torch, 8, skip_connection)
    images = random_images((2, 32, 40, 3), seed=2)
    with torch.no_grad():  # power iterations, so that each sigma is the kernel's norm
        for _ in range(30):
            reference(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    reference.eval()
    assert sum(p.numel() for p in torch_reference(torch, 64).parameters()) == \
        REFERENCE_PARAMETERS
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
