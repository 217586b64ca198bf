import keras

from keras_sr.architectures import DISCRIMINATOR_INPUT_MULTIPLES
from keras_sr.layers.resize_upsampling import ResizeUpsampling
from keras_sr.layers.spectral_norm import SpectralNorm
from keras_sr.models.dtypes import keep_dtype_policy, output_dtype

# The U-Net halves the patch three times, and every level is added back to its mirror.
INPUT_MULTIPLE = DISCRIMINATOR_INPUT_MULTIPLES["unet_sn"]


@keras.saving.register_keras_serializable(package="keras_sr")
class UNetDiscriminatorSN(keras.Model):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation: one logit per pixel.

    Wang, Xie, Dong and Shan, "Real-ESRGAN" (ICCVW 2021, arXiv 2107.10833) §3.3, laid out as
    BasicSR's `UNetDiscriminatorSN`: conv3x3 (no SN) + LeakyReLU(0.2); three stride-2 conv4x4
    downsamplings to 2x, 4x, 8x the features; three bilinear x2 upsamplings each followed by a
    conv3x3 and, with `skip_connection`, the sum with the same level of the way down; two more
    conv3x3; a conv3x3 to one channel. Every conv but the first and the last is spectrally
    normalised and has no bias; all activations are LeakyReLU(0.2). Its per-pixel realness
    feedback is what lets the GAN see local artefacts of real-world degradations.

    The normalisation is `keras_sr.layers.SpectralNorm`, parameterised as PyTorch's
    `spectral_norm` that trained the released models: the optimizer updates the raw kernels,
    gradients flow through sigma, and each training call runs one power iteration (three per
    Real-ESRGAN step: D(SR) in the generator step, D(HR) and D(SR) in its own).

    Args:
        input_size: int or None, side of the square patches (a multiple of 8), or None for any
            size whose sides are multiples of 8.
        num_features: int, channels of the first level. Defaults to 64.
        skip_connection: bool, add the downsampling levels to the upsampling ones. Defaults to
            True.
        dtype: dtype policy for every layer; logits stay float32 under mixed policies.

    Example:
    >>> model = UNetDiscriminatorSN(num_features=8)
    >>> model(np.zeros((2, 32, 32, 3), "float32")).shape
    TensorShape([2, 32, 32, 1])
    """

    INPUT_MULTIPLE = INPUT_MULTIPLE

    def __init__(self, input_size=None, num_features=64, skip_connection=True, dtype=None,
                 **kwargs):
        if input_size is not None and (isinstance(input_size, bool)
                                       or not isinstance(input_size, int)
                                       or input_size < INPUT_MULTIPLE
                                       or input_size % INPUT_MULTIPLE):
            raise ValueError(f"UNetDiscriminatorSN needs input_size to be None or a positive "
                             f"multiple of {INPUT_MULTIPLE}, got input_size={input_size!r}")

        # === Layers ===
        def conv(filters, kernel_size, strides, name):
            return SpectralNorm(
                keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                                    use_bias=False, dtype=dtype, name=f"{name}_conv"),
                dtype=dtype, name=name)

        def lrelu(name):
            return keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype, name=name)

        def upsample(name):
            # Bilinear x2 with half-pixel centres: PyTorch's align_corners=False.
            return ResizeUpsampling(2, "bilinear", dtype=dtype, name=name)

        # === Functional Model ===
        hr_images = keras.Input(shape=(input_size, input_size, 3), name="hr_images")
        x0 = lrelu("conv0_lrelu")(keras.layers.Conv2D(
            num_features, 3, padding="same", dtype=dtype, name="conv0")(hr_images))
        x1 = lrelu("conv1_lrelu")(conv(num_features * 2, 4, 2, "conv1")(x0))
        x2 = lrelu("conv2_lrelu")(conv(num_features * 4, 4, 2, "conv2")(x1))
        x3 = lrelu("conv3_lrelu")(conv(num_features * 8, 4, 2, "conv3")(x2))
        features = x3
        for level, (filters, skip) in enumerate(
                ((num_features * 4, x2), (num_features * 2, x1), (num_features, x0)), start=4):
            features = upsample(f"up{level}")(features)
            features = lrelu(f"conv{level}_lrelu")(conv(filters, 3, 1, f"conv{level}")(features))
            if skip_connection:
                features = keras.layers.Add(dtype=dtype, name=f"skip{level}")([features, skip])
        for level in (7, 8):
            features = lrelu(f"conv{level}_lrelu")(
                conv(num_features, 3, 1, f"conv{level}")(features))
        # Logits leave in float32 under mixed policies: the sigmoid lives in the loss.
        logits = keras.layers.Conv2D(1, 3, padding="same", dtype=output_dtype(dtype),
                                     name="logits")(features)
        super().__init__(inputs=hr_images, outputs=logits, dtype=dtype, **kwargs)
        keep_dtype_policy(self, dtype)

        # === Config ===
        self.input_size = input_size
        self.num_features = num_features
        self.skip_connection = skip_connection

    def get_config(self):
        config = super().get_config()
        config.update({"input_size": self.input_size, "num_features": self.num_features,
                       "skip_connection": self.skip_connection})
        return config
