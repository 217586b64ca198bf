"""Adversarial losses on discriminator logits: standard GAN (SRGAN) and relativistic average
GAN (ESRGAN §3.2).

All are built from Keras' BinaryCrossentropy(from_logits=True), so under `tf.distribute` they are
already divided by the number of replicas, like every Keras loss. The relativistic average uses
the batch mean of the other side's logits; under a distribution strategy that mean is taken over
the global batch (an all-reduce), so N replicas compute what one device would.
"""

import keras
import tensorflow as tf
from keras import ops


def binary_crossentropy(targets, logits):
    """Keras' BinaryCrossentropy on logits, computed in float32 or wider (float64 logits stay
    float64; a loss object made once would compute in the float type current at import)."""
    dtype = keras.backend.result_type(logits.dtype, "float32")
    return keras.losses.BinaryCrossentropy(from_logits=True, dtype=dtype)(targets, logits)


def global_batch_mean(values):
    """Mean over the batch, across all replicas when called inside a replica context."""
    mean = ops.mean(values)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        # Every replica holds the same number of examples (batches drop their remainder).
        mean = context.all_reduce(tf.distribute.ReduceOp.MEAN, mean)
    return mean


def standard_discriminator_loss(real_logits, fake_logits):
    """SRGAN: -log D(HR) - log(1 - D(SR))."""
    return (binary_crossentropy(ops.ones_like(real_logits), real_logits)
            + binary_crossentropy(ops.zeros_like(fake_logits), fake_logits))


def standard_generator_loss(real_logits, fake_logits):
    """SRGAN §2.2.2: -log D(G(LR)) (the non-saturating form). `real_logits` is unused."""
    del real_logits
    return binary_crossentropy(ops.ones_like(fake_logits), fake_logits)


def relativistic_discriminator_loss(real_logits, fake_logits):
    """ESRGAN eq. 1 as BasicSR computes it (the code behind the released models):
    0.5 BCE(C(x_r) - E[C(x_f)], 1) + 0.5 BCE(C(x_f) - E[C(x_r)], 0), each side's batch mean
    held constant (no gradient through the other side's mean).

    The paper's eq. 1 is the plain sum with gradients through both means; BasicSR halves each
    term and detaches the means (its esrgan_model.py: needed there to back-propagate the two
    halves separately), which is what the published ESRGAN weights were trained with.
    """
    real_mean = ops.stop_gradient(global_batch_mean(real_logits))
    fake_mean = ops.stop_gradient(global_batch_mean(fake_logits))
    return 0.5 * (binary_crossentropy(ops.ones_like(real_logits), real_logits - fake_mean)
                  + binary_crossentropy(ops.zeros_like(fake_logits), fake_logits - real_mean))


def relativistic_generator_loss(real_logits, fake_logits):
    """ESRGAN eq. 2 as BasicSR computes it: the mean of
    BCE(C(x_r) - E[C(x_f)], 0) and BCE(C(x_f) - E[C(x_r)], 1).

    The generator also learns from the real images' term (ESRGAN §3.2: gradients from both
    generated and real data), which is why the real logits are passed in. The paper's eq. 2
    sums the two terms; BasicSR (whose training made the released models, with lambda 5e-3)
    averages them, so the paper's sum would double the effective adversarial weight.
    """
    real_mean, fake_mean = global_batch_mean(real_logits), global_batch_mean(fake_logits)
    return 0.5 * (binary_crossentropy(ops.zeros_like(real_logits), real_logits - fake_mean)
                  + binary_crossentropy(ops.ones_like(fake_logits), fake_logits - real_mean))
