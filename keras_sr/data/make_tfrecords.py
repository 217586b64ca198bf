"""`python -m keras_sr.data.make_tfrecords SRC... --out DIR --shards N`: HR images to TFRecords.

For training sets larger than memory and for multi-worker reading (each worker reads its own
shards). Every image goes through keras-sr's reader, so the records hold plain 8-bit RGB PNGs
whatever the source format; `keras_sr.data.sources.tfrecord_source` reads them back and makes
the LR images in the graph. Unreadable files are skipped with a warning naming them; an existing
shard set is never overwritten without `--overwrite`; shards are written under temporary names
and renamed when complete, so an interrupted run leaves no half shard behind a final name.
"""

import argparse
import io
import os
import sys

from PIL import Image

from keras_sr import outputs
from keras_sr.data.images import UnreadableImageError, list_images, read_image


def shard_paths(out_dir, prefix, shards):
    return [os.path.join(out_dir, f"{prefix}-{index:05d}-of-{shards:05d}.tfrecord")
            for index in range(shards)]


def encode_example(name, image):
    import tensorflow as tf

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=3)
    feature = {
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
        "hr": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(sources, out_dir, shards, prefix="train", overwrite=False, progress=True):
    """Writes the images of `sources` round-robin into `shards` files; returns (written, skipped).

    Raises:
        FileExistsError: a shard of this name exists and `overwrite` is False.
        ValueError: `shards` is not positive, or no image could be read.
    """
    import keras
    import tensorflow as tf

    if shards < 1:
        raise ValueError(f"--shards must be positive, got {shards}")
    paths = list_images(sources)
    outputs.writable_directory(out_dir, what="--out")
    targets = shard_paths(out_dir, prefix, shards)
    existing = [path for path in targets if os.path.exists(path)]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace the shards")
    os.makedirs(out_dir, exist_ok=True)
    temporary = [f"{path}.partial" for path in targets]
    writers = [tf.io.TFRecordWriter(path) for path in temporary]
    written, skipped, complete = 0, [], False
    bar = keras.utils.Progbar(len(paths), unit_name="image") if progress else None
    try:
        for index, path in enumerate(paths):
            try:
                image = read_image(path)
            except UnreadableImageError as error:
                skipped.append(str(error))
                print(f"\nskipping: {error}", file=sys.stderr)
            else:
                writers[written % shards].write(encode_example(os.path.basename(path), image))
                written += 1
            if bar:
                bar.update(index + 1)
        for writer in writers:
            writer.close()
        if not written:
            raise ValueError(f"none of the {len(paths)} images in {sources} could be read")
        for partial, final in zip(temporary, targets):
            os.replace(partial, final)
        complete = True
    finally:
        if not complete:
            # Interrupted, failed or empty: no partial shard is left behind.
            for writer in writers:
                writer.close()
            for path in temporary:
                if os.path.exists(path):
                    os.remove(path)
    return written, skipped


def main(argv=None, prog="python -m keras_sr.data.make_tfrecords"):
    parser = argparse.ArgumentParser(prog=prog, description=outputs.first_paragraph(__doc__))
    parser.add_argument("sources", nargs="+", help="HR image folders, files or globs")
    parser.add_argument("-o", "--out", required=True, help="folder for the shards")
    parser.add_argument("--shards", type=outputs.int_at_least(1), default=8)
    parser.add_argument("--prefix", default="train", help="shard file name prefix")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    args = parser.parse_args(argv)
    from keras_sr import startup

    startup.load()
    try:
        written, skipped = write_shards(args.sources, args.out, args.shards, args.prefix,
                                        args.overwrite)
    except (OSError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written} images into {args.shards} shards in {args.out}"
          + (f"; skipped {len(skipped)} unreadable" if skipped else ""))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
