"""Keras layers built with PyTorch's defaults, wherever keras-sr's networks mirror PyTorch ones
(BasicSR, the SRGAN and Real-ESRGAN releases): imported statistics and slopes then mean the same
thing, and a network trained from scratch starts where the PyTorch one does."""

import keras


def batch_norm(dtype, name):
    """BatchNormalization with PyTorch's defaults (momentum 0.1 there = 0.9 here, eps 1e-5).

    The batch statistics are synchronized across replicas under a distribution strategy, so N
    replicas train exactly as one device with the global batch would (on one device it is
    plain BN).
    """
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True,
                                           dtype=dtype, name=name)


def prelu(dtype, name):
    """PReLU with one slope per channel, shared over space (so any H x W works), starting at
    0.25 as torch.nn.PReLU and He et al. 2015 do; Keras' default of 0 would start as a ReLU."""
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25),
                              shared_axes=[1, 2], dtype=dtype, name=name)
