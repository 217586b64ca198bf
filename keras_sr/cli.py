"""The `keras-sr` command (started by the top-level keras_sr_command, so that its arguments are
parsed before TensorFlow starts: keras_sr.startup)."""

import argparse
import json
import sys
from importlib import metadata

from keras_sr import __version__, outputs, startup
from keras_sr.engines import ENGINES
from keras_sr.precision import PRECISIONS
from keras_sr.presets import list_presets


def versions():
    """keras-sr's version and those of the stack it runs on, from the installed packages'
    metadata."""
    parts = [f"keras-sr {__version__}"]
    for package in ("tensorflow", "keras"):
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package} not installed")
    return ", ".join(parts)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-sr",
        description="SRGAN and ESRGAN super-resolution for TensorFlow 2 / Keras 3: train, "
        "evaluate, interpolate, export, upscale and convert. Each command has its --help.",
    )
    parser.add_argument("--version", action="version", version=versions())
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    for name, (module, summary) in APPLICATIONS.items():
        # The applications' own parsers: everything after the command goes to them.
        application = commands.add_parser(name, help=summary, add_help=False)
        application.add_argument("arguments", nargs=argparse.REMAINDER)
    export = commands.add_parser("export", help="export for serving or phones, and the serving "
                                 "client: saved-model, tflite, client (keras-sr export TARGET "
                                 "--help)", add_help=False)
    export.add_argument("target", nargs="?", metavar="saved-model|tflite|client")
    export.add_argument("arguments", nargs=argparse.REMAINDER)
    convert = commands.add_parser(
        "convert", help="import pretrained weights to .keras, or export to BasicSR's layout",
        description="Import an RRDBNet / SRVGGNetCompact from PyTorch (.pth: original ESRGAN, "
        "xinntao/ESRGAN, BasicSR / Real-ESRGAN layouts), .safetensors or ncnn (.param + .bin) "
        "into a .keras file; or write a .keras model (or a preset) back in BasicSR's layout as "
        ".pth or .safetensors. The architecture is read off the weight shapes.")
    convert.add_argument("sources", nargs="+", metavar="SOURCE",
                         help="weights file(s), or a .keras model / preset name with --to basicsr")
    convert.add_argument("-o", "--output", required=True, metavar="OUT",
                         help="OUT.keras to import; OUT.pth or OUT.safetensors to export")
    convert.add_argument("--to", choices=("keras", "basicsr"),
                         help="direction (default: from the output's extension)")
    convert.add_argument("--name", help="name of the imported Keras model")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    models = commands.add_parser(
        "models", help="list the presets: network, scale, parameters, licence, source, cached",
        description="The published models --model takes by name (keras_sr.zoo), whether each "
        "is in the cache ($KERAS_SR_CACHE) yet, and where each comes from.")
    models.add_argument("--json", action="store_true", help="print the rows as JSON")
    upscale = commands.add_parser(
        "upscale", help="upscale image files with a model (tiled for large images)",
        description="Upscale PNG/JPEG/WebP/BMP files and videos (mp4, mkv, mov, webm, avi, "
        "m4v: through ffmpeg, audio and subtitles copied), folders or globs with a .keras model, a "
        "SavedModel (or TF-Serving model folder), a .tflite file or a preset. Grayscale stays "
        "grayscale, alpha goes through the model too (--alpha-upscaler), 16-bit PNG stays 16-bit, "
        "EXIF orientation is applied (and a video's display rotation); the ICC profile, EXIF "
        "and dpi are kept; animated PNG / WebP stay animated. Images whose "
        "activations would exceed --memory-budget are processed in tiles with --tile-pad "
        "pixels of overlap.")
    upscale.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs")
    upscale.add_argument("-o", "--output", required=True, metavar="OUT",
                         help="output folder (or a file name for a single input)")
    upscale.add_argument("--model", required=True,
                         help=".keras file, SavedModel folder, .tflite file or a preset: "
                         + ", ".join(list_presets()))
    upscale.add_argument("--scale-out", type=outputs.float_in(0, 16), metavar="S",
                         help="final scale, in (0, 16] (the SR result is resized Lanczos); "
                         "default: the model's")
    upscale.add_argument("--tile", type=outputs.int_at_least(16, or_zero=True), metavar="N",
                         help="LR tile side, at least 16; 0 runs each image whole (default: "
                         "automatic from --memory-budget)")
    upscale.add_argument("--tile-pad", type=outputs.int_at_least(0), default=None, metavar="P",
                         help="overlap pixels around each tile (default 24)")
    upscale.add_argument("--memory-budget", type=outputs.int_at_least(1), default=None,
                         metavar="MB", help="activation memory one tile may use (default 1024)")
    upscale.add_argument("--format", choices=("png", "jpg", "webp"),
                         help="output format (default: the input's if png/jpg/webp, else png)")
    upscale.add_argument("--alpha-upscaler", choices=("model", "bicubic"), default="model",
                         help="how a transparent image's or video's alpha channel is "
                         "upscaled: by the model, as Real-ESRGAN does by default (sharper "
                         "edges; the model runs twice), or resized bicubic (default model)")
    upscale.add_argument("--quality", type=outputs.int_at_least(1, most=100), metavar="1-100",
                         help="JPEG and WebP quality (default: JPEG "
                         f"{outputs.DEFAULT_JPEG_QUALITY}; WebP lossless, as Real-ESRGAN and "
                         "realesrgan-ncnn-vulkan write it; a quality makes WebP lossy)")
    upscale.add_argument("--png-compression", type=int, choices=outputs.PNG_COMPRESSION_LEVELS,
                         default=outputs.DEFAULT_PNG_COMPRESSION, metavar="0-9",
                         help="zlib level of PNG outputs: 9 for the smallest files, 0 for "
                         f"none (default {outputs.DEFAULT_PNG_COMPRESSION}, as OpenCV's: 3-4.5x "
                         "faster than 6, files 14-25%% larger)")
    upscale.add_argument("--keep-extension", action="store_true",
                         help="name outputs after the whole input file name (photo.bmp -> "
                         "photo.bmp.png), so inputs differing only in extension do not collide")
    upscale.add_argument("--precision", choices=PRECISIONS, default="auto",
                         help="compute precision of a .keras model or preset (default auto: "
                         "bfloat16 where the CPU or GPU computes it natively and the output "
                         "stays within 45 dB of float32, else float32)")
    upscale.add_argument("--codec", metavar="NAME",
                         help="video encoder, as ffmpeg names it (default libx264; "
                         "libvpx-vp9 for .webm)")
    upscale.add_argument("--crf", type=outputs.int_at_least(0), metavar="N",
                         help="video quality for libx264 / libx265 (0-51) and libvpx-vp9 / "
                         "AV1 (0-63), lower is better (default 18)")
    upscale.add_argument("--pix-fmt", metavar="FMT",
                         help="video pixel format (default yuv420p, which every player takes, "
                         "or yuv420p10le from a source deeper than 8 bits; an odd output size "
                         "is padded by a pixel for 4:2:0 / 4:2:2)")
    upscale.add_argument("--batch", type=outputs.int_at_least(1), default=1, metavar="N",
                         help="video frames per model call when frames are not tiled "
                         "(default 1; more helps on a GPU)")
    upscale.add_argument("--resume", action="store_true",
                         help="continue an interrupted video from the segments it left in "
                         "OUT.parts (same model and settings)")
    upscale.add_argument("--segment-seconds", type=outputs.float_in(0, 3600), default=None,
                         metavar="S", help="a video is encoded in segments of about S seconds "
                         "of footage, the most an interruption loses (default 10)")
    upscale.add_argument("--denoise-strength", type=outputs.float_in(0, 1, low_open=False),
                         metavar="S", help="with --model realesr-general-x4v3: 1 the general "
                         "model, 0 its denoising twin (realesr-general-wdn-x4v3), between: "
                         "their weights mixed (Real-ESRGAN's -dn)")
    upscale.add_argument("--engine", choices=ENGINES, default="auto",
                         help="what runs a .keras model or preset: tensorflow, or litert "
                         "(XNNPACK, on a float32 flatbuffer converted once and cached); default "
                         "auto: TensorFlow on a GPU or where it computes bfloat16, else the "
                         "faster of the two on this CPU, timed once per model and cached")
    upscale.add_argument("--threads", type=outputs.int_at_least(1),
                         help="threads for LiteRT (.tflite models, --engine litert; default: "
                         "the cores this process may use)")
    upscale.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    upscale.add_argument("--no-progress", action="store_true",
                         help="no progress bar and no per-input line (a terminal gets a bar; "
                         "a log only one summary line per video)")
    for command in (convert, upscale):
        command.add_argument("--verbose", action="store_true",
                             help="show TensorFlow's own log lines (hidden by default)")
    return parser


