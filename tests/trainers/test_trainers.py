
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sr.losses.perceptual import PerceptualLoss
from keras_sr.models import RRDBNet, SRGANDiscriminator, SRResNet, VGGStyleDiscriminator
from keras_sr.trainers import ESRGAN, SRGAN, PSNRTrainer
from tests.helpers import random_images, run_two_replica_script
from tests.losses.test_perceptual import tiny_extractor

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

GAN_LOGS = {"g_loss", "d_loss", "pixel_loss", "perceptual_loss", "adversarial_loss", "d_real",
            "d_fake"}


def batch(scale=4, size=32, count=4):
    hr = random_images((count, size, size, 3), seed=5)
    return random_images((count, size // scale, size // scale, 3), seed=6), hr


def esrgan(g_learning_rate=1e-3, d_learning_rate=1e-3):
    trainer = ESRGAN(RRDBNet(num_blocks=1, num_features=8, growth_channels=4),
                     VGGStyleDiscriminator(input_size=32, num_features=8),
                     PerceptualLoss(tiny_extractor(), "l1"))
    trainer.compile(g_optimizer=keras.optimizers.Adam(g_learning_rate, beta_2=0.99),
                    d_optimizer=keras.optimizers.Adam(d_learning_rate, beta_2=0.99))
    return trainer


def test_psnr_trainer_lowers_the_pixel_loss():
    trainer = PSNRTrainer(RRDBNet(num_blocks=1, num_features=8, growth_channels=4), scale=4)
    trainer.compile(g_optimizer=keras.optimizers.Adam(2e-3))
    lr, hr = batch()
    history = trainer.fit(tf.data.Dataset.from_tensors((lr, hr)).repeat(30), verbose=0)
    losses = history.history["pixel_loss"]
    assert set(history.history) == {"g_loss", "pixel_loss"}
    first = float(keras.losses.MeanAbsoluteError()(hr, RRDBNet(
        num_blocks=1, num_features=8, growth_channels=4)(lr)))
    assert losses[-1] < first


@pytest.fixture(scope="module")
def traced_esrgan():
    """One ESRGAN trainer for the module: tracing its step takes ~20 s on 2 cores, a step 0.05 s.

    Learning rates are variables, so tests switch a network off by assigning 0, no retrace.
    """
    keras.utils.set_random_seed(0)
    trainer = esrgan()
    trainer.train_on_batch(*batch())
    return trainer


def _bce_with_logits(labels, logits):
    return np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))


def test_esrgan_logs_each_term_and_weighs_them_as_the_paper(traced_esrgan):
    """Each logged term recomputed outside the step from the networks it ran (rates 0: the
    step leaves them as they were): L1 against the HR, the perceptual loss, ESRGAN's
    relativistic generator loss from the discriminator's logits (BasicSR's mean of the two
    terms); g_loss is them weighed 1, 1e-2 and 5e-3 (ESRGAN §4.1)."""
    trainer = traced_esrgan
    for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
        optimizer.learning_rate.assign(0.0)
    try:
        trainer.reset_metrics()
        lr, hr = batch()
        logs = trainer.train_on_batch(lr, hr, return_dict=True)
    finally:
        for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
            optimizer.learning_rate.assign(1e-3)
    assert set(logs) == GAN_LOGS
    sr = keras.ops.convert_to_numpy(trainer.generator(lr, training=True))
    real = keras.ops.convert_to_numpy(trainer.discriminator(hr, training=True))
    fake = keras.ops.convert_to_numpy(trainer.discriminator(sr, training=True))
    pixel = np.abs(sr - hr).mean()
    perceptual = float(trainer.perceptual_loss(hr, sr))
    adversarial = 0.5 * (_bce_with_logits(0.0, real - fake.mean())
                         + _bce_with_logits(1.0, fake - real.mean()))
    for name, value in (("pixel_loss", pixel), ("perceptual_loss", perceptual),
                        ("adversarial_loss", adversarial)):
        assert logs[name] == pytest.approx(value, rel=1e-4), name
    assert logs["g_loss"] == pytest.approx(perceptual + 1e-2 * pixel + 5e-3 * adversarial,
                                           rel=1e-4)


