"""Sources of full-size training pairs for tf.data: `(name, lr, hr)` uint8 triples.

- `folder_source`: folders / globs of HR images; LR made in the graph with MATLAB bicubic.
- `paired_source`: HR and LR folders in the DIV2K layout (`0001.png` with `X4/0001x4.png`).
- `tfds_source`: a tensorflow-datasets builder such as `div2k/bicubic_x4` ({"hr", "lr"}).
- `tfrecord_source`: shards written by `python -m keras_sr.data.make_tfrecords`.

One bad file never stops a run: it is skipped with one warning naming it, and counted in the
source's `SkipLog`. When no file at all is usable, the source raises an error at once.
"""

import dataclasses
import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_sr.data.degradations import imresize_tf, modcrop, quantize_tf
from keras_sr.data.images import (
    IMAGE_EXTENSIONS,
    PILLOW_ERRORS,
    UnreadableImageError,
    list_images,
    read_image,
)

logger = logging.getLogger("keras_sr.data")

# TFRecord features written by make_tfrecords.
TFRECORD_FEATURES = {
    "name": tf.io.FixedLenFeature([], tf.string),
    "hr": tf.io.FixedLenFeature([], tf.string),
}


@dataclasses.dataclass(frozen=True)
class Source:
    """A source's dataset of `(name, lr, hr)` uint8 triples and what is known about it.

    Attributes:
        dataset: the tf.data.Dataset, one pass in a fixed order.
        skip_log: files skipped so far (`SkipLog`).
        decoded_bytes: memory the decoded LR + HR images need, or None when unknown.
        file_based: read from sharded files (auto-shard by FILE under multi-worker).
        epoch: `epoch(seed, skip)`, one pass without its first `skip` elements, left out
            before they are decoded where the source can, in an order drawn from `seed` (a
            [2] int64 tensor) when `permutes`; None for a source that has only its fixed order.
        count: elements in one pass when known before reading (images that fail to decode
            make the real count smaller).
        permutes: `epoch` permutes the whole pass (a file list); otherwise the pipeline
            shuffles a window.
    """

    dataset: tf.data.Dataset
    skip_log: "SkipLog"
    decoded_bytes: int | None = None
    file_based: bool = False
    epoch: object = None
    count: int | None = None
    permutes: bool = False


class SkipLog:
    """Files a source skipped, each warned about once (by name, with the reason) and counted."""

    def __init__(self):
        self._lock = threading.Lock()
        self.skipped = {}
        self.total = 0

    def skip(self, path, reason):
        with self._lock:
            if path in self.skipped:
                return
            self.skipped[path] = reason
            count = len(self.skipped)
        logger.warning("skipping %s: %s (%d skipped so far)", path, reason, count)

    @property
    def count(self):
        return len(self.skipped)

    def summary(self):
        return f"{self.count} of {self.total} images skipped" if self.total else "no images"


