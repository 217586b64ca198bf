"""keras-sr's training steps against PyTorch re-implementations of BasicSR's
(`benchmarks/torch_reference.py`): the same tiny networks from identical weights, the same
batches, Adam (0.9, 0.99) as the recipes use; the weights after one and after three steps and
the logged losses must agree.

Both sides compute in float64. In float32 the gradients agree to rounding (checked with SGD:
6e-4 of each update at worst), but Adam divides each gradient by its own magnitude, so a weight
whose gradient is rounding noise (~1e-9) moves by up to a full learning rate in either
direction, and after three steps such weights differ by about the learning rate whatever the
losses; in float64 that noise is 1e-17 and every weight must match.
"""

import keras
import numpy as np
import pytest

from benchmarks import torch_reference as reference
from keras_sr.convert.basicsr import state_dict_of
from keras_sr.losses import perceptual
from keras_sr.losses.perceptual import PerceptualLoss, vgg19_features
from keras_sr.models import RRDBNet, UNetDiscriminatorSN, VGGStyleDiscriminator
from keras_sr.trainers import ESRGAN, SRGAN, PSNRTrainer, PyTorchAdam
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install "
                                            "keras-sr[torch]); CI installs it")

LEARNING_RATE = 1e-4
# On weights, after steps that each move a weight by up to 1e-4; the weights are compared
# through the converters' float32 state dicts.
TOLERANCE = 1e-7


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    from keras_sr.convert import torch as torch_files
    from tests.fixtures import torchvision_vgg19

    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch_files.save(str(path), torchvision_vgg19.state_dict(), wrapper=None)
    return str(path)


