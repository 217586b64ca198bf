"""TensorFlow's CPU allocator for training: malloc/free per tensor (TensorFlow's default) against
its BFC arena (`TF_CPU_ALLOCATOR_USE_BFC=true`), under oneDNN and under Eigen.

    python -m benchmarks.allocator [--steps 300] [--repeats 3] [--onednn default 0]
        [--experiment quick]

Each run is the whole `python -m training.fit EXPERIMENT --set train.steps=STEPS` command in a
fresh process (start-up, tracing, the loop, validation, saving), with both switches given
explicitly so that keras-sr's own choice does not enter. Reports, per setting, the median of
`--repeats` runs (after one warm-up run of the first setting, which fills the OS page cache) of
the wall time, the training time the command prints ("N steps in X s": building, tracing and
the loop) and the CPU time the process spent in user and kernel code. `--onednn default`
leaves TF_ENABLE_ONEDNN_OPTS unset (TensorFlow's choice for this CPU), `0` forces Eigen (what
AVX2-only CPUs run), `1` oneDNN.
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def one_run(experiment, steps, allocator_bfc, onednn):
    environment = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true" if allocator_bfc else "false")
    environment.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn != "default":
        environment["TF_ENABLE_ONEDNN_OPTS"] = onednn
    with tempfile.TemporaryDirectory() as folder:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "training.fit", experiment, "--set", f"train.steps={steps}",
             "--output", os.path.join(folder, "run")],
            capture_output=True, text=True, env=environment, timeout=3600)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"training.fit failed:\n{result.stderr[-3000:]}")
    loop = re.search(r"(\d+) steps in (\d+) s", result.stdout)
    gain = re.search(r"\(([+-][0-9.]+) dB\)", result.stdout)
    return {"wall": wall, "loop": float(loop.group(2)) if loop else float("nan"),
            "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
            "gain_db": float(gain.group(1)) if gain else float("nan")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="quick")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--onednn", nargs="+", default=["default", "0"],
                        choices=["default", "0", "1"])
    args = parser.parse_args(argv)
    from keras_sr.precision import cpu_flags, cpu_name

    flags = sorted(flag for flag in cpu_flags() if flag.startswith(("avx", "amx", "fma")))
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; flags {' '.join(flags)}")
    print(f"python -m training.fit {args.experiment} --set train.steps={args.steps}; median of "
          f"{args.repeats} runs each\n")
    one_run(args.experiment, args.steps, False, args.onednn[0])  # warm-up
    print(f"{'oneDNN':<8}{'allocator':<11}{'wall s':>8}{'train s':>8}{'user s':>8}{'sys s':>8}"
          f"{'dB':>8}")
    for onednn in args.onednn:
        for bfc in (False, True):
            runs = [one_run(args.experiment, args.steps, bfc, onednn)
                    for _ in range(args.repeats)]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            print(f"{onednn:<8}{'BFC' if bfc else 'malloc':<11}{median['wall']:>8.1f}"
                  f"{median['loop']:>8.0f}{median['user']:>8.1f}{median['sys']:>8.1f}"
                  f"{median['gain_db']:>+8.2f}", flush=True)


if __name__ == "__main__":
    main()
