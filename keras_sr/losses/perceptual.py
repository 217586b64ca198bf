"""VGG19 perceptual loss (SRGAN §2.2.1, ESRGAN §3.3).

The feature extractor maps [0, 1] RGB images to VGG19 features, from either of two sets of
ImageNet weights, each with the preprocessing it was trained with:

- "imagenet": Keras' weights, converted from the original Caffe VGG19 that SRGAN used (RGB ->
  BGR on 0-255, minus the ImageNet channel means).
- "torchvision": torchvision's `vgg19-dcbb9e9d.pth`, which ESRGAN's code (BasicSR) uses: RGB on
  [0, 1], normalised by the ImageNet mean and standard deviation. ESRGAN's loss weights (1.0 /
  5e-3 / 1e-2) were tuned on these features, whose magnitudes differ from the Caffe ones.

Keras' VGG convs carry their ReLU, so ESRGAN's "before activation" features come from a linear
copy of the target conv holding the same weights.

The weights are never silently random: `resolve_vgg19_weights` finds them (an explicit path, an
environment variable, Keras' or PyTorch's cache, or a download with a timeout) or raises
`VGGWeightsUnavailable` saying how to supply the file, before any training starts.
"""

import os

import keras
from keras import ops

from keras_sr import pretrained_files
from keras_sr.pretrained_files import DOWNLOAD_TIMEOUT_SECONDS, WeightsUnavailable  # noqa: F401

VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                   + VGG19_NOTOP_FILE)
VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"
WEIGHTS_ENVIRONMENT_VARIABLE = "KERAS_SR_VGG19_WEIGHTS"
# Caffe-style preprocessing of Keras' ImageNet VGG weights: BGR channel means on 0-255.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
TORCHVISION_ENVIRONMENT_VARIABLE = "KERAS_SR_VGG19_TORCHVISION_WEIGHTS"
TORCHVISION_VGG19 = pretrained_files.torchvision_file(TORCHVISION_FILE,
                                                      TORCHVISION_ENVIRONMENT_VARIABLE)
TORCHVISION_URL = TORCHVISION_VGG19.url
KERAS_VGG19 = pretrained_files.WeightsFile(VGG19_NOTOP_FILE, VGG19_NOTOP_URL, "md5",
                                           VGG19_NOTOP_MD5, WEIGHTS_ENVIRONMENT_VARIABLE,
                                           cache="keras")
# torchvision's normalisation: RGB on [0, 1], ImageNet mean and standard deviation.
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)
# Index in torchvision's `vgg19().features` of each conv, in Keras' VGG19 layer order.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
KERAS_CONV_NAMES = tuple(f"block{block}_conv{conv}" for block, convs in
                         ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for conv in range(1, convs + 1))


class VGGWeightsUnavailable(WeightsUnavailable):
    """The VGG19 ImageNet weights could not be found or fetched."""


def _how_to_supply(reason, weights="imagenet"):
    if weights == "torchvision":
        where = (f"Download {TORCHVISION_URL} on a machine with internet access and pass its "
                 f"path with `--set loss.vgg_weights=PATH` or the "
                 f"{TORCHVISION_ENVIRONMENT_VARIABLE} environment variable (or place it in "
                 f"{torch_cache_path()}); `--set loss.vgg_weights=imagenet` uses Keras' Caffe "
                 "weights instead, which are not the features ESRGAN's loss weights were tuned on")
    else:
        where = (f"Download {VGG19_NOTOP_URL} (MD5 {VGG19_NOTOP_MD5}) on a machine with internet "
                 f"access and pass its path with `--set loss.vgg_weights=PATH` or the "
                 f"{WEIGHTS_ENVIRONMENT_VARIABLE} environment variable (or place it in "
                 f"~/.keras/models/)")
    return (f"VGG19 ImageNet weights ({weights}) are needed for the perceptual loss, but "
            f"{reason}. {where}. Training with a random VGG would be meaningless, so it stops "
            "here.")