def batches(count=3, size=32, scale=4):
    return [(random_images((4, size // scale, size // scale, 3), seed=10 + index),
             random_images((4, size, size, 3), seed=20 + index)) for index in range(count)]


@pytest.fixture(autouse=True)
def float64():
    previous = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy("float64")
    keras.config.set_floatx("float64")  # the pixel losses' float type
    yield
    keras.config.set_dtype_policy(previous[0])
    keras.config.set_floatx(previous[1])


def nchw(images):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).double()


def adam(parameters):
    return torch.optim.Adam(parameters, LEARNING_RATE, betas=(0.9, 0.99), eps=1e-8)


def keras_adam():
    return PyTorchAdam(LEARNING_RATE, beta_1=0.9, beta_2=0.99)


def float32_rounded(model):
    """The same starting point on both sides: the converters hand PyTorch float32 values."""
    model.set_weights([np.float32(weight) for weight in model.get_weights()])
    return model


def twins(with_discriminator=True):
    """Tiny keras-sr networks and PyTorch copies holding the same weights."""
    rrdbnet, discriminator_class, _ = reference.build(torch)
    keras.utils.set_random_seed(3)
    generator = float32_rounded(RRDBNet(num_blocks=1, num_features=8, growth_channels=4))
    torch_generator = rrdbnet(num_blocks=1, num_features=8, growth=4).double()
    reference.load_state(torch_generator, state_dict_of(generator))
    if not with_discriminator:
        return generator, torch_generator
    discriminator = float32_rounded(VGGStyleDiscriminator(input_size=32, num_features=8))
    torch_discriminator = discriminator_class(num_features=8, input_size=32).double()
    reference.load_state(torch_discriminator, reference.discriminator_state_dict(discriminator))
    return generator, torch_generator, discriminator, torch_discriminator


def largest_difference(ours, theirs, skip=("running_", "num_batches")):
    theirs = {key: value.detach().numpy() for key, value in theirs.state_dict().items()}
    keys = [key for key in ours if not any(part in key for part in skip)]
    assert keys and set(keys) <= set(theirs)
    return max(float(np.abs(ours[key] - theirs[key]).max()) for key in keys)


def check_losses(logs, torch_logs):
    for name, value in torch_logs.items():
        assert logs[name] == pytest.approx(value, rel=1e-6), name


def check_gan_steps(trainer_class, perceptual_loss, extractor, torch_vgg, reference_step):
    """Three steps of a `trainer_class` trainer over `twins()` networks and of
    `reference_step` from the same weights (the VGG `extractor` copied into `torch_vgg`): the
    logged losses agree at every step, the generator and discriminator weights after the first
    and the third."""
    generator, torch_generator, discriminator, torch_discriminator = twins()
    trainer = trainer_class(generator, discriminator, perceptual_loss)
    trainer.compile(g_optimizer=keras_adam(), d_optimizer=keras_adam())
    reference.load_state(torch_vgg, reference.vgg_state_dict(extractor))
    g_optimizer = adam(torch_generator.parameters())
    d_optimizer = adam(torch_discriminator.parameters())
    for index, (lr, hr) in enumerate(batches()):
        logs = trainer.train_on_batch(lr, hr, return_dict=True)
        check_losses(logs, reference_step(torch, torch_generator, torch_discriminator,
                                          torch_vgg, g_optimizer, d_optimizer, nchw(lr),
                                          nchw(hr)))
        if index in (0, 2):
            assert largest_difference(state_dict_of(generator), torch_generator) < TOLERANCE
            assert largest_difference(reference.discriminator_state_dict(discriminator),
                                      torch_discriminator) < TOLERANCE


@pytest.mark.slow
def test_esrgan_step_equals_basicsrs(vgg_file):
    extractor = vgg19_features("block5_conv4", True, vgg_file)
    torch_vgg = reference.build(torch)[2](last=34, preprocess="torchvision").double()
    check_gan_steps(ESRGAN, PerceptualLoss(extractor, "l1"), extractor, torch_vgg,
                    reference.esrgan_step)


@pytest.mark.slow
def test_srgan_step_equals_the_reference(vgg_file):
    # SRGAN §2.2: MSE between VGG54 features after ReLU, both rescaled by 1/12.75, + 1e-3 BCE;
    # Keras' (Caffe) preprocessing, here with the fixture's random VGG weights.
    extractor = vgg19_features("block5_conv4", before_activation=False, weights=None)
    for name, values in perceptual.torchvision_weights(vgg_file).items():
        extractor.get_layer(name).set_weights(values)
    torch_vgg = reference.build(torch)[2](last=35, preprocess="caffe").double()
    check_gan_steps(SRGAN, PerceptualLoss(extractor, "mse", feature_scale=1 / 12.75),
                    extractor, torch_vgg, reference.srgan_step)


@pytest.mark.parametrize("pixel", ["l1", "mse"])
def test_psnr_step_equals_the_reference(pixel):
    generator, torch_generator = twins(with_discriminator=False)
    trainer = PSNRTrainer(generator, scale=4, pixel_loss=keras.losses.MeanAbsoluteError()
                          if pixel == "l1" else keras.losses.MeanSquaredError())
    trainer.compile(g_optimizer=keras_adam())
    optimizer = adam(torch_generator.parameters())
    for index, (lr, hr) in enumerate(batches()):
        logs = trainer.train_on_batch(lr, hr, return_dict=True)
        check_losses(logs, reference.psnr_step(torch, torch_generator, optimizer, nchw(lr),
                                               nchw(hr), pixel))
        if index in (0, 2):
            assert largest_difference(state_dict_of(generator), torch_generator) < TOLERANCE


def test_the_realesrgan_perceptual_loss_fit_builds_equals_the_references(vgg_file):
    """`fit` builds realesrgan_x4's five-layer VGG19 loss from a torchvision-layout file (here
    random weights), not a test's stand-in: it equals the reference's sum of 0.1, 0.1, 1, 1, 1
    times the L1 of conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 (before ReLU)."""
    import dataclasses

    from training import experiments, fit

    loss_config = dataclasses.replace(experiments.realesrgan_x4().loss, vgg_weights=vgg_file)
    loss = fit.build_perceptual_loss(loss_config)
    torch_vgg = reference.build(torch)[2](preprocess="torchvision",
                                          taps=reference.REALESRGAN_VGG_TAPS).double()
    reference.load_state(torch_vgg, reference.vgg_state_dict(loss.feature_extractor))
    sr, hr = random_images((2, 32, 32, 3), seed=5), random_images((2, 32, 32, 3), seed=6)
    with torch.no_grad():
        expected = sum(weight * torch.nn.functional.l1_loss(ours, theirs).item()
                       for weight, ours, theirs in zip(reference.REALESRGAN_VGG_WEIGHTS,
                                                       torch_vgg(nchw(sr)), torch_vgg(nchw(hr))))
    assert float(loss(hr, sr)) == pytest.approx(expected, rel=1e-9)


def first_moments(model, optimizer):
    """The Adam first moments of `model`'s trainable weights as a BasicSR-layout state dict
    (through a clone holding them as weights). After step t they are (1 - beta_1) x the sum of
    beta_1^(t - s) x gradient_s: equal moments mean equal gradients at every step."""
    from keras_sr.convert import basicsr

    clone = type(model).from_config(model.get_config())
    for ours, theirs in zip(model.trainable_variables, clone.trainable_variables):
        theirs.assign(optimizer._momentums[optimizer._get_variable_index(ours)])
    return basicsr.state_dict_of(clone)


def torch_first_moments(module, optimizer):
    return {name: optimizer.state[parameter]["exp_avg"].numpy()
            for name, parameter in module.named_parameters()}


def relative_difference(ours, theirs):
    keys = sorted(theirs)
    assert keys and set(keys) <= set(ours)
    return max(float(np.abs(ours[key] - theirs[key]).max() / np.abs(theirs[key]).max())
               for key in keys)


@pytest.mark.slow
def test_realesrgan_step_equals_basicsrs(vgg_file):
    """realesrgan_x4 as `fit` builds it (L1 and the five-layer VGG19 loss against the sharpened
    HR, 0.1 x standard GAN, the U-Net discriminator with PyTorch-style spectral norm, EMA 0.999)
    against BasicSR's RealESRGANModel step with `torch.nn.utils.spectral_norm`, three steps in
    float64 from the same weights: the logged losses, the gradients (Adam's first moments),
    the weights, the EMA generator, and every conv's u and v vectors."""
    import copy
    import dataclasses

    from keras_sr.convert import basicsr
    from training import experiments, fit

    config = experiments.realesrgan_x4()
    config = dataclasses.replace(config, loss=dataclasses.replace(config.loss,
                                                                  vgg_weights=vgg_file))
    generator, torch_generator = twins(with_discriminator=False)
    discriminator = float32_rounded(UNetDiscriminatorSN(num_features=8))
    torch_discriminator = reference.build_unet_discriminator(torch)(8).double()
    reference.load_state(torch_discriminator, basicsr.state_dict_of(discriminator))
    torch_ema = copy.deepcopy(torch_generator)
    trainer = fit.build_trainer(config, generator, discriminator)
    assert (trainer.ema_decay, trainer.adversarial_weight, trainer.pixel_sharpened,
            trainer.perceptual_sharpened, trainer.adversarial_sharpened) \
        == (0.999, 0.1, True, True, False)
    trainer.compile(g_optimizer=keras_adam(), d_optimizer=keras_adam())
    torch_vgg = reference.build(torch)[2](preprocess="torchvision",
                                          taps=reference.REALESRGAN_VGG_TAPS).double()
    reference.load_state(torch_vgg,
                         reference.vgg_state_dict(trainer.perceptual_loss.feature_extractor))
    g_optimizer = adam(torch_generator.parameters())
    d_optimizer = adam(torch_discriminator.parameters())
    for lr, hr in batches():
        logs = trainer.train_on_batch(lr, hr, return_dict=True)
        torch_hr = nchw(hr)
        check_losses(logs, reference.realesrgan_step(
            torch, torch_generator, torch_discriminator, torch_vgg, g_optimizer, d_optimizer,
            nchw(lr), torch_hr, reference.usm_sharp(torch, torch_hr)))
        reference.update_ema(torch, torch_ema, torch_generator, decay=0.999)
        assert relative_difference(first_moments(generator, trainer.g_optimizer),
                                   torch_first_moments(torch_generator, g_optimizer)) < 1e-6
        assert relative_difference(first_moments(discriminator, trainer.d_optimizer),
                                   torch_first_moments(torch_discriminator, d_optimizer)) < 1e-6
        assert largest_difference(state_dict_of(generator), torch_generator) < TOLERANCE
        assert largest_difference(state_dict_of(trainer.ema_generator), torch_ema) < TOLERANCE
        # The weights and the power iteration's vectors (three iterations a step on each side).
        assert largest_difference(basicsr.state_dict_of(discriminator),
                                  torch_discriminator) < TOLERANCE
