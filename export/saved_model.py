"""SavedModel for TF-Serving: `python -m export.saved_model --model MODEL --out models/NAME`.

Writes `models/NAME/<version>/` (the next free version unless `--version`; an existing version
is never overwritten; the version appears atomically, so a server polling the folder never loads
a half-written one) with two signatures and a warm-up file:

- `serving_default`: `lr_images` float32 [-1, -1, -1, 3] in [0, 1] -> `sr_images` float32 in
  [0, 1], clipped.
- `upscale_image`: `images` [-1] strings of encoded PNG / JPEG / WebP / BMP / GIF -> `png_bytes`
  [-1] PNG strings (the `_bytes` suffix makes TF-Serving's REST API return them base64-encoded).
  An undecodable image or one above `--max-pixels` fails the request with InvalidArgument
  naming the cause; the server keeps serving.
- `assets.extra/tf_serving_warmup_requests`: one small request per signature (PredictionLog
  records), which TF-Serving replays at load so the first real request is not slow.
"""

import argparse
import os
import shutil
import sys
import tempfile

if __name__ == "__main__":
    os.environ["KERAS_SR_PARSING"] = "1"  # answer --help before TensorFlow: keras_sr.startup

DEFAULT_MAX_PIXELS = 4096 * 4096
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
WARMUP_SIZE = 16


def serving_functions(model, max_pixels, memory_budget_mb=None, tile_pad=None):
    """The two signature functions over a Keras generator.

    Every request is checked before anything large is allocated: `upscale_image` reads each
    image's size from its header (`keras_sr.data.image_header`) and refuses one that decodes to
    more than `max_pixels`, or a request whose images do together, before decoding any;
    `serving_default` refuses by shape. Both run the model in tiles that fit
    `memory_budget_mb` of activations, one at a time, so the largest accepted request needs
    the memory of one tile plus its input and output.
    """
    import tensorflow as tf

    from keras_sr import inference
    from keras_sr.data.image_header import check_decode_cost, refuse_unless
    from keras_sr.outputs import DEFAULT_PNG_COMPRESSION

    scale = getattr(model, "scale", None)
    if scale is None:
        raise ValueError(f"{model.name} has no `scale` attribute; export a keras-sr generator")
    tile_pad = inference.DEFAULT_TILE_PAD if tile_pad is None else tile_pad
    tile = inference.tile_side(scale, memory_budget_mb or inference.DEFAULT_MEMORY_BUDGET_MB,
                               tile_pad, inference.activation_bytes(model, scale))

    def run(lr_images):
        return model(lr_images, training=False)

    def upscale(image, dtype):
        return inference.graph_tiled_upscale(run, image, scale, tile, tile_pad, dtype)

    def serving_default(lr_images):
        shape = tf.shape(lr_images, out_type=tf.int64)
        pixels = shape[1] * shape[2]
        checks = [
            refuse_unless(pixels <= max_pixels, "lr_images of ", shape[1], " x ", shape[2],
                          " pixels are above the limit of ", str(max_pixels),
                          " pixels per image (--max-pixels)"),
            refuse_unless(shape[0] * pixels <= max_pixels, "a request of ", shape[0],
                          " images of ", pixels, " pixels is above the limit of ",
                          str(max_pixels), " pixels per request (--max-pixels)"),
        ]
        with tf.control_dependencies(checks):
            lr_images = tf.debugging.assert_all_finite(
                lr_images, "lr_images holds NaN or infinite values")
        sr_images = tf.map_fn(lambda image: upscale(image, tf.float32), lr_images,
                              fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32),
                              parallel_iterations=1)
        return {"sr_images": sr_images}

    def check(indexed):
        encoded, index = indexed
        return check_decode_cost(encoded, max_pixels, tf.strings.join(
            ["image ", tf.strings.as_string(index + 1), " of the request"]))

    def upscale_one(encoded):
        image = tf.io.decode_image(encoded, channels=0, dtype=tf.uint8, expand_animations=False)
        # channels=0 decodes what the file holds (channels=3 refuses RGBA WebP): gray and
        # gray + alpha become RGB, alpha is dropped.
        image = tf.cond(tf.shape(image)[-1] < 3,
                        lambda: tf.repeat(image[..., :1], 3, axis=-1), lambda: image[..., :3])
        image = tf.ensure_shape(image, [None, None, 3])
        # zlib level 1, as `keras-sr upscale` writes PNG (keras_sr.outputs): 3-4.5x faster
        # than TensorFlow's default of 6 for ~15% more bytes.
        return tf.io.encode_png(upscale(tf.cast(image, tf.float32) / 255.0, tf.uint8),
                                compression=DEFAULT_PNG_COMPRESSION)

    def upscale_image(images):
        # Every header is read and checked before the first image is decoded.
        costs = tf.map_fn(check, (images, tf.range(tf.size(images, out_type=tf.int64))),
                          fn_output_signature=tf.int64)
        total = tf.reduce_sum(costs)
        with tf.control_dependencies([refuse_unless(
                total <= max_pixels, "the request's ", tf.size(images), " images decode to ",
                total, " pixels together, above the limit of ", str(max_pixels),
                " pixels per request (--max-pixels)")]):
            images = tf.identity(images)
        return {"png_bytes": tf.map_fn(upscale_one, images, parallel_iterations=1,
                                       fn_output_signature=tf.TensorSpec([], tf.string))}

    return serving_default, upscale_image


