"""Layers that keras-sr's networks are built from; all lower to TFLite builtin ops."""

from keras_sr.layers.clip_to_unit_range import ClipToUnitRange
from keras_sr.layers.crop_to_scaled_size import CropToScaledSize
from keras_sr.layers.nearest_upsampling import NearestUpsampling
from keras_sr.layers.pixel_shuffle import PixelShuffle
from keras_sr.layers.pixel_unshuffle import PixelUnshuffle
from keras_sr.layers.reflect_pad_to_multiple import ReflectPadToMultiple
from keras_sr.layers.residual_block import ResidualBlock
from keras_sr.layers.residual_dense_block import ResidualDenseBlock
from keras_sr.layers.resize_upsampling import ResizeUpsampling
from keras_sr.layers.rrdb import RRDB
from keras_sr.layers.spectral_norm import SpectralNorm

__all__ = [
    "ClipToUnitRange",
    "CropToScaledSize",
    "NearestUpsampling",
    "PixelShuffle",
    "PixelUnshuffle",
    "RRDB",
    "ReflectPadToMultiple",
    "ResidualBlock",
    "ResidualDenseBlock",
    "ResizeUpsampling",
    "SpectralNorm",
]
