"""tf.data training pipelines: `(lr_images, hr_images)` float32 batches in [0, 1].

    source = folder_source("T91/", scale=4, min_hr_size=128, shuffle_seed=0)
    dataset = training_dataset(source, hr_patch_size=128, scale=4, batch_size=16, seed=0)

Order of work: pass after pass over the source, each pass in its own seeded order (the file
list permuted before decoding, or the cached decoded images shuffled whole; see
`element_stream`), decode and degrade each full image, cache the uint8 pairs in memory when they
fit, then per element a seeded aligned random crop, flip and 90-degree rotation, batch, and
prefetch. Under `tf.distribute`, pass the dataset to
`strategy.experimental_distribute_dataset`; the auto-shard policy is set here (FILE for TFRecord
shards, DATA otherwise).
"""

import logging

import numpy as np
import tensorflow as tf

from keras_sr.data.transforms import (
    crop_or_pad,
    random_crop_pair,
    random_flip_rotate,
    random_flip_rotate_pair,
)
from keras_sr.outputs import physical_memory_bytes

logger = logging.getLogger("keras_sr.data")

# Share of physical memory the decoded-image cache may take under cache="auto".
CACHE_MEMORY_SHARE = 0.4


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


def element_stream(source, seed=0, start_element=0, cache="auto", shuffle_buffer=64):
    """The source's `(index, (name, lr, hr))` elements pass after pass, from element
    `start_element` of the stream, each pass in a new order drawn from the seed.

    - A source with a file list (folders, DIV2K pairs) is permuted whole each pass (by the
      pass's seed), before decoding; resuming starts at the same pass and position, skipped
      before decoding: exact, unless some images failed to decode.
    - A cached source (decoded images in memory) is shuffled whole each pass from the cache;
      resuming replays the skipped passes' shuffles from memory: exact.
    - tfds and TFRecord sources are read in sequence (TFRecords with their shards permuted
      each pass) through a seeded shuffle window; a tfds source resumes at its pass and
      position (skipped records are decoded), a TFRecord source, whose length is unknown, with
      a new seeded pass. Both then shuffle with a window seeded by where they resumed, so the
      order is close to, not equal to, an uninterrupted run's.
    - A source with only a fixed order is window-shuffled and replayed: exact, but slow to
      resume.
    """
    count = source.count

    def pass_seed(index):
        return tf.stack([tf.constant(seed, tf.int64), index])

    cached = should_cache(source, cache)  # decided once: it may log why not
    if cached or source.epoch is None:
        base = source.dataset if source.epoch is None else source.epoch(
            pass_seed(tf.constant(-1, tf.int64)), tf.constant(0, tf.int64))
        if cached:
            base = base.cache()
        buffer = max(count or 0, shuffle_buffer) if cached else shuffle_buffer
        # A Python seed: Dataset.shuffle mishandles tensor seeds under a global seed of 0.
        elements = base.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        elements = elements.skip(start_element)
    else:
        first_pass, offset = divmod(start_element, count) if count else (start_element, 0)

        def one_pass(index):
            skip = tf.where(index == first_pass, tf.constant(offset, tf.int64),
                            tf.constant(0, tf.int64))
            return source.epoch(pass_seed(index), skip)

        elements = tf.data.Dataset.range(first_pass, tf.int64.max).flat_map(one_pass)
        if not source.permutes:
            resumed_seed = int(np.random.SeedSequence([seed, first_pass]).generate_state(1)[0])
            elements = elements.shuffle(shuffle_buffer, seed=resumed_seed)
    return tf.data.Dataset.zip(tf.data.Dataset.range(start_element, tf.int64.max), elements)


def element_seed(seed, index):
    """The int64 seed of the stream's `index`-th element (its crop, flip, rotation and
    degradation): from the run's seed and the position alone, so patches depend neither on
    map parallelism nor on where the run was resumed."""
    return tf.random.stateless_uniform(
        [], tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)]), minval=0,
        maxval=tf.int64.max, dtype=tf.int64)