def next_version(base):
    versions = [int(name) for name in os.listdir(base) if name.isdigit()] \
        if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def export(model, base, version=None, max_pixels=DEFAULT_MAX_PIXELS, model_name=None,
           memory_budget_mb=None, tile_pad=None, precision=None):
    """Writes `model` as `base/<version>/`; returns that path. See `serving_functions` for
    `max_pixels`, `memory_budget_mb` and `tile_pad`. `precision` (`keras_sr.precision`; the
    model's own policy when None) is what the served graph computes in; its inputs and outputs
    stay float32 / strings."""
    import keras
    import tensorflow as tf

    from keras_sr.precision import with_precision

    if precision is not None:
        model = with_precision(model, precision)

    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    version = next_version(base) if version is None else int(version)
    if version < 1:
        raise ValueError(f"versions are positive integers, got {version}")
    target = os.path.join(base, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target} exists; TF-Serving versions are never overwritten "
                              "(leave out --version for the next free one)")
    os.makedirs(base, exist_ok=True)
    serving_default, upscale_image = serving_functions(model, max_pixels, memory_budget_mb,
                                                       tile_pad)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serving_default, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32, name="lr_images")])
    archive.add_endpoint("upscale_image", upscale_image, input_signature=[
        tf.TensorSpec([None], tf.string, name="images")])
    # TF-Serving ignores folders whose name is not a number: build here, then rename.
    staging = tempfile.mkdtemp(prefix=".staging-", dir=base)
    try:
        archive.write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        write_warmup(os.path.join(staging, WARMUP_FILE),
                     model_name or os.path.basename(os.path.normpath(base)))
        os.rename(staging, target)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return target


# --- Warm-up requests, in protobuf wire format written here so that exporting does not need
# tensorflow-serving-api (the tests parse them with it).

def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    """A length-delimited field (strings, bytes and messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_request(model_name, signature_name, inputs):
    """A serialized tensorflow.serving.PredictRequest; `inputs` maps names to TensorProtos."""
    spec = _field(1, model_name.encode()) + _field(3, signature_name.encode())
    body = _field(1, spec)
    for name, tensor in inputs.items():
        body += _field(2, _field(1, name.encode()) + _field(2, tensor.SerializeToString()))
    return body


def write_warmup(path, model_name):
    """A TFRecord file of PredictionLog{predict_log{request}}, one per signature."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image = rng.random((1, WARMUP_SIZE, WARMUP_SIZE, 3), dtype=np.float32)
    png = tf.io.encode_png((image[0] * 255).astype(np.uint8)).numpy()
    requests = [
        predict_request(model_name, "serving_default",
                        {"lr_images": tf.make_tensor_proto(image)}),
        predict_request(model_name, "upscale_image",
                        {"images": tf.make_tensor_proto([png], dtype=tf.string)}),
    ]
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            # PredictionLog.predict_log is field 6; PredictLog.request is field 1.
            writer.write(_field(6, _field(1, request)))


def main(argv=None, prog="python -m export.saved_model"):
    from keras_sr import inference, outputs
    from keras_sr import precision as precisions
    from keras_sr.precision import PRECISIONS

    parser = argparse.ArgumentParser(prog=prog, description=outputs.first_paragraph(__doc__))
    parser.add_argument("--model", required=True, help=".keras file or preset name")
    parser.add_argument("-o", "--out", required=True,
                        help="TF-Serving model folder, e.g. models/NAME")
    parser.add_argument("--version", type=outputs.int_at_least(1),
                        help="version number (default: next free)")
    parser.add_argument("--max-pixels", type=outputs.int_at_least(1), default=DEFAULT_MAX_PIXELS,
                        help="most pixels one request may decode, in one image or all "
                        f"together (default {DEFAULT_MAX_PIXELS})")
    parser.add_argument("--memory-budget", type=outputs.int_at_least(1), metavar="MB",
                        default=inference.DEFAULT_MEMORY_BUDGET_MB,
                        help="activation memory of one tile the server runs (default "
                        f"{inference.DEFAULT_MEMORY_BUDGET_MB})")
    parser.add_argument("--tile-pad", type=outputs.int_at_least(0),
                        default=inference.DEFAULT_TILE_PAD,
                        help=f"context pixels around each tile (default "
                        f"{inference.DEFAULT_TILE_PAD})")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="what the served graph computes in (default float32; bfloat16 "
                        "for servers whose CPU or GPU computes it natively; auto decides for "
                        "the machine exporting, which may not be the server)")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    args = parser.parse_args(argv)

    try:
        outputs.writable_directory(args.out, what="--out")
        from keras_sr import startup

        startup.load()
        model, chosen, reason = precisions.load_model(args.model, args.precision or "float32")
        if args.precision is None:
            reason = ("the default for exports: the serving machine may not compute bfloat16 "
                      "natively; --precision bfloat16 if it does")
        print(f"{prog}: {args.model} exported at {chosen} ({reason})", file=sys.stderr)
        path = export(model, args.out, args.version, args.max_pixels,
                      memory_budget_mb=args.memory_budget, tile_pad=args.tile_pad)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path} (signatures serving_default, upscale_image; warm-up requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
