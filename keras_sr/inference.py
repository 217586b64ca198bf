"""Upscaling whole images with any exported form of a generator, tiled when they are large.

`load_upscaler(spec)` takes a `.keras` file, a SavedModel directory (or a TF-Serving model
folder of numbered versions: the newest is used), a `.tflite` file, or a preset name, and
returns an `Upscaler`. `upscale_image` runs it over an image tile by tile, each tile with
`tile_pad` pixels of real context on every side that are cropped off afterwards, so tiles meet
without seams (Real-ESRGAN's scheme), and writes each tile straight into the output array so a
large image never holds a float32 copy of its whole SR result.
"""

import math
import os

import numpy as np

# Live float32 activations per LR pixel: a x4 RRDBNet keeps about four 64-channel maps at HR
# resolution (16 HR pixels per LR pixel) while it runs its last convs.
BYTES_PER_HR_PIXEL = 4 * 64 * 4
DEFAULT_MEMORY_BUDGET_MB = 1024
# benchmarks/tiling.py: with realesrgan-x4plus and 48-pixel tiles, a pad of 16 gave 50.7 dB
# against the untiled result and 24 gave 57.4 dB.
DEFAULT_TILE_PAD = 24
MIN_TILE = 16


class Upscaler:
    """`upscaler(lr_images)`: float32 `[N, H, W, 3]` in [0, 1] -> `[N, sH, sW, 3]`; N is 1
    unless `batches` (the model takes several images of one size in a call)."""

    def __init__(self, run, scale, description, batches=True):
        self.run = run
        self.scale = scale
        self.description = description
        self.batches = batches
        self.bytes_per_pixel = None  # activation bytes per LR pixel; None: costed as RRDBNet
        self.precision, self.precision_reason = "float32", ""

    def __call__(self, lr_images):
        return np.asarray(self.run(np.ascontiguousarray(lr_images, np.float32)))


