"""Reading and writing image files with Pillow, with errors that name the file.

Every reader in keras-sr goes through `read_image`: PNG (8- and 16-bit), JPEG, BMP, WebP and TIFF;
EXIF orientation applied. Colour handling, documented once here:
- palette images are expanded to their colours;
- RGBA / LA keep their colour channels and drop alpha (as OpenCV's IMREAD_COLOR and BasicSR do);
- grayscale stays (H, W) when `keep_gray=True` (evaluation measures it on its one channel),
  otherwise it is repeated to RGB;
- 16-bit images are scaled to 8 bits (round(v / 257)).
"""

import dataclasses
import glob
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

from keras_sr import _quiet
from keras_sr.outputs import (
    DEFAULT_JPEG_QUALITY,
    DEFAULT_PNG_COMPRESSION,
    PNG_COMPRESSION_LEVELS,
    WEBP_LOSSLESS,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# What Pillow raises for a file that is not an image, truncated, corrupt or absurdly large.
PILLOW_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded; `path` and `reason` say which and why."""

    def __init__(self, path, reason):
        super().__init__(f"cannot read image {str(path)!r}: {reason}")
        self.path = str(path)
        self.reason = reason


def list_images(sources):
    """Sorted image files from folders (not recursive), files and glob patterns.

    Raises:
        FileNotFoundError: naming a source that is neither a folder, a file nor a matching glob,
            or when no image is found at all.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found = []
    for source in sources:
        source = str(source)
        if os.path.isdir(source):
            matches = [os.path.join(source, name) for name in os.listdir(source)]
            found.extend(p for p in matches if p.lower().endswith(IMAGE_EXTENSIONS)
                         and os.path.isfile(p))
        elif os.path.isfile(source):
            found.append(source)
        else:
            matches = [p for p in glob.glob(source) if os.path.isfile(p)]
            if not matches:
                raise FileNotFoundError(f"no such image folder, file or pattern: {source!r}")
            found.extend(p for p in matches if p.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {sources}")
    return sorted(set(found))


def _to_uint8(array):
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer) and array.max(initial=0) <= 65535:
        return np.clip(np.round(array.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported pixel type {array.dtype}")


def _is_16_bit_color_png(image):
    """Pillow decodes 48/64-bit PNGs to 8 bits by dropping the low byte; its raw mode tells."""
    if image.format != "PNG":
        return False
    for tile in image.tile:
        raw_mode = tile[3] if isinstance(tile[3], str) else tile[3][0]
        if raw_mode.startswith(("RGB;16", "RGBA;16")):
            return True
    return False


def _read_16_bit_color_png(path):
    tf = _quiet.tensorflow()

    with open(path, "rb") as handle:
        contents = handle.read()
    try:
        array = tf.io.decode_png(contents, channels=3, dtype=tf.uint16).numpy()
    except tf.errors.OpError as error:
        raise UnreadableImageError(path, f"16-bit PNG: {error.message}") from None
    return _to_uint8(array)


def read_image(path, keep_gray=False):
    """Decodes an image file to uint8, `(H, W, 3)`, or `(H, W)` for grayscale with keep_gray.

    Raises:
        UnreadableImageError: the file is missing, not an image, truncated or corrupt.
    """
    try:
        with Image.open(path) as image:
            if _is_16_bit_color_png(image):
                return _read_16_bit_color_png(path)
            image.load()  # decode now, so truncated files fail here and not later
            image = ImageOps.exif_transpose(image)
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            if mode in ("RGBA", "RGBa", "RGBX"):
                array = np.asarray(image.convert("RGBA"))[..., :3]
            elif mode in ("L", "LA", "La", "1", "I", "I;16", "I;16B", "I;16L", "I;16N"):
                array = _to_uint8(np.asarray(image.convert("L") if mode in ("LA", "La", "1")
                                             else image))
                if array.ndim == 3:
                    array = array[..., 0]
            else:
                array = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise UnreadableImageError(path, "no such file") from None
    except PILLOW_ERRORS as error:
        raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from None
    if array.ndim == 2 and not keep_gray:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array)


def write_image(path, array):
    """Writes a uint8 `(H, W, 3)` or `(H, W)` array atomically; the format follows the file
    extension."""
    from keras_sr.atomic import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(temporary)


@dataclasses.dataclass(frozen=True)
class ImageMetadata:
    """What an upscaled image keeps of its source, as ImageMagick and GIMP keep it when they
    resize: `icc_profile` (bytes: without it a wide-gamut photo, Display P3 or Adobe RGB,
    shows desaturated in colour-managed viewers), `exif` (bytes, its orientation already
    applied to the pixels and so left out) and `dpi` ((x, y), kept as it is)."""
    icc_profile: object = None
    exif: object = None
    dpi: object = None


def _metadata_of(image):
    """ImageMetadata of a Pillow image after `ImageOps.exif_transpose` (which drops the
    orientation it applied)."""
    try:
        exif = image.getexif()
        exif = exif.tobytes() if len(exif) else None
    except Exception:  # noqa: BLE001 - EXIF that Pillow cannot rewrite is left behind
        exif = None
    dpi = image.info.get("dpi")
    return ImageMetadata(image.info.get("icc_profile") or None, exif,
                         tuple(dpi) if dpi and all(value > 0 for value in dpi) else None)


class DecodedImage:
    """What `keras-sr upscale` needs of a file: `color` (H, W, 3) float32 in [0, 1], `alpha`
    (H, W) float32 or None, whether it was grayscale, its bit depth (8 or 16) and the
    `metadata` its output keeps (ImageMetadata)."""

    def __init__(self, color, alpha, gray, bits, metadata=None):
        self.color, self.alpha, self.gray, self.bits = color, alpha, gray, bits
        self.metadata = metadata or ImageMetadata()


def _through_profile(image, icc_profile):
    """`image` (CMYK, LAB, ...) as sRGB uint8 through its ICC profile (perceptual intent, as
    Pillow's and LittleCMS's default), or None where the profile cannot be used: then
    Pillow's own conversion (CMYK's without any ink model: print colours shift) serves."""
    import io

    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                              outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None
    return np.asarray(converted)


def read_image_exact(path):
    """Decodes an image keeping what `read_image` folds away: alpha, grayscale and 16 bits.
    EXIF orientation is applied. Raises UnreadableImageError."""
    try:
        with Image.open(path) as image:
            if _is_16_bit_color_png(image):
                tf = _quiet.tensorflow()

                with open(path, "rb") as handle:
                    array = tf.io.decode_png(handle.read(), channels=0, dtype=tf.uint16).numpy()
                color, alpha = array[..., :3], array[..., 3] if array.shape[-1] == 4 else None
                return _decoded(color, alpha, False, 16, _metadata_of(image))
            image.load()
            image = ImageOps.exif_transpose(image)
            metadata = _metadata_of(image)
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                array = np.asarray(image).astype(np.uint16) if mode != "I" else \
                    np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
                return _decoded(np.repeat(array[..., None], 3, -1), None, True, 16, metadata)
            if mode in ("L", "1", "LA", "La"):
                gray = np.asarray(image.convert("LA"))
                alpha = gray[..., 1] if mode in ("LA", "La") else None
                return _decoded(np.repeat(gray[..., :1], 3, -1), alpha, True, 8, metadata)
            if mode in ("RGBA", "RGBa"):
                array = np.asarray(image.convert("RGBA"))
                return _decoded(array[..., :3], array[..., 3], False, 8, metadata)
            if mode not in ("RGB", "RGBX") and metadata.icc_profile:
                # CMYK, LAB, ...: its profile describes the source's channels, not RGB; the
                # pixels are made sRGB through it (untagged, which viewers take for sRGB).
                rgb = _through_profile(image, metadata.icc_profile)
                metadata = dataclasses.replace(metadata, icc_profile=None)
                if rgb is not None:
                    return _decoded(rgb, None, False, 8, metadata)
            return _decoded(np.asarray(image.convert("RGB")), None, False, 8, metadata)
    except FileNotFoundError:
        raise UnreadableImageError(path, "no such file") from None
    except PILLOW_ERRORS as error:
        raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from None


@dataclasses.dataclass
class Animation:
    """An animated PNG or WebP: `count` frames, each shown `durations[i]` ms, played `loop`
    times (0: forever), with the file's `metadata` (ImageMetadata); `frames` an iterator of
    DecodedImage, each the whole picture as shown (Pillow composites the frames), decoded one
    at a time as it is read, with alpha unless every frame is opaque."""
    count: int
    durations: list
    loop: int
    metadata: ImageMetadata
    frames: object


def read_animation(path):
    """The Animation in `path`, or None for a still image. Raises UnreadableImageError."""
    try:
        with Image.open(path) as image:
            count = getattr(image, "n_frames", 1)
            if count < 2:
                return None
            metadata, durations, opaque = _metadata_of(image), [], True
            for index in range(count):
                image.seek(index)
                image.load()
                durations.append(int(image.info.get("duration") or 100))
                opaque = opaque and image.convert("RGBA").getextrema()[3][0] == 255
            loop = int(image.info.get("loop", 0))
    except FileNotFoundError:
        raise UnreadableImageError(path, "no such file") from None
    except PILLOW_ERRORS as error:
        raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from None

    def frames():
        try:
            with Image.open(path) as image:
                for index in range(count):
                    image.seek(index)
                    image.load()
                    rgba = np.asarray(image.convert("RGBA"))
                    yield _decoded(rgba[..., :3], None if opaque else rgba[..., 3], False, 8,
                                   metadata)
        except PILLOW_ERRORS as error:
            raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from None

    return Animation(count, durations, loop, metadata, frames())


def _decoded(color, alpha, gray, bits, metadata=None):
    peak = 65535.0 if bits == 16 else 255.0
    alpha = None if alpha is None else np.asarray(alpha, np.float32) / peak
    return DecodedImage(np.ascontiguousarray(color, np.float32) / peak, alpha, gray, bits,
                        metadata)


_EXIF_IFD, _PIXEL_X, _PIXEL_Y = 0x8769, 0xA002, 0xA003


def _exif_for_size(exif_bytes, width, height):
    """`exif_bytes` with the pixel size it states (if any) made `width` x `height`; as they
    are where Pillow cannot rewrite them."""
    try:
        exif = Image.Exif()
        exif.load(exif_bytes)
        details = exif.get_ifd(_EXIF_IFD)
        if _PIXEL_X in details or _PIXEL_Y in details:
            details[_PIXEL_X], details[_PIXEL_Y] = width, height
        return exif.tobytes()
    except Exception:  # noqa: BLE001 - odd maker notes and the like: kept unchanged
        return exif_bytes


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _with_png_metadata(png, metadata, exif):
    """`png` (bytes) with the profile, EXIF and resolution chunks Pillow would write (iCCP,
    eXIf, pHYs), placed after IHDR, where every reader looks for them."""
    chunks = b""
    if metadata.icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc_profile))
    if exif:
        chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    if metadata.dpi:
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", *(round(value / 0.0254)
                                                             for value in metadata.dpi), 1))
    end_of_header = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, data, CRC
    return png[:end_of_header] + chunks + png[end_of_header:]


