"""VGG19 perceptual loss (SRGAN §2.2.1, ESRGAN §3.3).

The feature extractor maps [0, 1] RGB images to VGG19 features, preprocessed the way Keras'
ImageNet weights expect (caffe style: RGB -> BGR on 0-255, minus the ImageNet channel means).
Keras' VGG convs carry their ReLU, so ESRGAN's "before activation" features come from a linear
copy of the target conv holding the same weights.

The weights are never silently random: `resolve_vgg19_weights` finds them (an explicit path, the
`KERAS_SR_VGG19_WEIGHTS` environment variable, Keras' cache, or a download with a timeout) or
raises `VGGWeightsUnavailable` saying how to supply the file, before any training starts.
"""

import hashlib
import os
import urllib.request

import keras
from keras import ops

VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                   + VGG19_NOTOP_FILE)
VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"
WEIGHTS_ENVIRONMENT_VARIABLE = "KERAS_SR_VGG19_WEIGHTS"
DOWNLOAD_TIMEOUT_SECONDS = 30
# Caffe-style preprocessing of Keras' ImageNet VGG weights: BGR channel means on 0-255.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


class VGGWeightsUnavailable(RuntimeError):
    """The VGG19 ImageNet weights could not be found or fetched."""


def _how_to_supply(reason):
    return (
        f"VGG19 ImageNet weights are needed for the perceptual loss, but {reason}. "
        f"Download {VGG19_NOTOP_URL} (MD5 {VGG19_NOTOP_MD5}) on a machine with internet "
        f"access and pass its path with `--set loss.vgg_weights=PATH` or the "
        f"{WEIGHTS_ENVIRONMENT_VARIABLE} environment variable (or place it in "
        f"~/.keras/models/). Training with a random VGG would be meaningless, so it stops here."
    )


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keras_cache_path():
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(keras_home, "models", VGG19_NOTOP_FILE)


def resolve_vgg19_weights(weights="imagenet", download=True):
    """Path of a VGG19 (no top) weights file, or raises `VGGWeightsUnavailable`.

    Args:
        weights: "imagenet", or the path of a Keras VGG19 no-top `.h5` / `.weights.h5` file.
        download: with "imagenet", fetch the file into Keras' cache when no local copy exists
            (bounded by a 30 s timeout, so an offline machine fails fast).
    """
    if weights != "imagenet":
        if not os.path.isfile(weights):
            raise VGGWeightsUnavailable(_how_to_supply(f"the file {weights!r} does not exist"))
        return weights
    from_environment = os.environ.get(WEIGHTS_ENVIRONMENT_VARIABLE)
    if from_environment:
        if not os.path.isfile(from_environment):
            raise VGGWeightsUnavailable(_how_to_supply(
                f"{WEIGHTS_ENVIRONMENT_VARIABLE}={from_environment!r} is not a file"))
        return from_environment
    cached = keras_cache_path()
    if os.path.isfile(cached) and _md5(cached) == VGG19_NOTOP_MD5:
        return cached
    if not download:
        raise VGGWeightsUnavailable(_how_to_supply(f"there is no copy at {cached}"))
    partial = cached + ".partial"
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        response = urllib.request.urlopen(VGG19_NOTOP_URL, timeout=DOWNLOAD_TIMEOUT_SECONDS)
        with response, open(partial, "wb") as handle:
            while chunk := response.read(1 << 20):
                handle.write(chunk)
    except OSError as error:
        if os.path.exists(partial):
            os.remove(partial)
        raise VGGWeightsUnavailable(_how_to_supply(
            f"downloading them failed ({type(error).__name__}: {error})")) from None
    if _md5(partial) != VGG19_NOTOP_MD5:
        os.remove(partial)
        raise VGGWeightsUnavailable(_how_to_supply("the downloaded file has the wrong checksum"))
    os.replace(partial, cached)
    return cached


@keras.saving.register_keras_serializable(package="keras_sr")
class CaffePreprocess(keras.layers.Layer):
    """[0, 1] RGB -> BGR on 0-255 minus the ImageNet means, as Keras' VGG19 weights expect."""

    def call(self, images):
        bgr = ops.flip(images, axis=-1) * 255.0
        return bgr - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)


def vgg19_features(layer_name="block5_conv4", before_activation=True, weights="imagenet"):
    """A frozen VGG19 feature extractor: [0, 1] RGB images -> the features of `layer_name`.

    Args:
        layer_name: a conv layer of Keras' VGG19, e.g. "block5_conv4" (phi_5,4).
        before_activation: take the conv output before its ReLU (ESRGAN §3.3: sparse, post-ReLU
            features weaken supervision and shift brightness); False gives SRGAN's post-ReLU
            features.
        weights: "imagenet" or a local weights path (see `resolve_vgg19_weights`); None builds
            a random VGG, for timing only.
    """
    path = None if weights is None else resolve_vgg19_weights(weights)
    vgg = keras.applications.VGG19(include_top=False, weights=None,
                                   input_shape=(None, None, 3))
    if path is not None:
        vgg.load_weights(path)
    target = vgg.get_layer(layer_name)
    images = keras.Input((None, None, 3), name="images")
    features = CaffePreprocess(name="caffe_preprocess")(images)
    for layer in vgg.layers[1: vgg.layers.index(target)]:
        features = layer(features)
    if before_activation:
        linear = keras.layers.Conv2D(target.filters, target.kernel_size, padding="same",
                                     name=f"{layer_name}_linear")
        features = linear(features)
        linear.set_weights(target.get_weights())
    else:
        features = target(features)
    extractor = keras.Model(images, features, name=f"vgg19_{layer_name}")
    extractor.trainable = False
    return extractor


@keras.saving.register_keras_serializable(package="keras_sr")
class PerceptualLoss(keras.losses.Loss):
    """Distance between feature maps of SR and HR images, per image.

    Args:
        feature_extractor: a frozen model mapping [0, 1] images to features (`vgg19_features`,
            or any small model in tests).
        criterion: "l1" (ESRGAN) or "mse" (SRGAN).
        feature_scale: multiplies both feature maps first; SRGAN §3.2 uses 1 / 12.75 to bring
            the VGG loss to the magnitude of the MSE loss.

    Example:
    >>> loss = PerceptualLoss(vgg19_features(weights=path), criterion="l1")
    >>> value = loss(hr_images, sr_images)
    """

    def __init__(self, feature_extractor, criterion="l1", feature_scale=1.0,
                 name="perceptual_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if criterion not in ("l1", "mse"):
            raise ValueError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
        self.feature_extractor = feature_extractor
        self.criterion = criterion
        self.feature_scale = feature_scale

    def call(self, y_true, y_pred):
        hr_features = ops.stop_gradient(self.feature_extractor(y_true, training=False))
        sr_features = self.feature_extractor(y_pred, training=False)
        difference = (ops.cast(sr_features, "float32") - ops.cast(hr_features, "float32")) \
            * self.feature_scale
        distance = ops.abs(difference) if self.criterion == "l1" else ops.square(difference)
        return ops.mean(distance, axis=(1, 2, 3))
