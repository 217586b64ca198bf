"""`keras-sr upscale`: image files in, upscaled files out (see `keras-sr upscale --help`)."""

import os
import sys

import numpy as np

from keras_sr import atomic, inference, outputs, video
from keras_sr.data.images import (
    UnreadableImageError,
    encode_animation,
    encode_image,
    list_images,
    read_animation,
    read_image_exact,
)
from keras_sr.precision import describe_device

FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
COLLISION_HINT = ("pass --keep-extension to name each output after its whole input file name, "
                  "or upscale them into different folders")


def output_path(args, source, single):
    """`(target, format)`: `-o FILE` for a single input given a file name, else
    `OUT/<stem>.<format>` (`OUT/<name>.<format>` with --keep-extension)."""
    if video.is_video(source):
        # A video keeps its container (--format and --keep-extension name images).
        if single and not os.path.isdir(args.output) and video.is_video(args.output):
            return args.output, "video"
        stem = os.path.splitext(os.path.basename(source))[0]
        return os.path.join(args.output, stem + os.path.splitext(source)[1].lower()), "video"
    fmt = args.format or FORMATS.get(os.path.splitext(source)[1].lower(), "png")
    if single and not os.path.isdir(args.output) \
            and os.path.splitext(args.output)[1].lower() in FORMATS:
        return args.output, args.format or FORMATS[os.path.splitext(args.output)[1].lower()]
    name = os.path.basename(source)
    stem = name if getattr(args, "keep_extension", False) else os.path.splitext(name)[0]
    return os.path.join(args.output, f"{stem}.{fmt}"), fmt


def expand_inputs(inputs, log):
    """Image and video files from the inputs (files, folders, globs); a missing one is
    reported, not fatal. Returns (files, number of inputs that matched nothing)."""
    files, missing = [], 0
    for source in inputs:
        videos = sorted(os.path.join(source, name) for name in os.listdir(source)
                        if video.is_video(name)) if os.path.isdir(source) else []
        try:
            files.extend(list_images([source]))
        except FileNotFoundError as error:
            if not videos:
                log(f"skipped: {error}")
                missing += 1
        files.extend(videos)
    return list(dict.fromkeys(files)), missing


def plan(args, sources):
    """Every `(source, target, format)`, checked before any work: `-o FILE` only for one
    input, no two inputs writing one file, the output folder writable."""
    single = len(sources) == 1
    names_a_file = (os.path.splitext(args.output)[1].lower() in FORMATS
                    or video.is_video(args.output)) and not os.path.isdir(args.output)
    if names_a_file and not single:
        raise outputs.OutputError(f"-o {args.output} names one file, but {len(sources)} images "
                                  "were given; give a folder")
    if os.path.isfile(args.output) and not names_a_file:
        raise outputs.OutputError(f"-o {args.output} is an existing file, not a folder")
    jobs = [(source, *output_path(args, source, single)) for source in sources]
    outputs.writable_directory(os.path.dirname(os.path.abspath(jobs[0][1])))
    outputs.refuse_collisions([(source, target) for source, target, _ in jobs], COLLISION_HINT)
    return jobs


def check_result_fits(source, height, width, scale_out, channels, bytes_per_value):
    """Refuses an image whose result would not fit in this machine's memory (the tiles keep
    the model's activations small; the whole result is still held once)."""
    out_values = round(height * scale_out) * round(width * scale_out) * channels
    needed = out_values * bytes_per_value
    try:
        available = outputs.physical_memory_bytes()
    except (ValueError, OSError, AttributeError):  # no sysconf for it on this platform
        return
    if needed > 0.8 * available:
        raise ValueError(f"{source}: its {width}x{height} result at x{scale_out:g} would need "
                         f"{needed / 2**30:.1f} GiB, more than this machine's "
                         f"{available / 2**30:.1f} GiB of memory allows")


def resize(channels, size):
    """Lanczos (colour) or bicubic (alpha) resize of float (H, W[, C]) to `size` (w, h)."""
    from PIL import Image

    if channels.ndim == 2:
        return np.asarray(Image.fromarray(channels, "F").resize(size, Image.BICUBIC))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c]), "F")
                                .resize(size, Image.LANCZOS))
                     for c in range(channels.shape[-1])], axis=-1)