def encode_animation(frames, format, durations, loop, png_compression=DEFAULT_PNG_COMPRESSION,
                     metadata=None, quality=None):
    """An animated PNG or WebP (bytes) of `frames` (an iterable of uint8 (H, W, 3|4) arrays,
    read one at a time), each shown `durations[i]` ms, played `loop` times (0: forever),
    with `metadata`'s ICC profile (and EXIF for WebP); WebP lossless, or lossy at `quality`
    (1-100)."""
    import io

    if format not in ("png", "webp"):
        raise ValueError(f"an animation is written as PNG or WebP, not {format}")
    images = (Image.fromarray(np.ascontiguousarray(frame, np.uint8)) for frame in frames)
    first = next(images)
    metadata = metadata or ImageMetadata()
    exif = _exif_for_size(metadata.exif, first.width, first.height) \
        if metadata.exif and format == "webp" else None
    if format == "png":  # Pillow's APNG writer reads its frames twice; WebP's takes a stream
        images = list(images)
    buffer = io.BytesIO()
    first.save(buffer, **_save_options(format, png_compression, metadata.icc_profile, exif,
                                       quality=quality),
               save_all=True, append_images=images, duration=durations, loop=loop)
    return buffer.getvalue()


def _save_options(format, png_compression, icc_profile=None, exif=None, dpi=None,
                  quality=None):
    """Pillow's options for writing `format`, with the profile, EXIF and resolution given:
    JPEG at `quality` (default 95), WebP lossy at `quality` or, without one, lossless."""
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1-100, got {quality!r}")
    webp = {"quality": quality} if quality is not None else {"lossless": True, **WEBP_LOSSLESS}
    options = {"jpg": {"format": "JPEG", "quality": quality or DEFAULT_JPEG_QUALITY},
               "webp": {"format": "WEBP", **webp},
               "png": {"format": "PNG", "compress_level": png_compression}}[format]
    kept = {"icc_profile": icc_profile, "exif": exif, "dpi": dpi}
    return {**options, **{key: value for key, value in kept.items() if value}}


