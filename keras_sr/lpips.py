"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), version 0.1,
equal to the `lpips` package.

The images, mapped from [0, 1] to [-1, 1], are shifted and scaled per channel, passed through
an ImageNet trunk (torchvision's AlexNet or VGG16 `features`), and at five ReLU outputs the
features are normalised to unit length along channels; the squared differences are weighted per
channel by the learned 1x1 linear heads, averaged over space and summed over the five layers.

The trunks are torchvision's files (`alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`), found
as keras-sr finds its VGG19 weights (`keras_sr.pretrained_files`); the linear heads are the
small `weights/v0.1/<net>.pth` files the `lpips` package ships (BSD-2-Clause), located without
importing it (it needs PyTorch) or given by path. Both are read with keras-sr's safe `.pth`
reader.
"""

import importlib.util
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_sr import pretrained_files

# The lpips package's ScalingLayer, on [-1, 1] inputs.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORMALIZE_EPSILON = 1e-10
LINEAR_ENVIRONMENT_VARIABLE = "KERAS_SR_LPIPS_LINEAR_WEIGHTS"

# torchvision `features` as (op, ...): ("conv", index, filters, kernel, stride, padding) with
# its ReLU, ("pool", size, stride), and ("tap",) where LPIPS reads a layer.
_ALEX = (("conv", 0, 64, 11, 4, 2), ("tap",), ("pool", 3, 2), ("conv", 3, 192, 5, 1, 2),
         ("tap",), ("pool", 3, 2), ("conv", 6, 384, 3, 1, 1), ("tap",),
         ("conv", 8, 256, 3, 1, 1), ("tap",), ("conv", 10, 256, 3, 1, 1), ("tap",))


def _vgg16_plan():
    plan, index = [], 0
    for block, (filters, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3),
                                              (512, 3))):
        if block:
            plan.append(("pool", 2, 2))
            index += 1
        for _ in range(convs):
            plan.append(("conv", index, filters, 3, 1, 1))
            index += 2
        plan.append(("tap",))
    return tuple(plan)


TRUNKS = {
    "alex": (_ALEX, pretrained_files.torchvision_file("alexnet-owt-7be5be79.pth",
                                                      "KERAS_SR_ALEXNET_WEIGHTS")),
    "vgg": (_vgg16_plan(), pretrained_files.torchvision_file("vgg16-397923af.pth",
                                                             "KERAS_SR_VGG16_WEIGHTS")),
}
NAMES = {"alex": "torchvision's AlexNet", "vgg": "torchvision's VGG16"}
# The smallest image side whose every tapped layer is at least one pixel.
MIN_SIDE = {"alex": 32, "vgg": 16}


def _how_to_supply(net, what, reason):
    if what == "trunk":
        spec = TRUNKS[net][1]
        # The environment variable and the cache work for the commands and for Python alike.
        where = (f"download {spec.url} on a machine with internet access and set "
                 f"{spec.environment_variable} to its path, or place it in "
                 f"{spec.cache_path()} (in Python, trunk_weights=PATH also works)")
    else:
        where = (f"install the `lpips` package (`pip install --no-deps lpips`; keras-sr only "
                 f"reads its weights/v0.1/{net}.pth) or set {LINEAR_ENVIRONMENT_VARIABLE} to "
                 f"that file's path (in Python, linear_weights=PATH also works)")
    return (f"LPIPS ({net}) needs its {NAMES[net] if what == 'trunk' else 'linear head'} "
            f"weights, but {reason}: {where}. It is never computed with random weights.")


def linear_weights_path(net, path=None):
    """The lpips package's `weights/v0.1/<net>.pth`, or `path`, or
    `$KERAS_SR_LPIPS_LINEAR_WEIGHTS`; raises WeightsUnavailable."""
    path = path or os.environ.get(LINEAR_ENVIRONMENT_VARIABLE)
    if path is None:
        spec = importlib.util.find_spec("lpips")  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise pretrained_files.WeightsUnavailable(_how_to_supply(
                net, "linear", "the lpips package is not installed"))
        path = os.path.join(spec.submodule_search_locations[0], "weights", "v0.1",
                            f"{net}.pth")
    if not os.path.isfile(path):
        raise pretrained_files.WeightsUnavailable(_how_to_supply(
            net, "linear", f"{path} does not exist"))
    return path


def trunk_weights_path(net, path=None, download=True):
    if path is not None:
        if not os.path.isfile(path):
            raise pretrained_files.WeightsUnavailable(_how_to_supply(
                net, "trunk", f"the file {path!r} does not exist"))
        return path
    return pretrained_files.resolve(TRUNKS[net][1],
                                    lambda reason: _how_to_supply(net, "trunk", reason),
                                    download=download)


@keras.saving.register_keras_serializable(package="keras_sr")
class LPIPSInput(keras.layers.Layer):
    """[0, 1] RGB -> the lpips package's scaled input: (2x - 1 - shift) / scale."""

    def call(self, images):
        shift = ops.convert_to_tensor(SHIFT, dtype=images.dtype)
        scale = ops.convert_to_tensor(SCALE, dtype=images.dtype)
        return (2.0 * images - 1.0 - shift) / scale


def build_trunk(net):
    """The trunk as a Keras model: [0, 1] images -> the five tapped ReLU outputs. Its convs
    are named `features_<torchvision index>`. Always float32, whatever the global dtype policy
    (a metric, not a trained network)."""
    plan = TRUNKS[net][0]
    images = keras.Input((None, None, 3), name="images", dtype="float32")
    features = LPIPSInput(name="lpips_input", dtype="float32")(images)
    taps = []
    for op in plan:
        if op[0] == "conv":
            _, index, filters, kernel, stride, padding = op
            features = keras.layers.ZeroPadding2D(padding, name=f"pad_{index}",
                                                  dtype="float32")(features)
            features = keras.layers.Conv2D(filters, kernel, strides=stride, activation="relu",
                                           name=f"features_{index}", dtype="float32")(features)
        elif op[0] == "pool":
            features = keras.layers.MaxPooling2D(op[1], strides=op[2],
                                                 dtype="float32")(features)
        else:
            taps.append(features)
    return keras.Model(images, taps, name=f"lpips_{net}_trunk", dtype="float32")


class LPIPS:
    """LPIPS v0.1 distances between image batches, equal to `lpips.LPIPS(net=net)`.

    Zhang, Isola, Efros, Shechtman and Wang, "The Unreasonable Effectiveness of Deep Features as
    a Perceptual Metric", CVPR 2018.

    Args:
        net: "alex" (the package's default, recommended as a metric) or "vgg".
        trunk_weights: torchvision's ImageNet file of the trunk; found like keras-sr's VGG19
            weights when None (environment variable, PyTorch's cache, download).
        linear_weights: the lpips package's `weights/v0.1/<net>.pth`; found in the installed
            package when None.
        download: allow fetching the trunk file (30 s timeout).

    Example:
    >>> lpips = LPIPS("alex")
    >>> distances = lpips(sr_images, hr_images)  # [batch], [0, 1] float RGB in
    """

    def __init__(self, net="alex", trunk_weights=None, linear_weights=None, download=True):
        if net not in TRUNKS:
            raise ValueError(f"LPIPS net must be one of {sorted(TRUNKS)}, got {net!r}")
        self.net = net
        self.trunk = build_trunk(net)
        trunk_path = trunk_weights_path(net, trunk_weights, download)
        linear_path = linear_weights_path(net, linear_weights)
        indices = [op[1] for op in TRUNKS[net][0] if op[0] == "conv"]
        convs = pretrained_files.torchvision_convs(
            trunk_path, indices, NAMES[net],
            lambda reason: pretrained_files.WeightsUnavailable(
                _how_to_supply(net, "trunk", reason)))
        for index, values in zip(indices, convs):
            self.trunk.get_layer(f"features_{index}").set_weights(values)
        self.heads = self.linear_heads(linear_path)
        self._distance = tf.function(self._distances, reduce_retracing=True)

    def linear_heads(self, path):
        """The five per-channel weights of the 1x1 linear heads (`lin<k>.model.1.weight`)."""
        from keras_sr.convert import torch as torch_files
        from keras_sr.convert.errors import ConversionError

        try:
            state_dict = torch_files.load(path)
        except ConversionError as error:
            raise pretrained_files.WeightsUnavailable(
                _how_to_supply(self.net, "linear", str(error))) from None
        heads = []
        for layer, tap in enumerate(self.trunk.outputs):
            key = f"lin{layer}.model.1.weight"
            value = state_dict.get(key) if isinstance(state_dict, dict) else None
            if value is None or np.asarray(value).size != tap.shape[-1]:
                raise pretrained_files.WeightsUnavailable(_how_to_supply(
                    self.net, "linear", f"{path} has no {key} of {tap.shape[-1]} channels"))
            heads.append(tf.constant(np.asarray(value, np.float32).reshape(-1)))
        return heads

    def _distances(self, images_a, images_b):
        total = 0.0
        for features_a, features_b, head in zip(self.trunk(images_a), self.trunk(images_b),
                                                self.heads):
            unit_a = features_a / (tf.norm(features_a, axis=-1, keepdims=True)
                                   + NORMALIZE_EPSILON)
            unit_b = features_b / (tf.norm(features_b, axis=-1, keepdims=True)
                                   + NORMALIZE_EPSILON)
            weighted = tf.reduce_sum(tf.square(unit_a - unit_b) * head, axis=-1)
            total += tf.reduce_mean(weighted, axis=[1, 2])
        return total

    def __call__(self, images_a, images_b):
        """Distances `[batch]` between two `[batch, H, W, 3]` (or one `[H, W, 3]`) float [0, 1]
        image batches of the same shape."""
        images_a = tf.convert_to_tensor(images_a, tf.float32)
        images_b = tf.convert_to_tensor(images_b, tf.float32)
        if images_a.shape != images_b.shape:
            raise ValueError(f"LPIPS compares images of one shape, got {images_a.shape} and "
                             f"{images_b.shape}")
        if images_a.shape.rank not in (3, 4) or images_a.shape[-1] != 3:
            raise ValueError(f"LPIPS needs [H, W, 3] or [batch, H, W, 3] images, got "
                             f"{images_a.shape}")
        if min(images_a.shape[-3:-1]) < MIN_SIDE[self.net]:
            raise ValueError(f"LPIPS ({self.net}) needs images of at least "
                             f"{MIN_SIDE[self.net]}x{MIN_SIDE[self.net]} pixels, got "
                             f"{images_a.shape[-2]}x{images_a.shape[-3]}")
        if images_a.shape.rank == 3:
            return self._distance(images_a[None], images_b[None])[0]
        return self._distance(images_a, images_b)
