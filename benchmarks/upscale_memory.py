"""Peak memory and time of `keras-sr upscale` on a 2000 x 2000 photo, x4 with RRDBNet.

    python -m benchmarks.upscale_memory [--size 2000] [--num-blocks 23] [--model PATH_OR_PRESET]
        [--memory-budget 1024] [--json OUT]

Makes the input by Lanczos-resizing a bundled photo to `--size` squared, saves an RRDBNet x4
with `--num-blocks` blocks (random weights: memory and time do not depend on their values)
unless `--model` is given, and runs the `keras-sr` console script in a child process, reading
its peak resident set size from the kernel (ru_maxrss of the waited-for child).
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
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--num-blocks", type=int, default=23)
    parser.add_argument("--model", help="a .keras file or preset instead of a random RRDBNet")
    parser.add_argument("--memory-budget", type=int, default=1024)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from PIL import Image

    with tempfile.TemporaryDirectory() as workdir:
        photo = resources.files("keras_sr.data") / "samples" / "astronaut.png"
        source = os.path.join(workdir, "photo.png")
        Image.open(photo).convert("RGB").resize((args.size, args.size), Image.LANCZOS).save(
            source)
        model = args.model
        if model is None:
            from keras_sr.models import RRDBNet
            model = os.path.join(workdir, "rrdbnet.keras")
            RRDBNet(scale=4, num_blocks=args.num_blocks).save(model)
        script = os.path.join(os.path.dirname(sys.executable), "keras-sr")
        command = [script, "upscale", source, "-o", os.path.join(workdir, "out"), "--model",
                   model, "--memory-budget", str(args.memory_budget), "--no-progress"]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30
        with Image.open(os.path.join(workdir, "out", "photo.png")) as result:
            size = result.size
    row = {"input": f"{args.size}x{args.size}", "output": f"{size[0]}x{size[1]}",
           "model": args.model or f"RRDBNet x4, {args.num_blocks} blocks",
           "memory_budget_mb": args.memory_budget, "seconds": seconds, "peak_rss_gib": peak_gib}
    print(f"keras-sr upscale {row['input']} -> {row['output']} with {row['model']}, "
          f"--memory-budget {args.memory_budget}: {seconds:.0f} s, peak RSS {peak_gib:.2f} GiB "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(row, handle, indent=2)


if __name__ == "__main__":
    main()
