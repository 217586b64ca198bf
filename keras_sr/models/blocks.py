import keras

from keras_sr.layers import pytorch_defaults
from keras_sr.models.dtypes import output_dtype


def conv_leaky_relu(features, filters, dtype, name):
    """The discriminators' stem: conv3x3 with bias (no BN on raw pixels), LeakyReLU(0.2)."""
    features = keras.layers.Conv2D(filters, 3, padding="same", dtype=dtype, name=name)(features)
    return keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype, name=f"{name}_lrelu")(features)


def conv_bn_leaky_relu(features, filters, kernel_size, strides, dtype, name):
    """Conv (no bias: BN follows), BatchNorm, LeakyReLU(0.2): the discriminators' repeated unit."""
    features = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, dtype=dtype,
        name=f"{name}_conv",
    )(features)
    features = pytorch_defaults.batch_norm(dtype, f"{name}_bn")(features)
    return keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype, name=f"{name}_lrelu")(features)


def check_input_size(class_name, input_size, multiple):
    """Discriminators flatten a fixed-size map, so the patch side must survive every halving."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < multiple \
            or input_size % multiple:
        raise ValueError(
            f"{class_name} needs input_size to be a positive multiple of {multiple}, "
            f"got input_size={input_size!r}"
        )


def logits_head(features, hidden_units, dtype):
    """Flatten, Dense(hidden) + LeakyReLU(0.2), Dense(1): one logit per image (no sigmoid)."""
    features = keras.layers.Flatten(dtype=dtype, name="flatten")(features)
    features = keras.layers.Dense(hidden_units, dtype=dtype, name="dense1")(features)
    features = keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype, name="dense1_lrelu")(
        features
    )
    # Logits leave in float32 under mixed policies: the sigmoid lives in the loss.
    return keras.layers.Dense(1, dtype=output_dtype(dtype), name="logits")(features)