# The commands that are applications on top of the library (training/, export/), each run with
# its own parser under its `keras-sr` name. The console script is the one place in keras_sr
# that reaches them, by module name, when one of these commands is given.
APPLICATIONS = {
    "train": ("training.fit", "train a model (the papers' recipes; python -m training.fit)"),
    "evaluate": ("training.evaluate", "PSNR / SSIM on benchmark folders, the papers' protocol"),
    "interpolate": ("training.interpolate", "ESRGAN network interpolation of two generators"),
    "make-tfrecords": ("keras_sr.data.make_tfrecords",
                       "HR images to TFRecord shards for large or multi-worker training"),
}
EXPORTS = {"saved-model": "export.saved_model", "tflite": "export.tflite",
           "client": "export.client"}


def run_application(module_name, arguments, prog):
    import importlib

    return importlib.import_module(module_name).main(arguments, prog=prog)


EXPORT_USAGE = "usage: keras-sr export {saved-model,tflite,client} [--help] ..."
EXPORT_HELP = f"""{EXPORT_USAGE}

Export a model for serving or for phones, or call a served model.

targets:
  saved-model  a TF-Serving SavedModel with two signatures and warm-up (python -m
               export.saved_model)
  tflite       a TFLite / LiteRT flatbuffer with a parity report (python -m export.tflite)
  client       send images to a TF-Serving model over REST (python -m export.client)

Each target has its own --help: keras-sr export TARGET --help."""


