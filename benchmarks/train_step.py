"""Training-step speed and peak memory of the paper recipes (graph mode).

    python -m benchmarks.train_step [--experiments rrdb_psnr_x4 esrgan_x4] [--batch 4]
        [--steps 5] [--precision auto|float32|bfloat16|float16]

Each experiment runs in its own process (so peak memory is its own): the full-size networks of
the recipe, batch `--batch` of the recipe's HR patch size (128 for both ESRGAN stages) built by
`training.fit`'s own builders under its strategy, one traced step (timed separately), then
`--steps` timed steps on random data. ESRGAN uses a random-weight VGG19 perceptual network of the
real size (timing does not depend on its values). Reports the median step time, steps/s,
HR patches/s and the process's peak resident memory.

The processes start with the environment switches `python -m training.fit` sets on this CPU
(`keras_sr.startup.workload_switches("train")`: oneDNN where TensorFlow leaves it off, or the
BFC arena; a variable you set is kept), so that the figures are the command's; the header names
them. `--tensorflow-defaults` runs without them.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_step(experiment, batch, precision="float32"):
    """`(step, generator, chosen precision, (lr_images, hr_images))`: `experiment`'s full-size
    networks, trainer and optimizers as `training.fit` builds them, and a `tf.function` running
    one training step on that fixed random batch (`step()` returns the generator loss)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_sr import precision as precisions
    from keras_sr.losses.perceptual import vgg19_features
    from training import fit

    config = fit.resolve_config(experiment, overrides=["data.train=unused",
                                                       f"data.batch_size={batch}"])
    chosen, _ = fit.training_precision(precision)
    policy = precisions.policy(chosen)
    keras.config.set_dtype_policy(policy)
    strategy = fit.make_strategy()
    gan = config.loss.adversarial != "none"
    with strategy.scope():
        generator = fit.build_generator(config.model)
        discriminator = fit.build_discriminator(config) if gan else None
        trainer = fit.build_trainer(config, generator, discriminator, lambda: vgg19_features(
            "block5_conv4", before_activation=True, weights=None))
        optimizers = {"g_optimizer": fit.build_optimizer(
            config.g_optimizer, generator.trainable_variables, policy, config.train.steps)}
        if gan:
            optimizers["d_optimizer"] = fit.build_optimizer(
                config.d_optimizer, discriminator.trainable_variables, policy,
                config.train.steps)
        trainer.compile(**optimizers)
    size, scale = config.data.hr_patch_size, config.model.scale
    rng = np.random.default_rng(0)
    data = (tf.constant(rng.random((batch, size // scale, size // scale, 3), np.float32)),
            tf.constant(rng.random((batch, size, size, 3), np.float32)))

    @tf.function
    def step():
        strategy.run(trainer.train_step, args=(data,))
        return trainer.trackers["g_loss"].result()

    return step, generator, chosen, data


def timed(step, steps):
    """`step`'s graph node count, trace and first call (seconds, apart) and the median of
    `steps` further calls."""
    start = time.perf_counter()
    graph = step.get_concrete_function().graph
    trace = time.perf_counter() - start
    start = time.perf_counter()
    step().numpy()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - start)
    return {"nodes": len(graph.as_graph_def().node), "trace_s": trace, "first_call_s": first,
            "step_s": statistics.median(times)}


def measure(experiment, batch, steps, precision="float32"):
    import keras

    step, generator, chosen, (_, hr_images) = build_step(experiment, batch, precision)
    row = timed(step, steps)
    median = row["step_s"]
    return {"experiment": experiment, "precision": chosen, "batch": batch,
            "hr_patch": hr_images.shape[1], "generator_parameters": generator.count_params(),
            "first_step_s": row["trace_s"] + row["first_call_s"], "step_s": median,
            "steps_per_s": 1 / median, "patches_per_s": batch / median,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "keras": keras.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["rrdb_psnr_x4", "esrgan_x4"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", default="float32",
                        choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--tensorflow-defaults", action="store_true",
                        help="without the switches training.fit sets on this CPU")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.batch, args.steps, args.precision)))
        return 0
    from keras_sr.startup import workload_switches

    switches = {} if args.tensorflow_defaults else {
        variable: value for variable, (value, _) in workload_switches("train").items()}
    rows = []
    for experiment in args.experiments:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.train_step", "--one", experiment,
             "--batch", str(args.batch), "--steps", str(args.steps), "--precision",
             args.precision],
            capture_output=True, text=True, check=False, env={**os.environ, **switches})
        if result.returncode:
            print(result.stderr[-3000:], file=sys.stderr)
            return result.returncode
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    import platform

    import tensorflow as tf

    from benchmarks.precision import switch_settings

    print(f"{rows[0]['precision']}, batch {args.batch}, median of {args.steps} steps after the "
          f"first; TensorFlow "
          f"{tf.__version__}, {platform.machine()}, {os.cpu_count()} cores, no GPU; switches "
          f"(yours, and those training.fit sets here): "
          f"{switch_settings({**os.environ, **switches})}")
    print("| experiment | HR patch | first step (trace) s | step s | steps/s | patches/s "
          "| peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['experiment']} | {row['hr_patch']} | {row['first_step_s']:.1f} "
              f"| {row['step_s']:.2f} | {row['steps_per_s']:.3f} | {row['patches_per_s']:.2f} "
              f"| {row['peak_rss_gb']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
