import keras

from keras_sr.metrics import PSNR, SSIM


class GeneratorTrainer(keras.Model):
    """What every keras-sr trainer shares: the generator, loss trackers and validation.

    Subclasses define `train_step`. `call` passes through to the generator, so a trainer
    predicts like its generator; `test_step` measures PSNR and SSIM on the Y channel the way the
    papers do (uint8 grid, `scale` pixels cropped from every border).

    Args:
        generator: the network being trained.
        scale: int, its SR factor (the validation border crop).
        tracked: names of the values `train_step` logs.
    """

    def __init__(self, generator, scale, tracked, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.scale = scale
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked}
        self.psnr = PSNR(border=scale, name="psnr")
        self.ssim = SSIM(border=scale, name="ssim")

    def call(self, lr_images, training=False):
        return self.generator(lr_images, training=training)

    @property
    def metrics(self):
        return [*self.trackers.values(), self.psnr, self.ssim]

    def record(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in self.trackers}

    @staticmethod
    def minimize(optimizer, tape, scaled_loss, variables):
        """One optimizer step on `optimizer.scale_loss(loss)`, which must be computed inside the
        tape: with float16 loss scaling, scaling outside it would leave no gradient path."""
        gradients = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))

    def test_step(self, data):
        lr_images, hr_images, _ = keras.utils.unpack_x_y_sample_weight(data)
        sr_images = self.generator(lr_images, training=False)
        self.psnr.update_state(hr_images, sr_images)
        self.ssim.update_state(hr_images, sr_images)
        return {"psnr": self.psnr.result(), "ssim": self.ssim.result()}