def keras_upscaler(model, description=None):
    import tensorflow as tf

    # One trace for every tile, image size and batch.
    serve = tf.function(lambda lr_images: model(lr_images, training=False),
                        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    scale = getattr(model, "scale", None) or _probe_scale(lambda x: serve(x).numpy())
    upscaler = Upscaler(lambda x: serve(x).numpy(), scale, description or model.name)
    upscaler.bytes_per_pixel = activation_bytes(model, scale)
    return upscaler


def _probe_scale(run):
    out = run(np.zeros((1, 16, 16, 3), np.float32))
    return out.shape[1] // 16


def newest_version(path):
    """A TF-Serving model folder's highest numbered version, or `path` itself."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(name) for name in os.listdir(path) if name.isdigit()
                and os.path.isfile(os.path.join(path, name, "saved_model.pb"))]
    if not versions:
        raise FileNotFoundError(f"{path} holds no SavedModel (saved_model.pb) nor numbered "
                                "versions of one")
    return os.path.join(path, str(max(versions)))


def saved_model_upscaler(path):
    import tensorflow as tf

    path = newest_version(path)
    loaded = tf.saved_model.load(path, tags=["serve"])
    if "serving_default" not in loaded.signatures:
        raise ValueError(f"{path} has no serving_default signature")
    signature = loaded.signatures["serving_default"]
    (output_name,) = signature.structured_outputs.keys() if len(
        signature.structured_outputs) == 1 else ["sr_images"]

    def run(lr_images):
        return signature(tf.constant(lr_images))[output_name].numpy()

    upscaler = Upscaler(run, _probe_scale(run), path)
    upscaler.loaded = loaded  # keep the restored variables alive
    return upscaler


def tflite_upscaler(path, num_threads=None):
    with open(path, "rb") as file:
        return flatbuffer_upscaler(file.read(), path, num_threads)


def flatbuffer_upscaler(flatbuffer, description, num_threads=None):
    """An Upscaler over `.tflite` bytes in the LiteRT interpreter."""
    from keras_sr import litert

    interpreter = litert.interpreter(flatbuffer, num_threads=num_threads)
    signature = interpreter.get_input_details()[0]["shape_signature"]
    if all(side > 0 for side in signature):
        fixed = tuple(int(side) for side in signature[1:3])

        def run(lr_images):
            return _run_fixed(lambda x: litert.run(interpreter, x), lr_images, fixed)
        scale = interpreter.get_output_details()[0]["shape"][1] // fixed[0]
        upscaler = Upscaler(run, int(scale), description, batches=False)
        upscaler.fixed_size = fixed
        return upscaler

    def run(lr_images):
        return litert.run(interpreter, lr_images)
    return Upscaler(run, _probe_scale(run), description)


def _run_fixed(run, lr_images, size):
    """A fixed-shape model over a smaller input: pad (edge) to its size and crop the output."""
    _, height, width, _ = lr_images.shape
    if height > size[0] or width > size[1]:
        raise ValueError(f"input {height}x{width} exceeds the model's fixed {size[0]}x{size[1]}")
    padded = np.pad(lr_images, ((0, 0), (0, size[0] - height), (0, size[1] - width), (0, 0)),
                    mode="edge")
    out = run(padded)
    scale = out.shape[1] // size[0]
    return out[:, :height * scale, :width * scale]


def check_model_spec(spec):
    """Refuses a `--model` that names nothing loadable (TensorFlow-free, so that commands can
    say so before TensorFlow starts).

    Raises:
        presets.ModelFileError: naming the model.
    """
    from keras_sr import presets

    spec = os.fspath(spec)
    if presets.is_preset(spec) or presets.is_remote(spec):
        return
    if not os.path.isdir(spec) and not spec.endswith((".keras", ".tflite")) \
            and not presets.is_weights_file(spec):
        raise presets.ModelFileError(
            f"--model {spec!r}: not a .keras file, SavedModel folder, .tflite file, weights "
            f"file ({', '.join(presets.WEIGHTS_SUFFIXES)}) or preset "
            f"({', '.join(presets.list_presets())})")
    if not os.path.exists(spec):
        raise presets.ModelFileError(f"no such model file: {spec}")


def is_keras_model(spec):
    """Whether `--model spec` loads as a Keras model (a `.keras` file, a published weights
    file, a preset or a `save_to_preset` folder) rather than a SavedModel or `.tflite` file."""
    from keras_sr import presets

    spec = os.fspath(spec)
    return (presets.is_preset(spec) or spec.endswith(".keras") or presets.is_weights_file(spec)
            or presets.is_remote(spec) or (os.path.isdir(spec) and presets.is_preset_dir(spec)))


def load_upscaler(spec, num_threads=None, precision="float32"):
    """An Upscaler from a `.keras` file, SavedModel / TF-Serving folder, `.tflite` or preset.
    A Keras model runs at `precision` (see `keras_sr.precision`; `auto` picks per device);
    `upscaler.precision` and `upscaler.precision_reason` say what was chosen. A SavedModel or
    `.tflite` file computes at the precision it was exported with.

    Raises:
        presets.ModelFileError: naming the model, when it is missing or does not load.
    """
    from keras_sr import precision as precisions
    from keras_sr import presets

    spec = os.fspath(spec)
    if is_keras_model(spec):
        model, chosen, reason = precisions.load_model(spec, precision)
        upscaler = keras_upscaler(model, description=spec)
        upscaler.precision, upscaler.precision_reason = chosen, reason
        return upscaler
    check_model_spec(spec)
    try:
        upscaler = saved_model_upscaler(spec) if os.path.isdir(spec) else \
            tflite_upscaler(spec, num_threads)
    except (MemoryError, ImportError):
        raise
    except Exception as error:  # noqa: BLE001
        # TensorFlow's and LiteRT's loaders raise their own types for a corrupt file.
        raise presets.ModelFileError(f"{spec} does not load: {type(error).__name__}: "
                                     f"{str(error).strip().splitlines()[0][:300]}") from None
    upscaler.precision = "its exported precision"
    upscaler.precision_reason = (
        "a SavedModel or .tflite file computes as it was exported"
        + ("" if precision == "auto" else
           f"; --precision {precision} applies to .keras models and presets"))
    return upscaler


def activation_bytes(model, scale):
    """Live float32 activation bytes per LR pixel while `model` runs. SRVGGNetCompact keeps
    its features at LR resolution (about four maps of its width, the last conv's 3 * scale^2
    channels, the nearest-upsampled input and the output): about a tenth of an RRDBNet's. Any
    other network (or one not known, as a SavedModel's) is costed as RRDBNet."""
    if type(model).__name__ == "SRVGGNetCompact":
        return 4 * (4 * model.num_features + 3 * 3 * scale * scale)
    return BYTES_PER_HR_PIXEL * scale * scale


def budget_pixels(scale, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB, bytes_per_pixel=None):
    """LR pixels one model call may take within `memory_budget_mb` of activations
    (`bytes_per_pixel` per LR pixel: `activation_bytes`; RRDBNet's when not given)."""
    return memory_budget_mb * 2**20 / (bytes_per_pixel or BYTES_PER_HR_PIXEL * scale * scale)


def tile_side(scale, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB, tile_pad=DEFAULT_TILE_PAD,
              bytes_per_pixel=None):
    """The largest LR tile side (a multiple of 8) whose padded tile fits the budget."""
    side = int(math.sqrt(budget_pixels(scale, memory_budget_mb, bytes_per_pixel))) \
        - 2 * tile_pad
    if side < MIN_TILE:
        raise ValueError(f"a memory budget of {memory_budget_mb} MB leaves tiles under "
                         f"{MIN_TILE} pixels with a pad of {tile_pad}; raise it")
    return side // 8 * 8


def auto_tile(height, width, scale, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB,
              tile_pad=DEFAULT_TILE_PAD, bytes_per_pixel=None):
    """The LR tile side that keeps one padded tile's activations within the budget, or None
    when the whole image fits."""
    if height * width <= budget_pixels(scale, memory_budget_mb, bytes_per_pixel):
        return None
    return tile_side(scale, memory_budget_mb, tile_pad, bytes_per_pixel)


def graph_tiled_upscale(run, image, scale, tile, tile_pad=DEFAULT_TILE_PAD, dtype=None):
    """`upscale_image` in the graph, for serving: `run` (float32 `[1, h, w, 3]` -> `[1, sh,
    sw, 3]`) over an `(H, W, 3)` float32 image in tiles of `tile` LR pixels with `tile_pad`
    pixels of context. With `dtype=tf.uint8` each tile is quantized as it is made, so only the
    uint8 result grows with the image; otherwise the result is float32 clipped to [0, 1]. One
    tile at a time (`parallel_iterations=1`), so memory is that of one tile whatever the
    image. An image that fits one tile is run whole, exactly as untiled."""
    import tensorflow as tf

    dtype = tf.as_dtype(dtype or tf.float32)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    rows, columns = (height + tile - 1) // tile, (width + tile - 1) // tile

    def one_tile(row, column):
        top, left = row * tile, column * tile
        bottom, right = tf.minimum(top + tile, height), tf.minimum(left + tile, width)
        pad_top, pad_left = tf.maximum(top - tile_pad, 0), tf.maximum(left - tile_pad, 0)
        pad_bottom = tf.minimum(bottom + tile_pad, height)
        pad_right = tf.minimum(right + tile_pad, width)
        result = tf.cast(run(image[None, pad_top:pad_bottom, pad_left:pad_right])[0],
                         tf.float32)
        y0, x0 = (top - pad_top) * scale, (left - pad_left) * scale
        result = tf.clip_by_value(result[y0:y0 + (bottom - top) * scale,
                                         x0:x0 + (right - left) * scale], 0.0, 1.0)
        if dtype.is_integer:
            result = tf.cast(tf.round(result * float(dtype.max)), dtype)
        # Transposed, so that TensorArray.concat (along axis 0) joins the tiles of a row.
        return tf.transpose(result, [1, 0, 2])

    def add_row(row, strips):
        def add_tile(column, row_tiles):
            return column + 1, row_tiles.write(column, one_tile(row, column))

        _, row_tiles = tf.while_loop(
            lambda column, _: column < columns, add_tile,
            (0, tf.TensorArray(dtype, size=columns, infer_shape=False,
                               element_shape=[None, None, 3])),
            parallel_iterations=1)
        return row + 1, strips.write(row, tf.transpose(row_tiles.concat(), [1, 0, 2]))

    _, strips = tf.while_loop(
        lambda row, _: row < rows, add_row,
        (0, tf.TensorArray(dtype, size=rows, infer_shape=False, element_shape=[None, None, 3])),
        parallel_iterations=1)
    return strips.concat()


def quantize(values, dtype=np.uint8, out=None, overwrite=False):
    """Float `values` in [0, 1] as `dtype` (uint8 or uint16), each rounded to the nearest level
    (halves to even, as np.round), in a new array or written into `out`. With `overwrite=True`
    the arithmetic runs in `values`' own memory where it is a writeable float array, which it
    leaves changed: no temporary the size of the image (a 1704 x 960 frame: 2 ms instead of 6
    to 7, and no fresh pages to fault in for every frame)."""
    peak = float(np.iinfo(dtype).max)
    values = np.asarray(values)
    if not (overwrite and values.dtype.kind == "f" and values.flags.writeable):
        values = values.astype(values.dtype if values.dtype.kind == "f" else np.float32)
    np.clip(values, 0.0, 1.0, out=values)
    values *= peak
    np.rint(values, out=values)
    if out is None:
        return values.astype(dtype)
    out[...] = values
    return out


def _window(start, stop, size, limit):
    if limit <= size:
        return 0, limit
    start = min(start, limit - size)
    return start, start + size


def tiles(height, width, tile):
    """(top, bottom, left, right) of each tile, row by row."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            yield top, min(top + tile, height), left, min(left + tile, width)


def upscale_image(upscaler, image, tile=None, tile_pad=DEFAULT_TILE_PAD, out=None,
                  progress=None):
    """Upscales an `(H, W, 3)` float32 [0, 1] image, tile by tile when `tile` is set.

    `out`: an `(sH, sW, 3)` array to write into; float32 by default, or uint8 / uint16 (each
    tile is quantized as it is written, with rounding, in the array the upscaler returned for
    it). `progress(done, total)` is called after each tile. Returns `out`.
    """
    height, width = image.shape[:2]
    scale = upscaler.scale
    if out is None:
        out = np.empty((height * scale, width * scale, 3), np.float32)
    boxes = list(tiles(height, width, tile)) if tile else [(0, height, 0, width)]
    fixed = getattr(upscaler, "fixed_size", None)
    for index, (top, bottom, left, right) in enumerate(boxes):
        pad_top, pad_left = max(top - tile_pad, 0), max(left - tile_pad, 0)
        pad_bottom, pad_right = min(bottom + tile_pad, height), min(right + tile_pad, width)
        if fixed:
            # A fixed-shape model sees whole windows of its size, shifted inside the image at
            # its borders, so that every pixel has real context (or the image border, as the
            # untiled model) rather than padding.
            pad_top, pad_bottom = _window(pad_top, pad_bottom, fixed[0], height)
            pad_left, pad_right = _window(pad_left, pad_right, fixed[1], width)
        result = upscaler(image[None, pad_top:pad_bottom, pad_left:pad_right])[0]
        y0, x0 = (top - pad_top) * scale, (left - pad_left) * scale
        result = result[y0:y0 + (bottom - top) * scale, x0:x0 + (right - left) * scale]
        region = out[top * scale:bottom * scale, left * scale:right * scale]
        if out.dtype.kind == "f":
            region[...] = result
        else:
            quantize(result, out.dtype, out=region, overwrite=True)
        if progress:
            progress(index + 1, len(boxes))
    return out
