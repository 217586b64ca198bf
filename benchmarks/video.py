"""Video upscaling: frames per second of `keras-sr upscale clip.mp4` against a per-frame loop of
the image path, and its peak memory for a short and a long clip.

    python -m benchmarks.video [--preset realesr-animevideov3] [--size 426x240] [--rate 25]
        [--seconds 5] [--long-seconds 0] [--precision auto] [--torch] [--batch 1]
        [--ten-bit 0]

A test clip (ffmpeg's testsrc2 and a sine tone, H.264 + AAC) is made at `--size`, `--rate` and
`--seconds`. The preset's network is built with random weights (`keras_sr.zoo.build`: the time
does not depend on them) and saved as `.keras`. Then, each in a fresh process:

- stream: `keras-sr upscale clip.mp4` (decode, model and encode overlapped: keras_sr.video);
- loop: what people do without it: ffmpeg writes every frame as PNG, `keras-sr upscale` upscales
  the folder, ffmpeg encodes the PNGs with the clip's audio (same codec settings);
- torch (`--torch`, needs PyTorch): the same weights in benchmarks/torch_reference.py's
  network, run the way Real-ESRGAN's inference_realesrgan_video.py runs it with `--fp32` on a
  CPU: one loop that reads a bgr24 frame from an ffmpeg pipe, upscales it (BGR -> RGB, /255,
  the model, clamp, x255, round) and writes it to an encoding ffmpeg with the audio copied
  (libx264, yuv420p; the same ffmpeg), at PyTorch's default threads.

Before them, `keras-sr upscale` runs once on the clip's first frame as a still image, so that
what a model's first use caches (the precision guard's verdict; where `--engine auto` weighs
LiteRT, the converted flatbuffer and the engine's timing) is cached for every mode alike, as
for anyone who used the model before; the line it logs names the engine the modes run on.

Wall time of the whole command (model load included), frames per second, and the process's
peak RSS (for the loop, the largest of its three steps). `--long-seconds N` also runs stream on
an N-second clip, to show that memory does not grow with the clip. `--ten-bit N` also runs
stream N times each, in turn, on the clip and on the same clip encoded 10-bit (yuv420p10le),
which goes through the model in 16-bit levels and is written 10-bit: the medians show what
the deep path costs.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_measured(command):
    """(seconds, peak RSS in MiB) of `command` run to completion as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest of any child so far: run each measurement in its own
    # parent (main does) so that an earlier, larger child does not mask a later one.
    return seconds, max(peak, before) / 1024


def make_clip(ffmpeg, path, size, rate, seconds, pix_fmt="yuv420p"):
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-pix_fmt",
                    pix_fmt, "-c:a", "aac", "-shortest", path], check=True)


def keras_sr(*args):
    return [sys.executable, "-m", "keras_sr_command", *map(str, args)]


def warm_caches(ffmpeg, clip, model, workdir, precision):
    """`keras-sr upscale` of the clip's first frame as a still image; returns the line naming
    the model, precision and engine."""
    still = os.path.join(workdir, "first.png")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", clip, "-frames:v", "1", still],
                   check=True)
    result = subprocess.run(keras_sr("upscale", still, "-o", os.path.join(workdir, "warm"),
                                     "--model", model, "--precision", precision, "--overwrite"),
                            check=True, capture_output=True, text=True)
    return next((line.strip() for line in result.stderr.splitlines() if " through " in line),
                "(the engine line was not found)")