def run_export(args):
    if args.target in ("-h", "--help"):
        print(EXPORT_HELP)
        return 0
    if args.target not in EXPORTS:
        what = "no target" if args.target is None else f"got {args.target!r}"
        print(f"{EXPORT_USAGE}\nkeras-sr export: error: choose saved-model, tflite or client "
              f"({what})", file=sys.stderr)
        return 2
    return run_application(EXPORTS[args.target], args.arguments,
                           f"keras-sr export {args.target}")


def run_upscale(args):
    from keras_sr import upscale

    return upscale.main(args)


def run_models(args):
    from keras_sr import zoo

    rows = zoo.table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'preset':28} {'network':46} {'params':>7}  {'cached':9} licence; source")
    for row in rows:
        print(f"{row['name']:28} {row['network']:46} {row['parameters'] / 1e6:6.2f}M  "
              f"{row['cached'] or '-':9} {row['licence']}; {row['source']}")
    print(f"cache: {zoo.cache_dir()}")
    return 0


def run_convert(args):
    from keras_sr import atomic, convert, presets

    target = "keras" if args.output.endswith(".keras") else "basicsr"
    if args.to and args.to != target:
        raise convert.ConversionError(
            f"--to {args.to} does not go with the output {args.output} (.keras is the Keras "
            "format; .pth / .safetensors are BasicSR's)")
    outputs.writable_file(args.output, args.overwrite)
    if target == "basicsr":
        if len(args.sources) != 1:
            raise convert.ConversionError("export takes one .keras model or preset")
        model = presets.load_model(args.sources[0])
        convert.export(model, args.output, overwrite=args.overwrite)
    else:
        model = convert.convert(*args.sources, name=args.name)
        # The old file stays whole until the new one is complete.
        with atomic.atomic_path(args.output) as temporary:
            model.save(temporary)
    described = ", ".join(f"{key}={getattr(model, key)}" for key in
                          ("scale", "num_blocks", "num_features", "growth_channels", "num_convs")
                          if hasattr(model, key))
    print(f"{args.output}: {type(model).__name__}({described}), "
          f"{model.count_params():,} parameters")
    return 0


def dispatch_application(argv):
    """`keras-sr [--debug] [--verbose] train|evaluate|interpolate|export TARGET ARGS...` runs
    the application with ARGS as they are (argparse's REMAINDER drops a first `--option`);
    None for the library's own commands."""
    position = 0
    while position < len(argv) and argv[position] in ("--debug", "--verbose"):
        position += 1
    if position == len(argv):
        return None
    command, rest = argv[position], list(argv[position + 1:])
    if command in APPLICATIONS:
        return run_application(APPLICATIONS[command][0], rest, f"keras-sr {command}")
    if command == "export":
        if rest and rest[0] in EXPORTS:
            return run_application(EXPORTS[rest[0]], rest[1:], f"keras-sr export {rest[0]}")
        return run_export(argparse.Namespace(target=rest[0] if rest else None, arguments=[]))
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    status = dispatch_application(argv)
    if status is not None:
        return status
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        print("\nkeras-sr: no command given", file=sys.stderr)
        return 2
    try:
        if args.command == "convert":
            startup.load()
        return {"convert": run_convert, "upscale": run_upscale,
                "models": run_models}[args.command](args)
    except KeyboardInterrupt as error:
        # Ctrl-C, or SIGTERM during a video: what was complete is kept (the line before says
        # where), and the shell sees 130 as for any interrupted command.
        print(f"keras-sr {args.command}: interrupted{f' ({error})' if str(error) else ''}",
              file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError, RuntimeError) as error:
        if args.debug:
            raise
        # ConversionError is a ValueError; missing files, existing outputs and absent preset
        # packages are OSError / RuntimeError: one line naming the file, no traceback.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"keras-sr {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