@pytest.mark.parametrize("frozen", ["generator", "discriminator"])
def test_each_optimizer_moves_only_its_own_network(traced_esrgan, frozen):
    trainer = traced_esrgan
    optimizers = {"generator": trainer.g_optimizer, "discriminator": trainer.d_optimizer}
    optimizers[frozen].learning_rate.assign(0.0)
    try:
        before = {name: [v.numpy() for v in getattr(trainer, name).trainable_variables]
                  for name in optimizers}
        trainer.train_on_batch(*batch())
        for name in optimizers:
            moved = any(not np.array_equal(value, variable.numpy()) for value, variable in
                        zip(before[name], getattr(trainer, name).trainable_variables))
            assert moved == (name != frozen), name
    finally:
        optimizers[frozen].learning_rate.assign(1e-3)


def test_srgan_uses_the_papers_weights_and_no_pixel_term():
    """SRGAN's generator loss: the VGG loss + 1e-3 x -log D(G(lr)) (§2.2, eq. 3 and 6), each
    term recomputed outside the step (rates 0), and no pixel term."""
    trainer = SRGAN(SRResNet(num_blocks=1, num_features=8),
                    SRGANDiscriminator(input_size=32, num_features=8),
                    PerceptualLoss(tiny_extractor(), "mse", feature_scale=1 / 12.75))
    trainer.compile(g_optimizer=keras.optimizers.SGD(0.0),
                    d_optimizer=keras.optimizers.SGD(0.0))
    lr, hr = batch()
    logs = trainer.train_on_batch(lr, hr, return_dict=True)
    sr = keras.ops.convert_to_numpy(trainer.generator(lr, training=True))
    fake = keras.ops.convert_to_numpy(trainer.discriminator(sr, training=True))
    perceptual = float(trainer.perceptual_loss(hr, sr))
    adversarial = _bce_with_logits(1.0, fake)
    assert logs["pixel_loss"] == 0.0
    assert logs["perceptual_loss"] == pytest.approx(perceptual, rel=1e-4)
    assert logs["adversarial_loss"] == pytest.approx(adversarial, rel=1e-4)
    assert logs["g_loss"] == pytest.approx(perceptual + 1e-3 * adversarial, rel=1e-4)
    assert 0.0 < logs["d_real"] < 1.0 and 0.0 < logs["d_fake"] < 1.0


