"""What decoding an encoded image would cost, read in the graph from its header alone.

A server that decodes whatever it is sent can be killed by a small file: a 48 KB PNG may declare
20000 x 20000 pixels, and the decoder allocates them before it finds out anything else. The
serving signatures ask `decode_cost` first and decode only what fits their budget.

`decode_cost(contents)` returns `(pixels, width, height, format)` for the formats
`tf.io.decode_image` reads, from their headers (PNG IHDR; JPEG SOF through
`tf.image.extract_jpeg_shape`; WebP VP8 / VP8L / VP8X; BMP; GIF's screen and every frame):

- GIF: giflib reads every frame of a file into memory before TensorFlow takes the first, so the
  cost is the screen plus the area of every frame descriptor (walked block by block, within
  `GIF_MAX_STEPS` steps; a GIF that needs more gives `GIF_TOO_COMPLEX`).
- WebP: animated WebP is refused (`pixels` = `ANIMATED_WEBP`): TensorFlow 2.21's decoder
  corrupts the heap on it (measured: the process aborts with `double free or corruption`) unless
  4 channels are requested, and refuses it then.
- Anything else, JPEG XL included, and headers too short to hold the size give
  `UNSUPPORTED`: a limit checked against this fails closed.
"""

import tensorflow as tf

UNSUPPORTED = -1
ANIMATED_WEBP = -2
FORMATS = ("unknown", "PNG", "JPEG", "GIF", "BMP", "WebP")


def _as_bytes(string):
    """The bytes of a scalar string (uint8, one byte each, however long the string), with one
    0 after the end for `_gather`."""
    return tf.concat([tf.io.decode_raw(string, tf.uint8), tf.zeros([1], tf.uint8)], axis=0)


def _gather(data, indices):
    """`data[indices]` of `_as_bytes` data as int64, 0 outside the string."""
    size = tf.size(data, out_type=tf.int64) - 1
    indices = tf.cast(indices, tf.int64)
    inside = (indices >= 0) & (indices < size)
    return tf.cast(tf.gather(data, tf.where(inside, indices, size)), tf.int64)


def _uint(data, offset, length, big_endian=False):
    value = tf.constant(0, tf.int64)
    for position in range(length):
        index = offset + (position if big_endian else length - 1 - position)
        value = value * 256 + _gather(data, index)
    return value


def _starts_with(data, offset, signature):
    return tf.reduce_all(tf.stack([tf.equal(_gather(data, offset + index), value)
                                   for index, value in enumerate(signature)]))


def _color_table(flags):
    """Bytes of a GIF colour table announced by a packed-fields byte."""
    present = tf.bitwise.bitwise_and(flags, 0x80) > 0
    entries = tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(flags, 7))
    return tf.where(present, 3 * entries, tf.zeros_like(entries))


# The GIF walk takes one step per block, per short sub-block, and per run of up to 64 full
# (255-byte) sub-blocks, which is how encoders write image data; a file that needs more steps
# than this (an adversary's one-byte sub-blocks, or thousands of frames) is refused rather than
# checked for seconds: a step costs about 20 microseconds in a TensorFlow while loop.
GIF_MAX_STEPS = 8192
GIF_FULL_RUN = 64
GIF_TOO_COMPLEX = -3


def _gif_cost(data):
    """Screen area plus the area of every frame, walking the GIF's blocks from the first; or
    GIF_TOO_COMPLEX when that takes more than GIF_MAX_STEPS steps."""
    size = tf.size(data, out_type=tf.int64) - 1
    start = 13 + _color_table(_gather(data, 10))
    offsets = tf.range(10, dtype=tf.int64)
    full_run = 256 * tf.range(GIF_FULL_RUN, dtype=tf.int64)

    def step(position, cost, in_sub_blocks, done):
        # One gather for the ten bytes a block may need (an image descriptor's header), one
        # for the length bytes of the next full sub-blocks.
        window = _gather(data, position + offsets)
        full = tf.reduce_sum(tf.math.cumprod(tf.cast(
            tf.equal(_gather(data, position + full_run), 255), tf.int64)))
        byte = window[0]
        extension, image = tf.equal(byte, 0x21), tf.equal(byte, 0x2C)
        frame = (window[5] + 256 * window[6]) * (window[7] + 256 * window[8])
        # Sub-blocks: a length byte and that many bytes, until a zero length. An extension is
        # 0x21, a label, then sub-blocks; an image descriptor is 10 bytes, a local colour
        # table, the LZW code size byte, then sub-blocks.
        in_sub_blocks_next = tf.where(full > 0, position + 256 * full, position + 1 + byte)
        next_position = tf.where(
            in_sub_blocks, in_sub_blocks_next,
            tf.where(extension, position + 2, position + 11 + _color_table(window[9])))
        cost = cost + tf.where(~in_sub_blocks & image, frame, tf.zeros_like(frame))
        # The trailer (0x3B) or any other byte between blocks ends the walk, as does the end
        # of the data.
        finished = (~in_sub_blocks & ~extension & ~image) | (next_position >= size)
        return (next_position, cost, tf.where(in_sub_blocks, (full > 0) | (byte > 0),
                                              extension | image), finished)

    _, frames, _, done = tf.while_loop(
        lambda position, cost, in_sub_blocks, done: ~done, step,
        (start, tf.constant(0, tf.int64), tf.constant(False), start >= size),
        maximum_iterations=GIF_MAX_STEPS, parallel_iterations=1)
    screen = _uint(data, 6, 2) * _uint(data, 8, 2)
    return tf.where(done, screen + frames, tf.constant(GIF_TOO_COMPLEX, tf.int64))


