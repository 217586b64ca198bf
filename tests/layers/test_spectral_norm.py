"""`SpectralNorm` against PyTorch's `spectral_norm`, and as a Keras layer: reload, mixed
precision, distribution."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sr.layers import SpectralNorm
from tests.helpers import random_images, run_two_replica_script


def wrapped_conv(filters=6, channels=4, dtype=None):
    layer = SpectralNorm(keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                             dtype=dtype), dtype=dtype)
    inputs = keras.Input((None, None, channels),
                         dtype="float64" if dtype == "float64" else "float32")
    return keras.Model(inputs, layer(inputs)), layer


def largest_singular_value(kernel):
    kernel = keras.ops.convert_to_numpy(kernel)
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


@pytest.mark.numerics
def test_three_sgd_steps_equal_pytorchs_spectral_norm_in_float64():
    """Outputs, the gradient of the raw kernel (PyTorch's weight_orig, through sigma), u and v
    after each of three training steps, then an inference call from the stored vectors."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; CI installs it")
    keras.config.set_dtype_policy("float64")
    model, layer = wrapped_conv(dtype="float64")
    images = np.random.default_rng(0).random((2, 8, 8, 4))
    reference = torch.nn.utils.spectral_norm(torch.nn.Conv2d(4, 6, 3, 1, 1, bias=False)).double()
    from keras_sr.convert.basicsr import _spectral_v_order

    order = np.argsort(_spectral_v_order(layer.kernel_shape))
    with torch.no_grad():
        reference.weight_orig.copy_(torch.from_numpy(
            keras.ops.convert_to_numpy(layer.layer.kernel).transpose(3, 2, 0, 1)))
        reference.weight_u.copy_(torch.from_numpy(keras.ops.convert_to_numpy(layer.u)))
        reference.weight_v.copy_(torch.from_numpy(keras.ops.convert_to_numpy(layer.v)[order]))
    torch_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(images, training=True) ** 2)
        gradient = tape.gradient(loss, layer.layer.kernel.value).numpy()
        reference.zero_grad()
        torch_loss = (reference(torch_images) ** 2).sum()
        torch_loss.backward()
        assert float(loss) == pytest.approx(torch_loss.item(), rel=1e-12)
        torch_gradient = reference.weight_orig.grad.numpy().transpose(2, 3, 1, 0)
        assert np.abs(gradient - torch_gradient).max() < 1e-12 * np.abs(torch_gradient).max()
        np.testing.assert_allclose(layer.u.numpy(), reference.weight_u.numpy(), atol=1e-14)
        np.testing.assert_allclose(layer.v.numpy()[order], reference.weight_v.numpy(),
                                   atol=1e-14)
        layer.layer.kernel.assign(layer.layer.kernel - 0.1 * gradient)
        with torch.no_grad():
            reference.weight_orig -= 0.1 * reference.weight_orig.grad
    reference.eval()
    expected = reference(torch_images).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(model(images, training=False).numpy(), expected, atol=1e-12)


def test_only_training_calls_iterate_and_no_call_writes_the_kernel():
    model, layer = wrapped_conv()
    images = random_images((1, 8, 8, 4))
    kernel, u, v = (keras.ops.convert_to_numpy(w) for w in (layer.layer.kernel, layer.u, layer.v))
    assert np.linalg.norm(u) == pytest.approx(1.0) and np.linalg.norm(v) == pytest.approx(1.0)
    model(images)
    np.testing.assert_array_equal(layer.u.numpy(), u)
    for _ in range(30):
        model(images, training=True)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)  # still weight_orig
    assert not np.array_equal(layer.u.numpy(), u)
    # The power iteration converges: the kernel the conv computes with has spectral norm 1.
    assert largest_singular_value(kernel) > 1.1
    assert largest_singular_value(layer.normalized_kernel()) == pytest.approx(1.0, abs=1e-4)
    # An inference call computes with exactly that kernel.
    expected = keras.ops.conv(images, layer.normalized_kernel(), padding="same")
    np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-6)