def encode_image(pixels, format, bits=8, png_compression=DEFAULT_PNG_COMPRESSION,
                 metadata=None, quality=None):
    """Encodes `(H, W)`, `(H, W, 1|3|4)` pixels (uint8, or uint16 with bits=16 for PNG) as
    "png", "jpg" or "webp" bytes; `png_compression`: zlib's level for PNG (0-9); `quality`:
    JPEG's (1-100, default 95) and WebP's (1-100: lossy; default lossless); `metadata`
    (ImageMetadata): the source's ICC profile, EXIF (its pixel size made the new one) and
    resolution, written where the format holds them (WebP has no resolution). 16-bit goes
    through TF's PNG encoder, which Pillow lacks for colour."""
    import io

    if png_compression not in PNG_COMPRESSION_LEVELS:
        raise ValueError(f"PNG compression must be 0-9, got {png_compression!r}")
    metadata = metadata or ImageMetadata()
    exif = _exif_for_size(metadata.exif, pixels.shape[1], pixels.shape[0]) \
        if metadata.exif else None
    if bits == 16:
        if format != "png":
            raise ValueError("16-bit output is PNG only")
        tf = _quiet.tensorflow()

        if pixels.ndim == 2:
            pixels = pixels[..., None]
        return _with_png_metadata(tf.io.encode_png(np.ascontiguousarray(pixels, np.uint16),
                                                   compression=png_compression).numpy(),
                                  metadata, exif)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    image = Image.fromarray(np.ascontiguousarray(pixels, np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, **_save_options(format, png_compression, metadata.icc_profile, exif,
                                       metadata.dpi if format != "webp" else None, quality))
    return buffer.getvalue()
