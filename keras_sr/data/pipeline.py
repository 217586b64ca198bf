"""tf.data training pipelines: `(lr_images, hr_images)` float32 batches in [0, 1].

    source = folder_source("T91/", scale=4, min_hr_size=128, shuffle_seed=0)
    dataset = training_dataset(source, hr_patch_size=128, scale=4, batch_size=16, seed=0)

Order of work: read the files in a seeded random order (the sources' `shuffle_seed`), decode and
degrade each full image once, cache the uint8 pairs in memory when they fit, shuffle a few
dozen whole images at a time, repeat, then per element a seeded aligned random crop, flip and
90-degree rotation, batch, and prefetch. Under `tf.distribute`, pass the dataset to
`strategy.experimental_distribute_dataset`; the auto-shard policy is set here (FILE for TFRecord
shards, DATA otherwise).
"""

import logging
import os

import tensorflow as tf

from keras_sr.data.transforms import random_crop_pair, random_flip_rotate_pair

logger = logging.getLogger("keras_sr.data")

# Share of physical memory the decoded-image cache may take under cache="auto".
CACHE_MEMORY_SHARE = 0.4


def physical_memory_bytes():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def should_cache(source, cache):
    if cache in (True, False):
        return cache
    if cache != "auto":
        raise ValueError(f"cache must be True, False or 'auto', got {cache!r}")
    if source.decoded_bytes is None:
        return False
    budget = CACHE_MEMORY_SHARE * physical_memory_bytes()
    if source.decoded_bytes > budget:
        logger.warning("not caching decoded images: they need %.1f GB, over the %.1f GB budget",
                       source.decoded_bytes / 1e9, budget / 1e9)
        return False
    return True


def with_shard_policy(dataset, file_based):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.FILE if file_based
        else tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def training_dataset(source, hr_patch_size, scale, batch_size, seed=0, cache="auto",
                     flip=True, rotate=True, shuffle_buffer=64):
    """Random aligned patch batches for training.

    Args:
        source: a `keras_sr.data.sources.Source`.
        hr_patch_size: int, side of the HR patches; a multiple of `scale`.
        scale: int, the SR factor of the source.
        batch_size: int, the global batch size.
        seed: int; the same seed gives the same batches.
        cache: True, False, or "auto" (cache when the decoded images fit in 40% of memory).
        flip, rotate: random horizontal flips and 90-degree rotations.
        shuffle_buffer: how many decoded images are shuffled together. Keep it small: the first
            batch waits until the buffer is full. Let the source read its files in a seeded
            random order (`shuffle_seed`) for the global mixing.
    Returns:
        An infinite dataset of `(lr_images, hr_images)`, float32 in [0, 1], shapes
        `[batch, P / scale, P / scale, 3]` and `[batch, P, P, 3]`.
    """
    if hr_patch_size % scale:
        raise ValueError(f"hr_patch_size {hr_patch_size} is not a multiple of scale {scale}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dataset = source.dataset
    if should_cache(source, cache):
        dataset = dataset.cache()
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    # Per-element seeds from a seeded stream: patches do not depend on map parallelism.
    dataset = tf.data.Dataset.zip(tf.data.Dataset.random(seed=seed), dataset)

    def patch(element_seed, element):
        _, lr_image, hr_image = element
        lr_patch, hr_patch = random_crop_pair(lr_image, hr_image, hr_patch_size, scale,
                                              element_seed)
        lr_patch, hr_patch = random_flip_rotate_pair(lr_patch, hr_patch, element_seed,
                                                     flip=flip, rotate=rotate)
        return (tf.image.convert_image_dtype(lr_patch, tf.float32),
                tf.image.convert_image_dtype(hr_patch, tf.float32))

    dataset = dataset.map(patch, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return with_shard_policy(dataset, source.file_based)