def test_reloads_from_a_keras_file_with_its_vectors(tmp_path):
    model, layer = wrapped_conv()
    images = random_images((1, 8, 8, 4))
    for _ in range(3):
        model(images, training=True)
    model.save(tmp_path / "sn.keras")
    restored = keras.saving.load_model(tmp_path / "sn.keras")
    restored_layer = restored.layers[-1]
    assert isinstance(restored_layer, SpectralNorm)
    for key in ("name", "power_iterations", "epsilon"):
        assert restored_layer.get_config()[key] == layer.get_config()[key], key
    assert restored_layer.autocast is False
    assert restored_layer.layer.get_config() == layer.layer.get_config()
    for ours, theirs in ((layer.u, restored_layer.u), (layer.v, restored_layer.v),
                         (layer.layer.kernel, restored_layer.layer.kernel)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(restored(images).numpy(), model(images).numpy())
    np.testing.assert_array_equal(restored(images, training=True).numpy(),
                                  model(images, training=True).numpy())


def test_mixed_bfloat16_iterates_in_float32():
    images = random_images((1, 8, 8, 4))
    keras.utils.set_random_seed(5)
    _, plain = wrapped_conv(dtype="float32")
    plain(images, training=True)
    keras.utils.set_random_seed(5)
    model, mixed = wrapped_conv(dtype="mixed_bfloat16")
    outputs = model(images, training=True)
    assert outputs.dtype == "bfloat16"
    assert (mixed.u.dtype, mixed.v.dtype, mixed.layer.kernel.dtype) == ("float32",) * 3
    # Same start, so the float32 power iteration gives the float32 policy's vectors.
    np.testing.assert_array_equal(mixed.u.numpy(), plain.u.numpy())
    np.testing.assert_array_equal(mixed.v.numpy(), plain.v.numpy())


@pytest.mark.parametrize("bad, message", [
    ({"power_iterations": 0}, "power_iterations to be a positive int"),
    ({"power_iterations": 1.5}, "power_iterations to be a positive int"),
    ({"epsilon": 0.0}, "epsilon > 0"),
])
def test_bad_arguments_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        SpectralNorm(keras.layers.Conv2D(2, 3), **bad)


def test_a_layer_without_a_kernel_is_named():
    with pytest.raises(ValueError, match="ReLU 'act' has none"):
        SpectralNorm(keras.layers.ReLU(name="act"))(random_images((1, 4, 4, 2)))


@pytest.mark.slow
def test_mirrored_gan_steps_equal_one_device():
    """Two SGD steps of a standard GAN with the U-Net discriminator on two replicas (2 images
    each) reach the weights and vectors one device reaches with 4: every replica computes the
    same u and v, and their mean-aggregated writes keep them. float64, where only a bug leaves a
    difference."""
    run = run_two_replica_script("""
        from keras_sr.models import RRDBNet, UNetDiscriminatorSN
        from keras_sr.trainers import SRGAN

        def networks():
            return (RRDBNet(num_blocks=1, num_features=8, growth_channels=4),
                    UNetDiscriminatorSN(num_features=8))

        def make_trainer(g, d):
            return SRGAN(g, d, None, perceptual_weight=0.0, pixel_weight=1.0)

        def two_steps(strategy, start, lr, hr):
            trainer, _ = fit_two_steps(strategy, networks, make_trainer, start, lr, hr)
            return {v.path: np.array(v) for v in trainer.discriminator.weights}

        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
        keras.utils.set_random_seed(0)
        g0, d0 = networks()
        start = [m.get_weights() for m in (g0, d0)]
        rng = np.random.default_rng(0)
        lr, hr = rng.random((4, 8, 8, 3)), rng.random((4, 32, 32, 3))
        single = two_steps(ONE_DEVICE, start, lr, hr)
        mirrored = two_steps(TWO_REPLICAS, start, lr, hr)
        vectors = [key for key in single if key.endswith(("/u", "/v"))]
        print(json.dumps({
            "vectors": len(vectors),
            "moved": max(float(np.abs(single[k] - w).max())
                         for k, w in zip(single, d0.get_weights()) if k in vectors),
            "difference": max(float(np.abs(single[k] - mirrored[k]).max()) for k in single)}))
    """)
    assert run["vectors"] == 16  # u and v of conv1-conv8
    assert run["moved"] > 1e-3  # the steps did iterate
    assert run["difference"] < 1e-12, run