def _image_size(path):
    """(height, width) from the header alone, or raises UnreadableImageError."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise UnreadableImageError(path, "no such file") from None
    except PILLOW_ERRORS as error:
        raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from None
    return height, width


def _usable_or_raise(usable, total, skip_log, what):
    skip_log.total += total
    if not usable:
        reasons = "; ".join(f"{path}: {reason}" for path, reason in
                            list(skip_log.skipped.items())[:5])
        raise ValueError(f"none of the {total} {what} can be used ({reasons})")
    if skip_log.count:
        logger.warning("%s", skip_log.summary())


def _decoder(skip_log):
    """numpy function: reads each path; on failure, warns and returns empty images."""
    def decode(*paths):
        images = []
        for path in paths:
            path = path.decode()
            try:
                images.append(read_image(path))
            except UnreadableImageError as error:
                skip_log.skip(path, error.reason)
                return [np.zeros((0, 0, 3), np.uint8) for _ in paths]
        return images
    return decode


def _keep_pair(name, lr_image, hr_image, min_hr_size, scale):
    """tf.data filter predicate for in-graph sources; warns, naming the image, when it drops one."""
    hr_size, lr_size = tf.shape(hr_image)[:2], tf.shape(lr_image)[:2]
    aligned = tf.reduce_all(hr_size == lr_size * scale)
    large_enough = tf.reduce_min(hr_size) >= max(min_hr_size, scale)

    def warn():
        tf.print("keras_sr.data: skipping", name, "- HR size", hr_size, "LR size", lr_size,
                 "( x", scale, "pair with an HR patch of", min_hr_size, ")",
                 output_stream=sys.stderr)
        return False

    return tf.cond(aligned & large_enough, lambda: True, warn)


def trim_to_lr(hr_image, lr_image, scale):
    """Trims an HR image that is up to `scale - 1` pixels too long (not modcropped) to exactly
    `scale` x its LR image; a pair that disagrees more is left for `_keep_pair` to reject."""
    excess = tf.shape(hr_image)[:2] - tf.shape(lr_image)[:2] * scale
    trimmable = tf.reduce_all((excess >= 0) & (excess < scale))
    lr_size = tf.shape(lr_image)[:2]
    return tf.cond(trimmable, lambda: hr_image[: lr_size[0] * scale, : lr_size[1] * scale],
                   lambda: hr_image)


def degrade(hr_image, scale):
    """Modcrops a uint8 HR image to a multiple of `scale` and makes its bicubic LR (uint8)."""
    hr_image = modcrop(hr_image, scale)
    lr_image = quantize_tf(imresize_tf(tf.cast(hr_image, tf.float32), 1.0 / scale))
    return lr_image, hr_image


def permuted(columns, seed):
    """`columns` (equal-length lists) as a dataset of rows in the order `seed` draws."""
    order = tf.random.experimental.stateless_shuffle(tf.range(len(columns[0])), seed)
    return tf.data.Dataset.from_tensor_slices(tuple(tf.gather(column, order)
                                                    for column in columns))


def seeded_order(items, shuffle_seed):
    """Items in a seeded random order (training reads files shuffled), or as listed for None."""
    if shuffle_seed is None:
        return list(items)
    order = np.random.default_rng(shuffle_seed).permutation(len(items))
    return [items[index] for index in order]


def folder_source(sources, scale, min_hr_size=0, skip_log=None, shuffle_seed=None):
    """HR images from folders, files or globs; LR made with MATLAB-compatible bicubic.

    Args:
        sources: a folder, file or glob, or a list of them.
        scale: int, the SR factor.
        min_hr_size: images whose shorter side is below this (after modcrop) are skipped.
        skip_log: a `SkipLog` to record skipped files in; a new one by default.
        shuffle_seed: read the files in a random order drawn from this seed (for training: the
            decoded-image shuffle buffer then needs to hold only a few images); None keeps the
            sorted order.
    Returns:
        A `Source` of `(name, lr, hr)` uint8 triples.
    """
    skip_log = skip_log or SkipLog()
    paths = list_images(sources)
    usable, decoded_bytes = [], 0
    for path in paths:
        try:
            height, width = _image_size(path)
        except UnreadableImageError as error:
            skip_log.skip(path, error.reason)
            continue
        if min(height - height % scale, width - width % scale) < max(min_hr_size, scale):
            skip_log.skip(path, f"{width}x{height} is smaller than the {min_hr_size}-pixel "
                                "HR patch")
            continue
        usable.append(path)
        decoded_bytes += height * width * 3 * (1 + 1 / scale**2)
    _usable_or_raise(usable, len(paths), skip_log, f"images in {sources}")

    decode = _decoder(skip_log)

    def load(path):
        (hr_image,) = tf.numpy_function(decode, [path], [tf.uint8], stateful=False)
        hr_image = tf.ensure_shape(hr_image, [None, None, 3])
        return path, hr_image

    def triples(paths):
        dataset = paths.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.filter(lambda path, hr_image: tf.size(hr_image) > 0)
        return dataset.map(lambda path, hr_image: (path, *degrade(hr_image, scale)),
                           num_parallel_calls=tf.data.AUTOTUNE)

    def epoch(seed, skip):
        return triples(permuted([usable], seed).map(lambda path: path).skip(skip))

    dataset = triples(tf.data.Dataset.from_tensor_slices(seeded_order(usable, shuffle_seed)))
    return Source(dataset, skip_log, decoded_bytes=int(decoded_bytes), epoch=epoch,
                  count=len(usable), permutes=True)


def find_lr_partner(hr_path, lr_dir, scale):
    """DIV2K naming: `0001.png` pairs with `0001x4.png`; a same-named file also counts."""
    stem = Path(hr_path).stem
    for candidate_stem in (f"{stem}x{scale}", stem):
        for extension in IMAGE_EXTENSIONS:
            candidate = os.path.join(lr_dir, candidate_stem + extension)
            if os.path.isfile(candidate):
                return candidate
    return None


def paired_source(hr_dir, lr_dir, scale, min_hr_size=0, skip_log=None, shuffle_seed=None):
    """HR / LR folder pairs in the DIV2K layout.

    An HR image without an LR partner, or whose sizes disagree with the scale, is skipped with
    a warning that names both files. An HR side up to `scale - 1` pixels longer than
    `scale x LR` is cropped (HR images that were not modcropped). `shuffle_seed` as in
    `folder_source`.
    """
    skip_log = skip_log or SkipLog()
    hr_paths = list_images(hr_dir)
    pairs, decoded_bytes = [], 0
    for hr_path in hr_paths:
        lr_path = find_lr_partner(hr_path, lr_dir, scale)
        if lr_path is None:
            skip_log.skip(hr_path, f"no LR image for it in {lr_dir} "
                                   f"(looked for {Path(hr_path).stem}x{scale}.*)")
            continue
        try:
            hr_size, lr_size = _image_size(hr_path), _image_size(lr_path)
        except UnreadableImageError as error:
            skip_log.skip(hr_path, f"pair {hr_path} / {lr_path}: {error.reason}")
            continue
        if any(not 0 <= hr_side - lr_side * scale < scale
               for hr_side, lr_side in zip(hr_size, lr_size)):
            skip_log.skip(hr_path, f"HR {hr_path} is {hr_size[1]}x{hr_size[0]} but LR "
                                   f"{lr_path} is {lr_size[1]}x{lr_size[0]}, not 1/{scale} of it")
            continue
        if min(lr_size) * scale < max(min_hr_size, scale):
            skip_log.skip(hr_path, f"smaller than the {min_hr_size}-pixel HR patch")
            continue
        pairs.append((hr_path, lr_path))
        decoded_bytes += lr_size[0] * lr_size[1] * 3 * (1 + scale**2)
    _usable_or_raise(pairs, len(hr_paths), skip_log, f"HR images in {hr_dir}")

    decode = _decoder(skip_log)

    def load(hr_path, lr_path):
        hr_image, lr_image = tf.numpy_function(decode, [hr_path, lr_path],
                                               [tf.uint8, tf.uint8], stateful=False)
        hr_image = tf.ensure_shape(hr_image, [None, None, 3])
        lr_image = tf.ensure_shape(lr_image, [None, None, 3])
        lr_size = tf.shape(lr_image)[:2]
        return hr_path, lr_image, hr_image[: lr_size[0] * scale, : lr_size[1] * scale]

    def triples(pair_paths):
        dataset = pair_paths.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.filter(lambda name, lr_image, hr_image: tf.size(hr_image) > 0)

    def epoch(seed, skip):
        return triples(permuted([list(c) for c in zip(*pairs)], seed).skip(skip))

    hr_list, lr_list = (list(column) for column in zip(*seeded_order(pairs, shuffle_seed)))
    dataset = triples(tf.data.Dataset.from_tensor_slices((hr_list, lr_list)))
    return Source(dataset, skip_log, decoded_bytes=int(decoded_bytes), epoch=epoch,
                  count=len(pairs), permutes=True)


def tfds_source(name, scale, split="train", data_dir=None, min_hr_size=0, download=False):
    """A tensorflow-datasets builder yielding {"hr", "lr"} images, e.g. `div2k/bicubic_x4`.

    `download=False` by default: preparing DIV2K fetches several GB, which should be a
    deliberate `tfds build` (or `download=True`), not a side effect of training.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    examples = builder.as_dataset(split=split, shuffle_files=False)

    def to_triple(example):
        lr_image, hr_image = example["lr"], example["hr"]
        return tf.constant(name), lr_image, trim_to_lr(hr_image, lr_image, scale)

    def triples(dataset):
        dataset = dataset.map(to_triple, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.filter(lambda name_, lr_image, hr_image:
                              _keep_pair(name_, lr_image, hr_image, min_hr_size, scale))

    def epoch(seed, skip):
        # The builder's order (tfds reads records in sequence); the pipeline shuffles a window.
        del seed
        return triples(examples.skip(skip))

    try:
        count = int(builder.info.splits[split].num_examples) or None
    except (KeyError, AttributeError, TypeError, ValueError):
        count = None
    return Source(triples(examples), SkipLog(), epoch=epoch, count=count)


def tfrecord_source(patterns, scale, min_hr_size=0):
    """Shards written by `make_tfrecords` (HR PNGs); LR made in the graph like `folder_source`.

    Files are interleaved in parallel; under a distribution strategy the FILE auto-shard policy
    gives each worker its own shards. A corrupt record is skipped with TensorFlow's warning.
    """
    files = sorted({path for pattern in ([patterns] if isinstance(patterns, str) else patterns)
                    for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {patterns}")

    def parse(record):
        example = tf.io.parse_single_example(record, TFRECORD_FEATURES)
        hr_image = tf.io.decode_png(example["hr"], channels=3)
        return (example["name"], *degrade(hr_image, scale))

    def triples(shards, skip=0):
        records = shards.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = records.skip(skip).map(parse, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(
            log_warning=True)
        return dataset.filter(lambda name, lr_image, hr_image:
                              _keep_pair(name, lr_image, hr_image, min_hr_size, scale))

    def epoch(seed, skip):
        # Shards in a seeded order, their records interleaved (the pipeline shuffles a window).
        return triples(permuted([files], seed).map(lambda path: path), skip)

    return Source(triples(tf.data.Dataset.from_tensor_slices(files)), SkipLog(),
                  file_based=True, epoch=epoch)