def decode_cost(contents):
    """`(pixels, width, height, format)` of one encoded image (a scalar string tensor), read
    from its header; `pixels` is what decoding it allocates, in pixels, or `UNSUPPORTED` /
    `ANIMATED_WEBP`. `format` is an index into `FORMATS`."""
    head = _as_bytes(tf.strings.substr(contents, 0, 64))
    length = tf.cast(tf.strings.length(contents), tf.int64)
    zero = tf.constant(0, tf.int64)

    def png():
        valid = _starts_with(head, 12, b"IHDR") & (length >= 24)
        width, height = _uint(head, 16, 4, True), _uint(head, 20, 4, True)
        # Sides up to 2**32 - 1 would overflow int64 when multiplied; 2**31 is PNG's own bound.
        pixels = tf.minimum(width, 2**31) * tf.minimum(height, 2**31)
        pixels = tf.where(valid, pixels, tf.constant(UNSUPPORTED, tf.int64))
        return pixels, width, height, tf.constant(1)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(contents, output_type=tf.int32), tf.int64)
        return shape[0] * shape[1], shape[1], shape[0], tf.constant(2)

    def gif():
        width, height = _uint(head, 6, 2), _uint(head, 8, 2)
        pixels = tf.where(length >= 13, _gif_cost(_as_bytes(contents)),
                          tf.constant(UNSUPPORTED, tf.int64))
        return pixels, width, height, tf.constant(3)

    def bmp():
        # Width and height are signed 32-bit (a negative height is a top-down image).
        width = tf.abs(_uint(head, 18, 4) - tf.where(_gather(head, 21) >= 128, 2**32, zero))
        height = tf.abs(_uint(head, 22, 4) - tf.where(_gather(head, 25) >= 128, 2**32, zero))
        pixels = tf.where(length >= 32, width * height, tf.constant(UNSUPPORTED, tf.int64))
        return pixels, width, height, tf.constant(4)

    def webp():
        lossy, lossless = _starts_with(head, 12, b"VP8 "), _starts_with(head, 12, b"VP8L")
        extended = _starts_with(head, 12, b"VP8X")
        bits = _uint(head, 21, 4)
        width = tf.where(lossy, tf.bitwise.bitwise_and(_uint(head, 26, 2), 0x3FFF),
                         tf.where(lossless, tf.bitwise.bitwise_and(bits, 0x3FFF) + 1,
                                  _uint(head, 24, 3) + 1))
        height = tf.where(lossy, tf.bitwise.bitwise_and(_uint(head, 28, 2), 0x3FFF),
                          tf.where(lossless,
                                   tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14),
                                                          0x3FFF) + 1,
                                   _uint(head, 27, 3) + 1))
        animated = extended & (tf.bitwise.bitwise_and(_gather(head, 20), 0x02) > 0)
        known = (lossy | lossless | extended) & (length >= 30)
        pixels = tf.where(animated, tf.constant(ANIMATED_WEBP, tf.int64),
                          tf.where(known, width * height, tf.constant(UNSUPPORTED, tf.int64)))
        return pixels, width, height, tf.constant(5)

    def unknown():
        return tf.constant(UNSUPPORTED, tf.int64), zero, zero, tf.constant(0)

    # The signatures tf.io.decode_image classifies by, in its order.
    return tf.case([
        (_starts_with(head, 0, b"\xff\xd8\xff"), jpeg),
        (_starts_with(head, 0, b"\x89PNG\r\n\x1a\n"), png),
        (_starts_with(head, 0, b"GIF8"), gif),
        (_starts_with(head, 0, b"BM"), bmp),
        (_starts_with(head, 0, b"RIFF") & _starts_with(head, 8, b"WEBP"), webp),
    ], default=unknown, exclusive=False)


def refuse_unless(condition, *message):
    """An assertion op: InvalidArgument with the message made of `message`'s parts (strings,
    string tensors, or numbers shown as text) unless `condition` holds."""
    parts = [part if isinstance(part, str) or part.dtype == tf.string
             else tf.strings.as_string(part) for part in message]
    return tf.debugging.Assert(condition, [tf.strings.join(parts)], summarize=1)


def check_decode_cost(contents, max_pixels, what="image"):
    """An op that fails with InvalidArgument, naming the image (`what`, a string or string
    tensor), its format, size and the limit, when decoding `contents` would exceed
    `max_pixels` or cannot be costed from its header; returns the cost in pixels."""
    pixels, width, height, format_index = decode_cost(contents)
    format_name = tf.gather(tf.constant(FORMATS), format_index)
    refusals = [
        (pixels != UNSUPPORTED, [
            " (", tf.strings.length(contents), " bytes) is not a PNG, "
            "JPEG, GIF, BMP or WebP image, or its header is cut short"]),
        (pixels != ANIMATED_WEBP, [
            " is an animated WebP, which is not accepted (TensorFlow's decoder is unsafe on "
            "it); send a still image"]),
        (pixels != GIF_TOO_COMPLEX, [
            f" is a GIF with more than {GIF_MAX_STEPS} blocks or short sub-blocks to check "
            "(thousands of frames, or an unusual encoding); send it as PNG"]),
        ((pixels < 0) | (pixels <= max_pixels), [
            ": decoding this ", format_name, " (", width, " x ", height, ") takes ", pixels,
            f" pixels, above the limit of {max_pixels} pixels "
            "(--max-pixels)"]),
    ]
    checks = [refuse_unless(condition, what, *message) for condition, message in refusals]
    with tf.control_dependencies(checks):
        return tf.identity(pixels)