def keras_cache_path():
    return KERAS_VGG19.cache_path()


def torch_cache_path():
    """Where `torch.hub` keeps torchvision's file ($TORCH_HOME, default ~/.cache/torch)."""
    return TORCHVISION_VGG19.cache_path()


def is_torchvision_file(path):
    """A PyTorch state dict (`.pth` / `.pt`) rather than a Keras `.h5` weights file."""
    return os.path.splitext(path)[1].lower() in (".pth", ".pt")


def resolve_vgg19_weights(weights="imagenet", download=True):
    """Path of a VGG19 weights file, or raises `VGGWeightsUnavailable`.

    Args:
        weights: "imagenet" (Keras' Caffe-converted no-top `.h5`), "torchvision"
            (torchvision's `vgg19-dcbb9e9d.pth`), or the path of either kind of file (a
            `.pth` / `.pt` path is read as torchvision's layout).
        download: fetch the named file into Keras' (or PyTorch's) cache when no local copy
            exists (bounded by a 30 s timeout, so an offline machine fails fast).
    """
    if weights not in ("imagenet", "torchvision"):
        if not os.path.isfile(weights):
            raise VGGWeightsUnavailable(_how_to_supply(
                f"the file {weights!r} does not exist",
                "torchvision" if is_torchvision_file(weights) else "imagenet"))
        return weights
    spec = KERAS_VGG19 if weights == "imagenet" else TORCHVISION_VGG19
    return pretrained_files.resolve(spec, lambda reason: _how_to_supply(reason, weights),
                                    VGGWeightsUnavailable, download)


def torchvision_weights(path):
    """`{keras conv name: [kernel, bias]}` from torchvision's VGG19 state dict at `path`
    (`features.N.weight` / `.bias`, OIHW), read without running code from the file."""
    convs = pretrained_files.torchvision_convs(
        path, TORCHVISION_CONV_INDICES, "torchvision's VGG19",
        lambda reason: VGGWeightsUnavailable(_how_to_supply(reason, "torchvision")))
    return dict(zip(KERAS_CONV_NAMES, convs))


@keras.saving.register_keras_serializable(package="keras_sr")
class CaffePreprocess(keras.layers.Layer):
    """[0, 1] RGB -> BGR on 0-255 minus the ImageNet means, as Keras' VGG19 weights expect."""

    def call(self, images):
        bgr = ops.flip(images, axis=-1) * 255.0
        return bgr - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)


@keras.saving.register_keras_serializable(package="keras_sr")
class TorchvisionPreprocess(keras.layers.Layer):
    """[0, 1] RGB -> (x - mean) / std with ImageNet's statistics, as torchvision's VGG19 expects
    (and BasicSR's VGGFeatureExtractor with use_input_norm, range_norm off)."""

    def call(self, images):
        mean = ops.convert_to_tensor(IMAGENET_RGB_MEAN, dtype=images.dtype)
        std = ops.convert_to_tensor(IMAGENET_RGB_STD, dtype=images.dtype)
        return (images - mean) / std


