"""Where a training step's first call goes: the whole step against the bare generator's
forward and backward, traced and first called apart.

    python -m benchmarks.first_step [--experiments rrdb_psnr_x4] [--batch 4] [--steps 3]

For each experiment, in one process: `training.fit`'s networks, trainer and optimizers
(`benchmarks.train_step.build_step`, float32; timed by its `timed`): the step's trace (Python
building the graph), its first call (Grappler, TensorFlow's graph passes, the executor's set-up,
and one step) and its graph's node count, then the median of `--steps` further steps; then the
same generator's forward pass, L1 loss and gradients alone (no optimizer, no EMA, no trainer),
measured the same way. The bare row is a floor for the whole step's first call: what the model
costs before any training machinery. Run it with the switches `training.fit` sets on the CPU
(e.g. `TF_ENABLE_ONEDNN_OPTS=1 KERAS_SR_CONV_WEIGHT_GRADIENT=matmul` on an AVX2-only one).
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def bare_step(generator, lr_images, hr_images):
    import tensorflow as tf

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(generator(lr_images, training=True) - hr_images))
        gradients = tape.gradient(loss, generator.trainable_variables)
        # Every gradient used, so that none is pruned from the graph.
        return tf.add_n([tf.reduce_sum(gradient) for gradient in gradients])

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["rrdb_psnr_x4"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    import tensorflow as tf

    from benchmarks.precision import switch_settings
    from benchmarks.train_step import build_step, timed

    print(f"float32, batch {args.batch}, median of {args.steps} steps after the first; "
          f"TensorFlow {tf.__version__}, {platform.machine()}, {os.cpu_count()} cores; "
          f"switches: {switch_settings()}")
    print("| experiment | what | graph nodes | trace s | first call s | trace + first call s "
          "| step s |")
    print("|---|---|---|---|---|---|---|")
    for experiment in args.experiments:
        step, generator, _, data = build_step(experiment, args.batch)
        rows = [("whole step", timed(step, args.steps)),
                ("generator forward + backward only",
                 timed(bare_step(generator, *data), args.steps))]
        for what, row in rows:
            print(f"| {experiment} | {what} | {row['nodes']:,} | {row['trace_s']:.1f} "
                  f"| {row['first_call_s']:.1f} | {row['trace_s'] + row['first_call_s']:.1f} "
                  f"| {row['step_s']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
