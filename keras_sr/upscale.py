"""`keras-sr upscale`: image files in, upscaled files out (see `keras-sr upscale --help`)."""

import os
import sys

import numpy as np

from keras_sr import atomic, inference
from keras_sr.data.images import (
    UnreadableImageError,
    encode_image,
    list_images,
    read_image_exact,
)

FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}


def output_path(args, source, single):
    fmt = args.format or FORMATS.get(os.path.splitext(source)[1].lower(), "png")
    if single and os.path.splitext(args.output)[1].lower() in FORMATS:
        return args.output, args.format or FORMATS[os.path.splitext(args.output)[1].lower()]
    stem = os.path.splitext(os.path.basename(source))[0]
    return os.path.join(args.output, f"{stem}.{fmt}"), fmt


def resize(channels, size):
    """Lanczos (colour) or bicubic (alpha) resize of float (H, W[, C]) to `size` (w, h)."""
    from PIL import Image

    if channels.ndim == 2:
        return np.asarray(Image.fromarray(channels, "F").resize(size, Image.BICUBIC))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c]), "F")
                                .resize(size, Image.LANCZOS))
                     for c in range(channels.shape[-1])], axis=-1)


def upscale_file(upscaler, source, target, fmt, args, log):
    decoded = read_image_exact(source)
    height, width = decoded.color.shape[:2]
    scale = upscaler.scale
    tile = args.tile
    pad = inference.DEFAULT_TILE_PAD if args.tile_pad is None else args.tile_pad
    if tile is None:
        tile = inference.auto_tile(height, width, scale, args.memory_budget
                                   or inference.DEFAULT_MEMORY_BUDGET_MB, pad)
    fixed = getattr(upscaler, "fixed_size", None)
    if fixed and args.tile_pad is None:
        pad = min(pad, min(fixed) // 4)
    if fixed and (tile is None or tile + 2 * pad > min(fixed)):
        # A fixed-shape .tflite takes tiles of at most its input size.
        tile = min(fixed) - 2 * pad
        if tile < 1:
            raise ValueError(f"--tile-pad {pad} leaves no room in the model's fixed "
                             f"{fixed[0]}x{fixed[1]} input")
    bits = 16 if decoded.bits == 16 and fmt == "png" else 8
    out_dtype = np.uint16 if bits == 16 else np.uint8
    progress = None
    if not args.no_progress and tile:
        def progress(done, total):
            print(f"\r  {os.path.basename(source)}: tile {done}/{total}", end="",
                  file=sys.stderr, flush=True)
    resized = args.scale_out is not None and args.scale_out != scale
    out = inference.upscale_image(upscaler, decoded.color, tile=tile, tile_pad=pad,
                                  out=None if resized else
                                  np.empty((height * scale, width * scale, 3), out_dtype),
                                  progress=progress)
    if progress:
        print(file=sys.stderr)
    size = (round(width * (args.scale_out or scale)), round(height * (args.scale_out or scale)))
    peak = float(np.iinfo(out_dtype).max)
    if resized:
        out = resize(out, size)
    if decoded.gray:
        # The model saw the gray channel three times; its three outputs agree to rounding.
        out = out.mean(axis=-1, keepdims=True) if out.dtype.kind == "f" else out[..., :1]
    if out.dtype.kind == "f":
        out = np.round(np.clip(out, 0.0, 1.0) * peak).astype(out_dtype)
    if decoded.alpha is not None:
        if fmt == "jpg":
            log(f"{source}: JPEG has no alpha channel; the transparency is dropped")
        else:
            alpha = np.round(np.clip(resize(decoded.alpha, size), 0, 1) * peak).astype(out_dtype)
            out = np.concatenate([out, alpha[..., None]], axis=-1)
    atomic.write_bytes(target, encode_image(out, fmt, bits))


def main(args):
    def log(message):
        print(message, file=sys.stderr)

    sources = list_images(args.inputs)
    upscaler = inference.load_upscaler(args.model, num_threads=args.threads)
    single = len(sources) == 1
    failures = 0
    for index, source in enumerate(sources, 1):
        target, fmt = output_path(args, source, single)
        if os.path.exists(target) and not args.overwrite:
            log(f"[{index}/{len(sources)}] {source}: {target} exists, kept (--overwrite "
                "replaces it)")
            failures += 1
            continue
        try:
            upscale_file(upscaler, source, target, fmt, args, log)
        except UnreadableImageError as error:
            log(f"[{index}/{len(sources)}] skipped: {error}")
            failures += 1
            continue
        if not args.no_progress:
            log(f"[{index}/{len(sources)}] {source} -> {target}")
    if failures:
        log(f"keras-sr upscale: {failures} of {len(sources)} images not written")
        return 1
    return 0