def vgg19_features(layer_name="block5_conv4", before_activation=True, weights="imagenet"):
    """A frozen VGG19 feature extractor: [0, 1] RGB images -> the features of `layer_name`
    (or of each of several layers, as a list).

    Args:
        layer_name: a conv layer of Keras' VGG19, e.g. "block5_conv4" (phi_5,4; torchvision's
            `features.34`, BasicSR's "conv5_4"), or a tuple of them (Real-ESRGAN's loss reads
            five).
        before_activation: take the conv output before its ReLU (ESRGAN §3.3: sparse, post-ReLU
            features weaken supervision and shift brightness); False gives SRGAN's post-ReLU
            features.
        weights: "imagenet" (Keras' Caffe weights), "torchvision", or a local file of either
            (see `resolve_vgg19_weights`); the preprocessing follows the weights. None builds
            a random VGG with Keras' preprocessing, for timing only.
    """
    names = (layer_name,) if isinstance(layer_name, str) else tuple(layer_name)
    path = None if weights is None else resolve_vgg19_weights(weights)
    vgg = keras.applications.VGG19(include_top=False, weights=None,
                                   input_shape=(None, None, 3))
    torchvision = path is not None and is_torchvision_file(path)
    if torchvision:
        for name, values in torchvision_weights(path).items():
            vgg.get_layer(name).set_weights(values)
    elif path is not None:
        vgg.load_weights(path)
    last = max(vgg.layers.index(vgg.get_layer(name)) for name in names)
    images = keras.Input((None, None, 3), name="images")
    features = TorchvisionPreprocess(name="torchvision_preprocess")(images) if torchvision \
        else CaffePreprocess(name="caffe_preprocess")(images)
    taps = {}
    for layer in vgg.layers[1: last + 1]:
        if layer.name in names and before_activation:
            # A linear copy of the conv gives its output before the ReLU; the ReLU then
            # continues the network as the original layer would.
            linear = keras.layers.Conv2D(layer.filters, layer.kernel_size, padding="same",
                                         name=f"{layer.name}_linear")
            taps[layer.name] = linear(features)
            linear.set_weights(layer.get_weights())
            features = keras.layers.ReLU(name=f"{layer.name}_relu")(taps[layer.name])
        else:
            features = layer(features)
            if layer.name in names:
                taps[layer.name] = features
    outputs = taps[names[0]] if len(names) == 1 else [taps[name] for name in names]
    extractor = keras.Model(images, outputs, name="vgg19_" + "_".join(names))
    extractor.trainable = False
    return extractor


@keras.saving.register_keras_serializable(package="keras_sr")
class PerceptualLoss(keras.losses.Loss):
    """Distance between feature maps of SR and HR images, per image.

    Args:
        feature_extractor: a frozen model mapping [0, 1] images to features, or to a list of
            them (`vgg19_features`, or any small model in tests).
        criterion: "l1" (ESRGAN) or "mse" (SRGAN).
        feature_scale: multiplies both feature maps first; SRGAN §3.2 uses 1 / 12.75 to bring
            the VGG loss to the magnitude of the MSE loss.
        layer_weights: with several feature maps, the weight of each distance in the sum
            (Real-ESRGAN: 0.1, 0.1, 1, 1, 1 on conv1_2, conv2_2, conv3_4, conv4_4, conv5_4);
            1 each by default.

    Example:
    >>> loss = PerceptualLoss(vgg19_features(weights=path), criterion="l1")
    >>> value = loss(hr_images, sr_images)
    """

    def __init__(self, feature_extractor, criterion="l1", feature_scale=1.0,
                 layer_weights=None, name="perceptual_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if criterion not in ("l1", "mse"):
            raise ValueError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
        self.feature_extractor = feature_extractor
        self.criterion = criterion
        self.feature_scale = feature_scale
        self.layer_weights = layer_weights

    def call(self, y_true, y_pred):
        hr_features = self.feature_extractor(y_true, training=False)
        sr_features = self.feature_extractor(y_pred, training=False)
        if not isinstance(sr_features, (list, tuple)):
            hr_features, sr_features = [hr_features], [sr_features]
        weights = self.layer_weights or [1.0] * len(sr_features)
        if len(weights) != len(sr_features):
            raise ValueError(f"{len(weights)} layer_weights for {len(sr_features)} feature "
                             "maps")
        total = 0.0
        for weight, hr, sr in zip(weights, hr_features, sr_features):
            hr = ops.stop_gradient(hr)
            # At least float32: bfloat16 / float16 features are compared in float32.
            dtype = keras.backend.result_type(sr.dtype, "float32")
            difference = (ops.cast(sr, dtype) - ops.cast(hr, dtype)) * self.feature_scale
            distance = ops.abs(difference) if self.criterion == "l1" else ops.square(difference)
            total = total + weight * ops.mean(distance, axis=(1, 2, 3))
        return total