def degraded_pair(hr_image, hr_patch_size, scale, seed_of_element, degradation, flip=True,
                  rotate=True):
    """A training pair `(lr_patch, hr_patch)` (float32 in [0, 1]) made from a whole uint8 HR
    image as Real-ESRGAN makes one: its dataset flips / rotates the image and crops or
    reflect-pads it to `degradation.crop_pad_size` (400); its model sharpens that crop (USM),
    degrades the sharpened crop (`real_degradations.degrade`, second order) and then cuts an
    aligned random patch from the crop and the LR. The HR patch is the unsharpened crop's: the
    losses that want it sharpened sharpen it again (`loss.*_sharpened`), as the reference
    does after its paired crop. Every draw comes from `seed_of_element` (an int64 scalar)."""
    from keras_sr.data.real_degradations import degrade

    hr_image = random_flip_rotate([hr_image], seed_of_element, flip=flip, rotate=rotate)[0]
    crop = crop_or_pad(hr_image, degradation.crop_pad_size, seed_of_element)
    crop = tf.image.convert_image_dtype(crop, tf.float32)
    # The element's 64-bit seed as the two 32-bit halves a stateless seed takes.
    lr_image = degrade(crop, scale, tf.bitcast(seed_of_element, tf.int32), degradation,
                       sharpen=True)
    return random_crop_pair(lr_image, crop, hr_patch_size, scale, seed_of_element)


def training_dataset(source, hr_patch_size, scale, batch_size, seed=0, cache="auto",
                     flip=True, rotate=True, shuffle_buffer=64, start_step=0,
                     degradation=None):
    """Random aligned patch batches for training.

    One patch per image per pass; every pass visits the images in a new order (see
    `element_stream`), and each patch's crop, flip and rotation are drawn from the seed and its
    position in the stream, so `start_step=k` continues exactly where a run that stopped after
    k steps left off.

    Args:
        source: a `keras_sr.data.sources.Source`.
        hr_patch_size: int, side of the HR patches; a multiple of `scale`.
        scale: int, the SR factor of the source.
        batch_size: int, the global batch size.
        seed: int; the same seed gives the same batches.
        cache: True, False, or "auto" (cache when the decoded images fit in 40% of memory).
        flip, rotate: random horizontal flips and 90-degree rotations.
        shuffle_buffer: the window of the shuffles of sources that cannot be permuted whole.
        start_step: batches already consumed (a resumed run).
        degradation: a `keras_sr.data.real_degradations.DegradationOptions`: each pair is
            then made by Real-ESRGAN's recipe (`degraded_pair`: crop or pad to
            `crop_pad_size`, sharpen, second-order degradation, paired crop; seeded by the
            stream position) instead of from the source's bicubic LR.
    Returns:
        An infinite dataset of `(lr_images, hr_images)`, float32 in [0, 1], shapes
        `[batch, P / scale, P / scale, 3]` and `[batch, P, P, 3]`.
    """
    if hr_patch_size % scale:
        raise ValueError(f"hr_patch_size {hr_patch_size} is not a multiple of scale {scale}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dataset = element_stream(source, seed, start_step * batch_size, cache, shuffle_buffer)

    if degradation is not None:
        from keras_sr.data.degradation_options import crop_pad_problem

        message = crop_pad_problem(degradation.crop_pad_size, hr_patch_size, scale)
        if message:
            raise ValueError(f"degradation.crop_pad_size {message}")

    def patch(index, element):
        _, lr_image, hr_image = element
        seed_of_element = element_seed(seed, index)
        if degradation is not None:
            return degraded_pair(hr_image, hr_patch_size, scale, seed_of_element, degradation,
                                 flip=flip, rotate=rotate)
        lr_patch, hr_patch = random_crop_pair(lr_image, hr_image, hr_patch_size, scale,
                                              seed_of_element)
        lr_patch, hr_patch = random_flip_rotate_pair(lr_patch, hr_patch, seed_of_element,
                                                     flip=flip, rotate=rotate)
        return (tf.image.convert_image_dtype(lr_patch, tf.float32),
                tf.image.convert_image_dtype(hr_patch, tf.float32))

    dataset = dataset.map(patch, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    if degradation is not None:
        # Pairs are degraded in parallel, one per core: ops that split themselves over the
        # cores as well only contend (47.1 vs 43.8 pairs/s on 2 cores, Zen 5).
        options = tf.data.Options()
        options.threading.max_intra_op_parallelism = 1
        dataset = dataset.with_options(options)
    return with_shard_policy(dataset, source.file_based)
