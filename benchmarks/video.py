"""Video upscaling: frames per second of `keras-sr upscale clip.mp4` against a per-frame loop of
the image path, and its peak memory for a short and a long clip.

    python -m benchmarks.video [--preset realesr-animevideov3] [--size 426x240] [--rate 25]
        [--seconds 5] [--long-seconds 0] [--precision auto]

A test clip (ffmpeg's testsrc2 and a sine tone, H.264 + AAC) is made at `--size`, `--rate` and
`--seconds`. The preset's network is built with random weights (`keras_sr.zoo.build`: the time
does not depend on them) and saved as `.keras`. Then, each in a fresh process:

- stream: `keras-sr upscale clip.mp4` (decode, model and encode overlapped: keras_sr.video);
- loop: what people do without it: ffmpeg writes every frame as PNG, `keras-sr upscale` upscales
  the folder, ffmpeg encodes the PNGs with the clip's audio (same codec settings).

Wall time of the whole command (model load included), frames per second, and the process's
peak RSS (for the loop, the largest of its three steps). `--long-seconds N` also runs stream on
an N-second clip, to show that memory does not grow with the clip.
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


def make_clip(ffmpeg, path, size, rate, seconds):
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", "-shortest", path], check=True)


def keras_sr(*args):
    return [sys.executable, "-m", "keras_sr_command", *map(str, args)]


def measure(args, mode, clip, model, workdir):
    """Runs one mode in a fresh Python (so its ru_maxrss is its own); returns its row."""
    command = [sys.executable, "-m", "benchmarks.video", "--_one", mode, clip, model, workdir,
               args.precision]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def one(mode, clip, model, workdir, precision):
    from keras_sr import video

    ffmpeg = video.ffmpeg_executable()
    frames = video.probe(clip, ffmpeg).frames
    common = ["--model", model, "--precision", precision, "--no-progress", "--overwrite"]
    if mode == "stream":
        seconds, peak = run_measured(keras_sr("upscale", clip, "-o",
                                              os.path.join(workdir, "stream.mp4"), *common))
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realesr-animevideov3")
    parser.add_argument("--size", default="426x240")
    parser.add_argument("--rate", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--long-seconds", type=float, default=0)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)

    import keras_sr  # noqa: F401 (registers the networks)
    from keras_sr import video, zoo
    from keras_sr.precision import describe_device

    ffmpeg = video.ffmpeg_executable()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        model = os.path.join(workdir, "model.keras")
        zoo.build(zoo.RELEASES[args.preset]).save(model)
        clip = os.path.join(workdir, "clip.mp4")
        make_clip(ffmpeg, clip, args.size, args.rate, args.seconds)
        for mode in ("stream", "loop"):
            rows.append({"clip_seconds": args.seconds,
                         **measure(args, mode, clip, model, workdir)})
        if args.long_seconds:
            long_clip = os.path.join(workdir, "long.mp4")
            make_clip(ffmpeg, long_clip, args.size, args.rate, args.long_seconds)
            rows.append({"clip_seconds": args.long_seconds,
                         **measure(args, "stream", long_clip, model, workdir)})
    print(f"{args.preset} (random weights), {args.size} at {args.rate} fps, --precision "
          f"{args.precision}; {describe_device()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print("| mode | clip | frames | seconds | frames/s | peak RSS |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['clip_seconds']:g} s | {row['frames']} | "
              f"{row['seconds']:.1f} | {row['frames_per_second']:.2f} | "
              f"{row['peak_rss_mib']:.0f} MiB |")
    return 0


if __name__ == "__main__":
    main()