def measure(args, mode, clip, model, workdir):
    """Runs one mode in a fresh Python (so its ru_maxrss is its own); returns its row."""
    command = [sys.executable, "-m", "benchmarks.video", "--_one", mode, clip, model, workdir,
               args.precision, str(args.batch)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_video(clip, weights, output):
    """Real-ESRGAN's video loop (inference_realesrgan_video.py, `--fp32`, no tiles) over the
    PyTorch reference network."""
    import numpy as np
    import torch

    from benchmarks.torch_reference import build as build_rrdb
    from benchmarks.torch_reference import build_srvgg_compact, load_state
    from keras_sr import video

    state = dict(np.load(weights))
    if "conv_first.weight" in state:
        network = build_rrdb(torch)[0](num_blocks=len({key.split(".")[1] for key in state
                                                       if key.startswith("body.")}))
    else:
        convs = sum(1 for key in state if key.startswith("body.") and state[key].ndim == 4)
        network = build_srvgg_compact(torch, num_convs=convs - 2)
    load_state(network, state)
    network.eval()
    ffmpeg = video.ffmpeg_executable()
    info = video.probe(clip, ffmpeg)
    width, height, scale = info.width, info.height, 4
    reader = subprocess.Popen([ffmpeg, "-v", "error", "-i", clip, "-f", "rawvideo", "-pix_fmt",
                               "bgr24", "pipe:"], stdout=subprocess.PIPE)
    writer = subprocess.Popen(
        [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
         f"{width * scale}x{height * scale}", "-framerate", info.rate, "-i", "pipe:", "-i",
         clip, "-map", "0:v", "-map", "1:a?", "-pix_fmt", "yuv420p", "-c:v", "libx264",
         "-c:a", "copy", output], stdin=subprocess.PIPE)
    with torch.no_grad():
        while len(data := reader.stdout.read(width * height * 3)) == width * height * 3:
            image = np.frombuffer(data, np.uint8).reshape(height, width, 3)
            image = image.astype(np.float32)[:, :, ::-1] / 255.0
            tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
            out = network(tensor).clamp(0, 1)[0].numpy().transpose(1, 2, 0)[:, :, ::-1]
            writer.stdin.write((out * 255.0).round().astype(np.uint8).tobytes())
    writer.stdin.close()
    if reader.wait() or writer.wait():
        raise RuntimeError("ffmpeg failed")


def one(mode, clip, model, workdir, precision, batch="1"):
    from keras_sr import video

    ffmpeg = video.ffmpeg_executable()
    frames = video.probe(clip, ffmpeg).frames
    common = ["--model", model, "--precision", precision, "--no-progress", "--overwrite"]
    if mode == "stream":
        seconds, peak = run_measured(keras_sr("upscale", clip, "-o",
                                              os.path.join(workdir, "stream.mp4"), *common,
                                              "--batch", batch))
    elif mode == "torch":
        seconds, peak = run_measured([sys.executable, "-m", "benchmarks.video", "--_torch",
                                      clip, model.replace(".keras", ".npz"),
                                      os.path.join(workdir, "torch.mp4")])
    else:
        stills, upscaled = os.path.join(workdir, "stills"), os.path.join(workdir, "upscaled")
        os.makedirs(stills, exist_ok=True)
        rate = video.probe(clip, ffmpeg).rate
        steps = [[ffmpeg, "-v", "error", "-y", "-i", clip, os.path.join(stills, "%06d.png")],
                 keras_sr("upscale", stills, "-o", upscaled, *common),
                 [ffmpeg, "-v", "error", "-y", "-framerate", rate, "-i",
                  os.path.join(upscaled, "%06d.png"), "-i", clip, "-map", "0:v", "-map", "1:a?",
                  "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy",
                  os.path.join(workdir, "loop.mp4")]]
        seconds, peak = 0.0, 0.0
        for step in steps:
            step_seconds, step_peak = run_measured(step)
            seconds, peak = seconds + step_seconds, max(peak, step_peak)
    print(json.dumps({"mode": mode, "frames": frames, "seconds": seconds,
                      "frames_per_second": frames / seconds, "peak_rss_mib": peak}))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_one":
        return one(*argv[1:])
    if argv and argv[0] == "--_torch":
        return torch_video(*argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realesr-animevideov3")
    parser.add_argument("--size", default="426x240")
    parser.add_argument("--rate", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--long-seconds", type=float, default=0)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch", type=int, default=1, help="keras-sr upscale --batch")
    parser.add_argument("--torch", action="store_true",
                        help="also time the PyTorch reference (Real-ESRGAN's video loop)")
    parser.add_argument("--ten-bit", type=int, default=0, metavar="N",
                        help="also time stream N times on the clip and on it in 10 bits")
    args = parser.parse_args(argv)

    import numpy as np

    import keras_sr  # noqa: F401 (registers the networks)
    from keras_sr import video, zoo
    from keras_sr.precision import describe_device

    ffmpeg = video.ffmpeg_executable()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        model = os.path.join(workdir, "model.keras")
        network = zoo.build(zoo.RELEASES[args.preset])
        network.save(model)
        if args.torch:
            from keras_sr.convert.basicsr import state_dict_of

            np.savez(model.replace(".keras", ".npz"), **state_dict_of(network))
        clip = os.path.join(workdir, "clip.mp4")
        make_clip(ffmpeg, clip, args.size, args.rate, args.seconds)
        engine = warm_caches(ffmpeg, clip, model, workdir, args.precision)
        for mode in ("stream", "loop", *(["torch"] if args.torch else [])):
            rows.append({"clip_seconds": args.seconds,
                         **measure(args, mode, clip, model, workdir)})
        if args.long_seconds:
            long_clip = os.path.join(workdir, "long.mp4")
            make_clip(ffmpeg, long_clip, args.size, args.rate, args.long_seconds)
            rows.append({"clip_seconds": args.long_seconds,
                         **measure(args, "stream", long_clip, model, workdir)})
        if args.ten_bit:
            deep_clip = os.path.join(workdir, "deep.mp4")
            make_clip(ffmpeg, deep_clip, args.size, args.rate, args.seconds, "yuv420p10le")
            runs = {"8-bit": [], "10-bit": []}
            for _ in range(args.ten_bit):
                for name, source in (("8-bit", clip), ("10-bit", deep_clip)):
                    runs[name].append(measure(args, "stream", source, model, workdir))
            for name, measured in runs.items():
                middle = sorted(measured, key=lambda row: row["seconds"])[len(measured) // 2]
                rows.append({"clip_seconds": args.seconds, **middle,
                             "mode": f"stream, {name} source (median of {len(measured)}: "
                                     + " / ".join(f"{row['seconds']:.1f}" for row in measured)
                                     + " s)"})
    print(f"{args.preset} (random weights), {args.size} at {args.rate} fps, --precision "
          f"{args.precision}, --batch {args.batch}; {describe_device()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"keras-sr's first use of the model (not timed): {engine}")
    print("| mode | clip | frames | seconds | frames/s | peak RSS |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['clip_seconds']:g} s | {row['frames']} | "
              f"{row['seconds']:.1f} | {row['frames_per_second']:.2f} | "
              f"{row['peak_rss_mib']:.0f} MiB |")
    return 0


if __name__ == "__main__":
    main()