def tile_for(upscaler, height, width, args):
    """(tile side or 0, tile pad) for an image of this size, as --tile / --tile-pad /
    --memory-budget and a fixed-shape model's input allow."""
    scale = upscaler.scale
    tile = args.tile
    pad = inference.DEFAULT_TILE_PAD if args.tile_pad is None else args.tile_pad
    if tile is None:
        tile = inference.auto_tile(height, width, scale, args.memory_budget
                                   or inference.DEFAULT_MEMORY_BUDGET_MB, pad,
                                   upscaler.bytes_per_pixel)
    fixed = getattr(upscaler, "fixed_size", None)
    if fixed and args.tile_pad is None:
        pad = min(pad, min(fixed) // 4)
    if fixed and (not tile or tile + 2 * pad > min(fixed)):
        # A fixed-shape .tflite takes tiles of at most its input size.
        tile = min(fixed) - 2 * pad
        if tile < 1:
            raise ValueError(f"--tile-pad {pad} leaves no room in the model's fixed "
                             f"{fixed[0]}x{fixed[1]} input")
    return tile, pad


def upscale_video_file(upscaler, source, target, args, log):
    """A video through the model (`keras_sr.video`), each frame as a still image would be
    (tiles, --scale-out); untiled frames go `--batch` at a time. On a terminal, a progress
    line with frames, frames per second and the time left; one summary line at the end."""
    import signal
    import threading
    import time

    scale = upscaler.scale
    out_scale = args.scale_out or scale
    tiles = {}

    def as_levels(result, height, width, dtype):
        """A frame's SR result (in `dtype` when written so by upscale_image, else float)
        resized to --scale-out and quantized to `dtype`, the frames' (uint8, or uint16 for
        deep video). Quantized here, not on the video writer's thread: a float frame is four
        times the bytes in its queue (a 480p frame at x4: 79 MB), and quantizing in place
        takes ~1% of a frame's time (~2 ms at 1704 x 960 on a Zen 5)."""
        if out_scale != scale:
            result = resize(result, (round(width * out_scale), round(height * out_scale)))
        return result if result.dtype == dtype else inference.quantize(result, dtype,
                                                                       overwrite=True)

    def upscale_frames(frames):
        height, width, channels = frames[0].shape
        dtype = frames[0].dtype
        peak = np.float32(np.iinfo(dtype).max)
        if (height, width) not in tiles:
            check_result_fits(source, height, width, out_scale, channels, 8)
            tiles[height, width] = tile_for(upscaler, height, width, args)
        tile, pad = tiles[height, width]
        if not tile and upscaler.batches and len(frames) > 1 and channels == 3:
            results = upscaler(np.stack(frames).astype(np.float32) / peak)
            return [as_levels(result, height, width, dtype) for result in results]
        outputs = []
        for frame in frames:
            out = np.empty((height * scale, width * scale, 3), dtype) \
                if out_scale == scale else None
            result = inference.upscale_image(upscaler, frame[..., :3].astype(np.float32) / peak,
                                             tile=tile or None, tile_pad=pad, out=out)
            result = as_levels(result, height, width, dtype)
            if channels == 4:  # alpha as a still image's: by the model, or bicubic
                alpha = frame[..., 3].astype(np.float32) / peak
                alpha = upscaled_alpha_channel(
                    upscaler, alpha, tile, pad, result.shape[1::-1],
                    alpha_through_model(alpha, getattr(args, "alpha_upscaler", "model")))
                result = np.concatenate(
                    [result, inference.quantize(alpha, dtype, overwrite=True)[..., None]], -1)
            outputs.append(result)
        return outputs

    start = time.monotonic()

    def progress(done, total):
        rate = done / max(time.monotonic() - start, 1e-9)
        print(f"\r  {os.path.basename(source)} {progress_bar(done, total)} frame {done}/{total},"
              f" {rate:.2f} frames/s, ETA {clock((total - done) / rate if rate else 0.0)}",
              end="", file=sys.stderr, flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt(f"{signal.Signals(signum).name}")

    show = not args.no_progress and sys.stderr.isatty()
    settings = {"model": args.model, "precision": upscaler.precision,
                "scale_out": args.scale_out, "tile": args.tile, "tile_pad": args.tile_pad,
                "memory_budget": args.memory_budget,
                "denoise_strength": getattr(args, "denoise_strength", None)}
    # SIGTERM stops the run as Ctrl-C does: the complete segments stay for --resume.
    previous = signal.signal(signal.SIGTERM, stop) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        frames = video.upscale_video(
            source, target, upscale_frames, out_scale, codec=getattr(args, "codec", None),
            crf=getattr(args, "crf", None), pix_fmt=getattr(args, "pix_fmt", None),
            progress=progress if show else None, settings=settings,
            resume=getattr(args, "resume", False), batch=getattr(args, "batch", 1) or 1,
            segment_seconds=getattr(args, "segment_seconds", None) or video.SEGMENT_SECONDS,
            log=log)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if show:
            print(file=sys.stderr)
    elapsed = time.monotonic() - start
    log(f"{source}: {frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.2f} "
        "frames/s)")


def progress_bar(done, total, width=24):
    """`[#########...............]`: the share of `total` that `done` is."""
    filled = min(width, width * done // max(total, 1))
    return f"[{'#' * filled}{'.' * (width - filled)}]"


def clock(seconds):
    """`m:ss`, or `h:mm:ss` from an hour: an ETA that reads at a glance."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def upscale_file(upscaler, source, target, fmt, args, log):
    compression = getattr(args, "png_compression", outputs.DEFAULT_PNG_COMPRESSION)
    quality = getattr(args, "quality", None)
    animation = read_animation(source)
    if animation and fmt == "jpg":
        log(f"{source}: animated ({animation.count} frames), but JPEG holds one picture: only "
            "the first is written (--format png or webp keeps them all)")
    elif animation:
        frames = (upscaled_pixels(upscaler, decoded, f"{source} frame {index + 1}",
                                  fmt, args, log, frames=animation.count)
                  for index, decoded in enumerate(animation.frames))
        atomic.write_bytes(target, encode_animation(frames, fmt, animation.durations,
                                                    animation.loop, compression,
                                                    animation.metadata, quality))
        return
    decoded = read_image_exact(source)
    out = upscaled_pixels(upscaler, decoded, source, fmt, args, log)
    atomic.write_bytes(target, encode_image(out, fmt, 16 if out.dtype == np.uint16 else 8,
                                            compression, decoded.metadata, quality))


def upscaled_pixels(upscaler, decoded, source, fmt, args, log, frames=1):
    """The output's pixels (uint8 or uint16, with alpha where the source has it and `fmt`
    holds it) of one decoded image, or one of an animation's `frames`."""
    height, width = decoded.color.shape[:2]
    scale = upscaler.scale
    resized = args.scale_out is not None and args.scale_out != scale
    # The result (uint8 / uint16, or float32 twice when resized) is the one whole-image array;
    # an animation holds every frame's.
    model_alpha = decoded.alpha is not None and fmt != "jpg" \
        and alpha_through_model(decoded.alpha, getattr(args, "alpha_upscaler", "model"))
    check_result_fits(source, height, width, args.scale_out or scale,
                      (3 + (decoded.alpha is not None) + 3 * model_alpha) * frames,
                      8 if resized else decoded.bits // 8)
    tile, pad = tile_for(upscaler, height, width, args)
    bits = 16 if decoded.bits == 16 and fmt == "png" else 8
    out_dtype = np.uint16 if bits == 16 else np.uint8
    progress = None
    if not args.no_progress and tile and sys.stderr.isatty():
        def progress(done, total):
            print(f"\r  {os.path.basename(source)}: tile {done}/{total}", end="",
                  file=sys.stderr, flush=True)
    out = inference.upscale_image(upscaler, decoded.color, tile=tile or None, tile_pad=pad,
                                  out=None if resized else
                                  np.empty((height * scale, width * scale, 3), out_dtype),
                                  progress=progress)
    if progress:
        print(file=sys.stderr)
    size = (round(width * (args.scale_out or scale)), round(height * (args.scale_out or scale)))
    if min(size) < 1:
        raise ValueError(f"{source}: --scale-out {args.scale_out:g} leaves no pixel of its "
                         f"{width}x{height}")
    if resized:
        out = resize(out, size)
    if decoded.gray:
        # The model saw the gray channel three times; its three outputs are folded into one
        # with BT.601 luma, as Real-ESRGAN does (OpenCV's BGR2GRAY; they differ by a model's
        # colour cast, up to a few levels for a trained one).
        out = (out @ LUMA)[..., None] if out.dtype.kind == "f" else inference.quantize(
            (out @ (LUMA / np.float32(np.iinfo(out.dtype).max)))[..., None], out.dtype,
            overwrite=True)
    if out.dtype.kind == "f":
        out = inference.quantize(out, out_dtype, overwrite=True)
    if decoded.alpha is not None:
        if fmt == "jpg":
            log(f"{source}: JPEG has no alpha channel; the transparency is dropped")
        else:
            alpha = upscaled_alpha_channel(upscaler, decoded.alpha, tile, pad, size,
                                           model_alpha)
            alpha = inference.quantize(alpha, out_dtype, overwrite=True)
            out = np.concatenate([out, alpha[..., None]], axis=-1)
    return out


# ITU-R BT.601 luma, what OpenCV's BGR2GRAY takes (Real-ESRGAN folds the model's three
# outputs for an alpha channel into one with it).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def alpha_through_model(alpha, how):
    """Whether an alpha channel goes through the model: `how` (--alpha-upscaler) says
    "model" and it is not uniform (an opaque RGBA screenshot stays uniform: the model would
    only make it slightly transparent)."""
    return how == "model" and alpha.min() != alpha.max()


def upscaled_alpha_channel(upscaler, alpha, tile, pad, size, through_model):
    """An alpha channel (H, W) float in [0, 1] made `size` (w, h): through the model
    (`upscaled_alpha`) when `through_model` (`alpha_through_model`), else resized bicubic."""
    if through_model:
        alpha = upscaled_alpha(upscaler, alpha, tile, pad)
    return alpha if alpha.shape[::-1] == tuple(size) else resize(alpha, tuple(size))


def upscaled_alpha(upscaler, alpha, tile, pad):
    """An alpha channel (H, W) float in [0, 1] upscaled by the model, as Real-ESRGAN's
    default `--alpha_upsampler realesrgan` does: given as gray RGB, the model's output
    clipped to [0, 1] and folded back into one channel with BT.601 luma weights. Tiled as the
    colour is, into 16-bit levels (6 bytes a pixel rather than float32's 12)."""
    height, width = alpha.shape
    scale = upscaler.scale
    levels = inference.upscale_image(
        upscaler, np.repeat(np.asarray(alpha, np.float32)[..., None], 3, axis=-1),
        tile=tile or None, tile_pad=pad,
        out=np.empty((height * scale, width * scale, 3), np.uint16))
    return levels @ (LUMA / np.float32(65535))


def main(args):
    """Upscales every input; returns the exit status (0 all written, 1 some not, 2 nothing
    to do). Raises OutputError / ModelFileError / ValueError for a mistake found before any
    image is read."""
    def log(message):
        print(message, file=sys.stderr)

    sources, missing = expand_inputs(args.inputs, log)
    if not sources:
        raise FileNotFoundError(f"no image files among the inputs {args.inputs}")
    jobs = plan(args, sources)
    for _, target, fmt in jobs:
        if fmt == "video":  # a --crf its encoder cannot take is said now, not per video
            video.encoding_for(target, getattr(args, "codec", None), getattr(args, "crf", None),
                               getattr(args, "pix_fmt", None))
    if getattr(args, "quality", None) is not None \
            and not any(fmt in ("jpg", "webp") for _, _, fmt in jobs):
        log("keras-sr upscale: warning: --quality is for JPEG and WebP outputs; it changes "
            "nothing here (PNG is lossless: --png-compression sets its size; videos: --crf)")
    inference.check_model_spec(args.model)
    from keras_sr import engines, presets, zoo

    strength = getattr(args, "denoise_strength", None)
    if strength is not None and zoo.canonical(args.model) != presets.DENOISE_PRESET:
        raise ValueError(f"--denoise-strength goes with --model {presets.DENOISE_PRESET}, "
                         f"not {args.model}")
    from keras_sr import startup  # the inputs and outputs are good: the work starts

    engine, precision = getattr(args, "engine", "auto"), getattr(args, "precision", "float32")
    startup.load(tensorflow=False)
    upscaler = None if strength is not None else engines.load_without_tensorflow(
        args.model, engine, precision, args.threads)
    if upscaler is None:
        startup.load()
        model = args.model if strength is None else presets.denoise_path(strength)
        upscaler = engines.load(model, engine=engine, precision=precision,
                                num_threads=args.threads, log=log)
    shown = args.model if strength is None else f"{args.model} (denoise strength {strength:g})"
    log(f"keras-sr upscale: {shown} on {describe_device()} at {upscaler.precision} "
        f"({upscaler.precision_reason}), through {upscaler.engine} ({upscaler.engine_reason})")
    if args.tile is None and not getattr(upscaler, "fixed_size", None):
        # A budget too small to tile with is a mistake to say now, not on the first big image.
        inference.tile_side(upscaler.scale, args.memory_budget
                            or inference.DEFAULT_MEMORY_BUDGET_MB,
                            inference.DEFAULT_TILE_PAD if args.tile_pad is None
                            else args.tile_pad, upscaler.bytes_per_pixel)
    failures = 0
    for index, (source, target, fmt) in enumerate(jobs, 1):
        if os.path.exists(target) and not args.overwrite:
            log(f"[{index}/{len(jobs)}] {source}: {target} exists, kept (--overwrite "
                "replaces it)")
            failures += 1
            continue
        try:
            if fmt == "video":
                upscale_video_file(upscaler, source, target, args, log)
            else:
                upscale_file(upscaler, source, target, fmt, args, log)
        except (UnreadableImageError, ValueError, OSError, MemoryError) as error:
            log(f"[{index}/{len(jobs)}] skipped: {error}")
            failures += 1
            continue
        if not args.no_progress:
            log(f"[{index}/{len(jobs)}] {source} -> {target}")
    if failures or missing:
        log(f"keras-sr upscale: {failures + missing} of {len(jobs) + missing} inputs not "
            "written")
        return 1
    return 0
