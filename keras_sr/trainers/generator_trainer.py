import keras
import tensorflow as tf
from keras import ops

from keras_sr.metrics import PSNR, SSIM


def replicas_in_sync():
    """How many replicas compute this step (1 outside a distribution strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


class GeneratorTrainer(keras.Model):
    """What every keras-sr trainer shares: the generator, its EMA, loss trackers and validation.

    Subclasses define `train_step`. `call` passes through to the generator, so a trainer
    predicts like its generator; `test_step` measures PSNR and SSIM on the Y channel the way the
    papers do (uint8 grid, `scale` pixels cropped from every border), on the EMA generator when
    there is one.

    Args:
        generator: the network being trained.
        scale: int, its SR factor (the validation border crop).
        tracked: names of the values `train_step` logs.
        ema_decay: float, keeps `ema_generator`, an exponential moving average of the
            generator's weights updated after every generator step (BasicSR's net_g_ema, 0.999
            in its recipes). 0 (the default) keeps none.
        pixel_sharpened, perceptual_sharpened: compare that loss with the unsharp-masked HR
            images instead of the HR images (Real-ESRGAN's l1_gt_usm / percep_gt_usm). The
            batch is sharpened once per step whichever terms use it.
    """

    def __init__(self, generator, scale, tracked, ema_decay=0.0, pixel_sharpened=False,
                 perceptual_sharpened=False, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.generator = generator
        self.scale = scale
        self.ema_decay = ema_decay
        self.pixel_sharpened = pixel_sharpened
        self.perceptual_sharpened = perceptual_sharpened
        self.ema_generator = None
        if ema_decay:
            self.ema_generator = type(generator).from_config(generator.get_config())
            self.ema_generator.set_weights(generator.get_weights())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked}
        self.psnr = PSNR(border=scale, name="psnr")
        self.ssim = SSIM(border=scale, name="ssim")

    @property
    def served(self):
        """What is validated and saved: the EMA generator when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, lr_images, training=False):
        return self.generator(lr_images, training=training)

    @property
    def metrics(self):
        return [*self.trackers.values(), self.psnr, self.ssim]

    def record(self, **values):
        """Updates the trackers. Keras losses divide by the number of replicas (their gradients
        are summed across replicas), so each `*_loss` is scaled back: the logs show the loss of
        the global batch whatever the number of replicas."""
        replicas = replicas_in_sync()
        for name, value in values.items():
            if name.endswith("_loss") and replicas > 1:
                value = ops.multiply(value, ops.cast(replicas, value.dtype))
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in self.trackers}

    @property
    def sharpened_terms(self):
        """The loss terms compared with the sharpened HR batch (subclasses add theirs)."""
        return {"pixel_loss": self.pixel_sharpened,
                "perceptual_loss": self.perceptual_sharpened}

    def sharpen(self, hr_images):
        """The unsharp-masked batch when a term (`sharpened_terms`) uses it, else None."""
        if not any(self.sharpened_terms.values()):
            return None
        from keras_sr.data.real_degradations import unsharp_mask

        return unsharp_mask(hr_images)

    def content_loss(self, hr_images, sr_images, sharpened=None):
        """`(pixel_weight x pixel + perceptual_weight x perceptual, {name: term})`; a term whose
        weight is 0 is neither computed nor logged (its tracker shows 0). Each term compares
        with `sharpened` (from `sharpen`) where `sharpened_terms` says so. Subclasses set
        `pixel_loss`, `perceptual_loss` and their weights."""
        terms, total = {}, 0.0
        for name, weight in (("pixel_loss", self.pixel_weight),
                             ("perceptual_loss", self.perceptual_weight)):
            if weight:
                target = sharpened if self.sharpened_terms[name] else hr_images
                terms[name] = getattr(self, name)(target, sr_images)
                total = total + weight * terms[name]
        return total, terms

    @staticmethod
    def minimize(optimizer, tape, scaled_loss, variables):
        """One optimizer step on `optimizer.scale_loss(loss)`, which must be computed inside the
        tape: with float16 loss scaling, scaling outside it would leave no gradient path."""
        gradients = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))

    # Python loops over weights, no tensor control flow: autograph's conversion of each call
    # only slowed the trace.
    @tf.autograph.experimental.do_not_convert
    def update_ema(self):
        """ema = decay * ema + (1 - decay) * weight for every generator weight (batch-norm
        statistics included, as BasicSR's model_ema does)."""
        if self.ema_generator is None:
            return
        rate = 1.0 - self.ema_decay
        # `.value`: the tf.Variable (mirrored under a strategy) behind each Keras variable.
        pairs = [(average.value, weight.value) for average, weight
                 in zip(self.ema_generator.weights, self.generator.weights)]

        rates = {}

        def move(average, weight):
            # ema - (1 - decay)(ema - weight), the same average, in one kernel: four graph
            # nodes a weight instead of eight (RRDBNet has 702 weights).
            if average.dtype not in rates:
                rates[average.dtype] = tf.constant(rate, average.dtype)
            return tf.raw_ops.ResourceApplyGradientDescent(
                var=average.handle, alpha=rates[average.dtype],
                delta=tf.subtract(average.value(), weight.value()))

        def update(strategy):
            # In cross-replica context, as Keras' optimizers update: once per device copy of
            # each (mirrored) average, from the same device's copy of the weight.
            for average, weight in pairs:
                strategy.extended.update(average, move, args=(weight,), group=False)

        context = tf.distribute.get_replica_context()
        if context is None:
            update(tf.distribute.get_strategy())
        else:
            context.merge_call(update)

    def test_step(self, data):
        lr_images, hr_images, _ = keras.utils.unpack_x_y_sample_weight(data)
        sr_images = self.served(lr_images, training=False)
        self.psnr.update_state(hr_images, sr_images)
        self.ssim.update_state(hr_images, sr_images)
        return {"psnr": self.psnr.result(), "ssim": self.ssim.result()}