def test_validation_reports_papers_psnr_and_ssim():
    trainer = PSNRTrainer(RRDBNet(num_blocks=1, num_features=8, growth_channels=4), scale=4)
    trainer.compile(g_optimizer=keras.optimizers.Adam(1e-4))
    lr, hr = batch(size=48, count=2)
    results = trainer.evaluate(lr, hr, batch_size=2, return_dict=True, verbose=0)
    from keras_sr.metrics import psnr
    sr = keras.ops.convert_to_numpy(trainer(lr))
    assert results["psnr"] == pytest.approx(np.mean([psnr(s, h, 4) for s, h in zip(sr, hr)]),
                                            abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_mirrored_esrgan_steps_equal_one_device(precision):
    # ESRGAN §3.2's batch means and the discriminator's BN statistics span the global batch, so
    # two replicas with 2 images each must reach the weights one device reaches with 4 (without
    # synchronized BN they differ by about 0.09), and log the same losses. Plain SGD, so that a
    # missing or doubled 1/N in the gradients changes every update in proportion (Adam would
    # normalise it away); two steps, with the generator EMA. Run in float64, where only a bug
    # can leave a difference, and in float32, what training runs (one process each: collective
    # keys would clash).
    run = run_two_replica_script("""
        from keras_sr.losses.perceptual import PerceptualLoss
        from keras_sr.models import RRDBNet, VGGStyleDiscriminator
        from keras_sr.trainers import ESRGAN
        from tests.losses.test_perceptual import tiny_extractor
        from tests.trainers.test_trainers import batch

        def networks():
            return (RRDBNet(num_blocks=1, num_features=8, growth_channels=4),
                    VGGStyleDiscriminator(input_size=32, num_features=8), tiny_extractor())

        def make_trainer(g, d, f):
            return ESRGAN(g, d, PerceptualLoss(f, "l1"), ema_decay=0.5)

        def two_steps(strategy, start, lr, hr):
            trainer, logs = fit_two_steps(strategy, networks, make_trainer, start, lr, hr)
            return (trainer.generator.get_weights() + trainer.discriminator.get_weights()
                    + trainer.ema_generator.get_weights()), logs

        precision = sys.argv[1]
        keras.config.set_floatx(precision)
        keras.config.set_dtype_policy(precision)
        keras.utils.set_random_seed(0)
        start = [model.get_weights() for model in networks()]
        lr, hr = (images.astype(precision) for images in batch())
        single, single_logs = two_steps(ONE_DEVICE, start, lr, hr)
        mirrored, mirrored_logs = two_steps(TWO_REPLICAS, start, lr, hr)
        print(json.dumps({
            "difference": max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)),
            "update": max(float(np.abs(a - b).max())
                          for a, b in zip(single, start[0] + start[1])),
            "single": single_logs, "mirrored": mirrored_logs}))
    """, precision)
    # A wrong 1/N leaves about 0.16 of the update (0.09 when Keras' per-replica loss scaling
    # was switched off on purpose). The rest is summation order: the two replicas' partial sums
    # are added in another order than one device's. Two SGD steps through batch norm, RaGAN's
    # batch means and the EMA amplify one rounding to about 1e4 of itself: float32 (eps 6e-8)
    # measured 1.3e-5 of the update with oneDNN (AMD Zen 5), 2.2e-4 and 8e-4 with Eigen (Zen 3,
    # Zen 5), so 1e-2 leaves 12x; float64 (eps 1.1e-16) measured 2.4e-15, so 1e-9 leaves 4e5x.
    bound = {"float64": 1e-9, "float32": 1e-2}[precision]
    assert run["difference"] < bound * run["update"], run
    assert set(run["single"]) == GAN_LOGS
    for name, value in run["single"].items():
        # The logged losses, after the same two steps: float64 measured 9e-16 relative,
        # float32 2.3e-6 (oneDNN) and 5e-6 (Eigen) on Zen 5.
        relative = 1e-9 if precision == "float64" else 1e-4
        assert run["mirrored"][name] == pytest.approx(value, rel=relative), name


def test_a_trainer_keeps_its_generators_ema_through_plain_fit():
    # BasicSR's net_g_ema: ema = decay * ema + (1 - decay) * weights, after every generator
    # step, here without training.fit's loop; evaluate() scores the EMA generator.
    keras.utils.set_random_seed(1)
    generator = RRDBNet(num_blocks=1, num_features=8, growth_channels=4)
    trainer = PSNRTrainer(generator, scale=4, ema_decay=0.75)
    trainer.compile(g_optimizer=keras.optimizers.SGD(0.1))
    start = generator.get_weights()
    lr, hr = batch()
    trainer.fit(tf.data.Dataset.from_tensors((lr, hr)).repeat(1), verbose=0)
    after_one = generator.get_weights()
    for average, first, second in zip(trainer.ema_generator.get_weights(), start, after_one):
        np.testing.assert_allclose(average, 0.75 * first + 0.25 * second, rtol=1e-5, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(start, after_one))
    assert trainer.served is trainer.ema_generator
    results = trainer.evaluate(lr, hr, return_dict=True, verbose=0)
    from keras_sr.metrics import psnr
    sr = keras.ops.convert_to_numpy(trainer.ema_generator(lr))
    assert results["psnr"] == pytest.approx(np.mean([psnr(s, h, 4) for s, h in zip(sr, hr)]),
                                            abs=1e-3)
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\), got 1.0"):
        PSNRTrainer(generator, scale=4, ema_decay=1.0)


class CountingDiscriminator(keras.Model):
    """Delegates to a discriminator and counts its forward passes (run eagerly)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def call(self, images, training=False):
        self.calls += 1
        return self.inner(images, training=training)


@pytest.mark.parametrize("trainer_class,forwards", [(SRGAN, 3), (ESRGAN, 4)])
def test_the_generator_step_runs_d_on_hr_only_for_a_loss_that_reads_it(trainer_class,
                                                                        forwards):
    # The standard GAN loss ignores D(HR): the step runs D on SR for the generator and on HR
    # and SR for the discriminator (BasicSR's realesrgan_model: three forwards, so three
    # spectral-norm power iterations). The relativistic loss reads D(HR) in both steps.
    discriminator = CountingDiscriminator(VGGStyleDiscriminator(input_size=32, num_features=8))
    trainer = trainer_class(RRDBNet(num_blocks=1, num_features=8, growth_channels=4),
                            discriminator, PerceptualLoss(tiny_extractor(), "l1"))
    trainer.compile(g_optimizer=keras.optimizers.SGD(1e-3),
                    d_optimizer=keras.optimizers.SGD(1e-3), run_eagerly=True)
    trainer.train_on_batch(*batch())
    assert discriminator.calls == forwards
