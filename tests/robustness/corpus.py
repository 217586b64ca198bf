"""Hostile and odd inputs, made in the tests (no binary blobs in the repository).

Decompression bombs: small files whose headers declare far more pixels than any request should
decode, in each format `tf.io.decode_image` reads.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encoded(array, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width=20000, height=20000):
    """A valid 1-bit grayscale PNG of `width` x `height` black pixels: about 48 KB at the
    default 20000 x 20000, 400 M pixels once decoded."""
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def jpeg_bomb(width=65000, height=65000):
    """A small JPEG whose frame header (SOF0) declares `width` x `height`."""
    data = bytearray(encoded(np.zeros((8, 8, 3)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb(width=65535, height=65535):
    """A GIF whose screen and only frame declare `width` x `height`, with almost no data."""
    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"
            + b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00"
            + b"\x08\x01\x00\x00\x3b")


def gif_frames_bomb(frames=200, side=1024):
    """A GIF of `side` x `side` with `frames` frames: each frame costs giflib its full raster
    whatever TensorFlow keeps, so the whole file decodes to frames x side^2 pixels."""
    frame = (b"\x2c" + struct.pack("<HHHH", 0, 0, side, side) + b"\x00"
             + b"\x08\x01\x00\x00")
    return (b"GIF89a" + struct.pack("<HH", side, side) + b"\x00\x00\x00"
            + frame * frames + b"\x3b")


def gif_fragmented(sub_blocks=100000):
    """A tiny GIF whose image data is split into one-byte sub-blocks: cheap to send, and one
    step per two bytes for anything that walks its structure."""
    return (b"GIF89a" + struct.pack("<HH", 8, 8) + b"\x00\x00\x00"
            + b"\x2c" + struct.pack("<HHHH", 0, 0, 8, 8) + b"\x00\x08"
            + b"\x01\x00" * sub_blocks + b"\x00\x3b")


def bmp_bomb(width=30000, height=30000):
    """A BMP header declaring `width` x `height` 24-bit pixels, without the pixels."""
    data = bytearray(encoded(np.zeros((2, 2, 3)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def webp_bomb(width=16383, height=16383):
    """A lossless WebP whose VP8L header declares `width` x `height` (the format's maximum)."""
    data = bytearray(encoded(np.zeros((2, 2, 3)), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    bits = struct.unpack("<I", data[21:25])[0] & ~((1 << 28) - 1)
    data[21:25] = struct.pack("<I", bits | (width - 1) | (height - 1) << 14)
    return bytes(data)


def animated_webp(frames=3, side=8):
    images = [Image.fromarray(np.full((side, side, 3), 40 * index, np.uint8))
              for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:])
    return buffer.getvalue()


BOMBS = {
    "png_20000x20000_48KB": png_bomb,
    "jpeg_65000x65000": jpeg_bomb,
    "gif_65535x65535": gif_bomb,
    "gif_200_frames_1024x1024": gif_frames_bomb,
    "gif_100000_one_byte_sub_blocks": gif_fragmented,
    "bmp_30000x30000": bmp_bomb,
    "webp_16383x16383": webp_bomb,
}


def odd_images(folder, rng):
    """Writes files every image reader meets sooner or later into `folder`; returns
    {file name: True if it must be read, False if it must be skipped with a message}."""
    folder.mkdir(parents=True, exist_ok=True)

    def photo(height, width, channels=3):
        return rng.integers(0, 256, (height, width, channels)).astype(np.uint8)

    readable = {
        "plain.png": encoded(photo(24, 20), "PNG"),
        "jpeg named.png": encoded(photo(24, 20), "JPEG"),  # wrong extension, space in name
        "ünïcødé.png": encoded(photo(20, 24), "PNG"),
        "palette.png": None, "rgba.png": encoded(photo(20, 20, 4), "PNG"),
        "gray16.png": None, "tiny.png": encoded(photo(1, 1), "PNG"),
    }
    buffer = io.BytesIO()
    Image.fromarray(photo(20, 20)).convert("P").save(buffer, format="PNG")
    readable["palette.png"] = buffer.getvalue()
    buffer = io.BytesIO()
    Image.fromarray((rng.integers(0, 65536, (20, 20))).astype(np.uint16)).save(buffer, "PNG")
    readable["gray16.png"] = buffer.getvalue()
    good = encoded(photo(24, 20), "PNG")
    unreadable = {
        "zero.png": b"",
        "truncated.png": good[:len(good) // 2],
        "text.png": b"just some text, not an image\n",
        "bomb_png.png": png_bomb(),
        "bomb_gif.png": gif_bomb(),  # a GIF under a .png name: readers go by content
        "bomb_webp.webp": webp_bomb(),
        "bomb_bmp.bmp": bmp_bomb(),
    }
    for name, data in {**readable, **unreadable}.items():
        (folder / name).write_bytes(data)
    return {**{name: True for name in readable}, **{name: False for name in unreadable}}


def snapshot(folder):
    """{relative path: sha256} of every file under `folder`: compared before and after a
    command to show that nothing it was not asked to write changed."""
    import hashlib
    import os

    digests = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(file.read()).hexdigest()
    return digests
