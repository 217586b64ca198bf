"""Why TensorFlow with oneDNN is slower than Eigen at RRDBNet inference on a CPU: which
oneDNN kernel each operation gets, how long each kind takes, and the reorders between layouts.

    python -m benchmarks.onednn_verbose [--size 64] [--isa AVX2 ...] [--threads 2]
        [--blocks 23] [--train --batch 4]

For each `--isa` value (oneDNN's `ONEDNN_MAX_CPU_ISA`: "AVX2" emulates an AVX2-only CPU's
oneDNN kernels on a newer one; "native" lets oneDNN use what this CPU has), a fresh process runs
RRDBNet x4 (`--blocks` blocks, random weights) on one `--size` x `--size` LR image in graph
mode with `TF_ENABLE_ONEDNN_OPTS=1` and `ONEDNN_VERBOSE=1`, twice to warm up and once timed,
and the timed call's verbose lines are summed: per primitive kind and implementation (a name
with "ref" or "gemm" is a slow fallback, "brg" / "jit" the fast kernels), time and count, and
the reorders (layout conversions) with their source and destination layouts. Next to it, the
same model under Eigen (`TF_ENABLE_ONEDNN_OPTS=0`) in a fresh process, the median of 3 calls.

The wall time of the timed call minus the oneDNN primitives' time is what TensorFlow spends
outside oneDNN (its own ops, scheduling, allocation).

`--train`: the timed call is instead the gradient of an L1 loss (forward and backward, no
optimizer update) on a batch of `--batch` LR images of `--size` (rrdb_psnr_x4's step at
`--size 32 --batch 4`, HR 128): the backward convolutions' kernels ("backward_data",
"backward_weights") are where training time goes.
"""

import argparse
import collections
import json
import os
import platform
import subprocess
import sys

MARK = "=== keras-sr timed call ==="


def child(size, blocks, threads, train=False, batch=1):
    """Run in the measured process: build, warm up, then the timed call between marks."""
    import time

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from keras_sr.models import RRDBNet

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = RRDBNet(scale=4, num_blocks=blocks)
    rng = np.random.default_rng(0)
    image = tf.constant(rng.random((batch, size, size, 3), np.float32))
    if train:
        target = tf.constant(rng.random((batch, 4 * size, 4 * size, 3), np.float32))

        @tf.function
        def serve(images):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.abs(model(images, training=True) - target))
            gradients = tape.gradient(loss, model.trainable_variables)
            # Every gradient used, or the graph drops the weights' backward convolutions.
            return tf.add_n([tf.reduce_sum(gradient) for gradient in gradients])
    else:
        serve = tf.function(lambda images: model(images, training=False))
    for _ in range(2):
        serve(image).numpy()
    times = []
    for repeat in range(3):
        timed = repeat == 2 and os.environ.get("ONEDNN_VERBOSE")
        if timed:
            sys.stdout.flush()
            print(MARK, flush=True)
        start = time.perf_counter()
        serve(image).numpy()
        times.append(time.perf_counter() - start)
        if timed:
            sys.stdout.flush()
            print(MARK, flush=True)
    print(json.dumps({"seconds": times}), flush=True)


def parse(output):
    """(summary dict, wall seconds of the timed call) from a child's stdout."""
    lines = output.splitlines()
    marks = [index for index, line in enumerate(lines) if line.strip() == MARK]
    timed = lines[marks[0] + 1:marks[1]] if len(marks) == 2 else []
    seconds = json.loads([line for line in lines if line.startswith("{")][-1])["seconds"]
    kinds = collections.defaultdict(lambda: [0, 0.0])
    reorders = collections.defaultdict(lambda: [0, 0.0])
    fused = collections.Counter()
    for line in timed:
        fields = line.split(",")
        if not fields[0].startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        kind = fields[at + 2]
        if kind == "convolution":  # forward / backward_data / backward_weights
            kind = {"forward_training": "conv forward", "forward_inference": "conv forward"}.get(
                fields[at + 4], f"conv {fields[at + 4]}")
        implementation = fields[at + 3]
        milliseconds = float(fields[-1])
        kinds[(kind, implementation)][0] += 1
        kinds[(kind, implementation)][1] += milliseconds
        if kind == "reorder":
            layouts = " -> ".join(part.split(":")[4] if part.count(":") >= 4 else part
                                  for part in fields[at + 5].split(" ")[:2])
            reorders[layouts][0] += 1
            reorders[layouts][1] += milliseconds
        if kind == "conv forward":
            fused["post-ops: " + (fields[at + 6] or "none")] += 1
    return {"kinds": kinds, "reorders": reorders, "fused": fused}, seconds


def run_child(environment, args):
    command = [sys.executable, "-m", "benchmarks.onednn_verbose", "--child", "--size",
               str(args.size), "--blocks", str(args.blocks), "--threads", str(args.threads),
               "--batch", str(args.batch)] + (["--train"] if args.train else [])
    result = subprocess.run(command, env=environment, capture_output=True, text=True,
                            check=False)
    if result.returncode:
        raise SystemExit(f"the measured process failed:\n{result.stderr[-3000:]}")
    return result.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=23)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--isa", nargs="+", default=["AVX2", "native"])
    parser.add_argument("--train", action="store_true",
                        help="time a training step's forward and backward instead")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.size, args.blocks, args.threads, args.train, args.batch)
        return 0
    base = {key: value for key, value in os.environ.items()
            if key not in ("ONEDNN_VERBOSE", "ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")}
    eigen = parse(run_child(dict(base, TF_ENABLE_ONEDNN_OPTS="0"), args))[1]
    eigen_median = sorted(eigen)[1]
    work = f"training step (batch {args.batch})" if args.train else "inference"
    print(f"RRDBNet x4 {work}, {args.blocks} blocks, LR {args.size}, {args.threads} threads, "
          f"{platform.processor() or platform.machine()}; Eigen (oneDNN off): median "
          f"{eigen_median * 1000:.0f} ms of 3 calls")
    for isa in args.isa:
        environment = dict(base, TF_ENABLE_ONEDNN_OPTS="1", ONEDNN_VERBOSE="1")
        if isa != "native":
            environment["ONEDNN_MAX_CPU_ISA"] = isa
        summary, seconds = parse(run_child(environment, args))
        wall = seconds[2]
        primitives = sum(total for _, total in summary["kinds"].values()) / 1000
        outside = (f"outside them {(wall - primitives) * 1000:.0f} ms" if primitives <= wall
                   else "more than the call: TensorFlow ran independent ones at once")
        print(f"\noneDNN, ISA {isa}: timed call {wall * 1000:.0f} ms with verbose on "
              f"({wall / eigen_median:.2f}x Eigen; untimed calls "
              f"{min(seconds[:2]) * 1000:.0f} ms); oneDNN primitives {primitives * 1000:.0f} ms, "
              f"{outside}")
        for (kind, implementation), (count, total) in sorted(
                summary["kinds"].items(), key=lambda item: -item[1][1]):
            print(f"  {kind:22s} {implementation:30s} {count:5d} calls {total:9.1f} ms")
        if summary["reorders"]:
            print("  reorders by layout:")
            for layouts, (count, total) in sorted(summary["reorders"].items(),
                                                  key=lambda item: -item[1][1]):
                print(f"    {layouts:40s} {count:5d} calls {total:9.1f} ms")
        print("  convolutions' fused post-ops: " + "; ".join(
            f"{name} x{count}" for name, count in summary["fused"].most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
