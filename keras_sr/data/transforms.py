"""Seeded, reproducible augmentations of aligned (LR, HR) pairs, for tf.data.

Every random draw is stateless (`tf.random.stateless_*`) and keyed by a per-element seed, so a
pipeline gives the same patches for the same seed whatever the parallelism of its `map`.
"""

import tensorflow as tf

# Offsets into a per-element seed, one per independent random decision.
CROP_KEY, FLIP_KEY, ROTATE_KEY = 0, 1, 2


def _seed(element_seed, key):
    return tf.stack([tf.cast(element_seed, tf.int64), tf.constant(key, tf.int64)])


def random_crop_pair(lr_image, hr_image, hr_patch_size, scale, element_seed):
    """Aligned random crop: an HR patch of `hr_patch_size` and its LR patch of size P / scale.

    The LR corner is drawn on the LR grid and multiplied by `scale` for the HR corner, so the
    two patches cover exactly the same scene.
    """
    lr_patch_size = hr_patch_size // scale
    lr_shape = tf.shape(lr_image)
    limits = tf.stack([lr_shape[0] - lr_patch_size + 1, lr_shape[1] - lr_patch_size + 1])
    corner = tf.random.stateless_uniform(
        [2], _seed(element_seed, CROP_KEY), minval=0, maxval=tf.int32.max, dtype=tf.int32
    ) % limits
    lr_patch = lr_image[corner[0]: corner[0] + lr_patch_size,
                        corner[1]: corner[1] + lr_patch_size]
    hr_corner = corner * scale
    hr_patch = hr_image[hr_corner[0]: hr_corner[0] + hr_patch_size,
                        hr_corner[1]: hr_corner[1] + hr_patch_size]
    channels = lr_image.shape[-1]
    lr_patch = tf.ensure_shape(lr_patch, [lr_patch_size, lr_patch_size, channels])
    hr_patch = tf.ensure_shape(hr_patch, [hr_patch_size, hr_patch_size, channels])
    return lr_patch, hr_patch


def random_flip_rotate_pair(lr_image, hr_image, element_seed, flip=True, rotate=True):
    """The same random horizontal flip and 90-degree rotation (k = 0..3) on both images.

    With both on, the eight dihedral transforms of a square patch are equally likely, as in
    BasicSR's `augment(hflip=True, rotation=True)`.
    """
    if flip:
        do_flip = tf.random.stateless_uniform([], _seed(element_seed, FLIP_KEY)) < 0.5
        lr_image, hr_image = tf.cond(
            do_flip,
            lambda: (tf.reverse(lr_image, [1]), tf.reverse(hr_image, [1])),
            lambda: (lr_image, hr_image),
        )
    if rotate:
        turns = tf.random.stateless_uniform([], _seed(element_seed, ROTATE_KEY), minval=0,
                                            maxval=4, dtype=tf.int32)
        lr_image = tf.image.rot90(lr_image, turns)
        hr_image = tf.image.rot90(hr_image, turns)
    return lr_image, hr_image
