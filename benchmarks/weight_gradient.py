"""3x3 weight gradients: TensorFlow's `Conv2DBackpropFilter` against nine matrix products
(keras_sr.layers.conv2d), per convolution shape and in RRDBNet's forward and backward.

    python -m benchmarks.weight_gradient [--rounds 6] [--repeats 15] [--threads 2]
        [--precision float32|bfloat16]

Runs in this process with the kernels it starts with (run it with `TF_ENABLE_ONEDNN_OPTS=1` on
a CPU where TensorFlow leaves oneDNN off, as `training.fit` does). Shapes: RRDB's trunk
convolutions at batch 4 of 32 x 32 (rrdb_psnr_x4's LR patches), the x4 convolutions at 64 and
128, and conv_last (3 channels out). Then RRDBNet x4 (23 blocks, random weights) forward and
backward on batch 4 of 32 x 32 with either choice, both traced here and called in alternation
(`--rounds` each), so that the host's drift falls on both: median times and the median of the
pairwise ratios. `--precision bfloat16` runs both in bfloat16 (the shapes' tensors, and the
network under Keras' mixed_bfloat16 policy, as training on a bfloat16 CPU runs it).
"""

import argparse
import os
import platform
import statistics
import time

SHAPES = ((4, 32, 64, 32), (4, 32, 96, 32), (4, 32, 128, 32), (4, 32, 160, 32),
          (4, 32, 192, 64), (4, 32, 64, 64), (4, 64, 64, 64), (4, 128, 64, 64), (4, 128, 64, 3))


def median_ms(function, repeats):
    function()
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function().numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def per_shape(repeats, dtype="float32"):
    import tensorflow as tf

    from keras_sr.layers.conv2d import matmul_weight_gradient

    print("| batch, size, in -> out | TensorFlow ms | matrix products ms | ratio |")
    print("|---|---|---|---|")
    for batch, size, channels_in, channels_out in SHAPES:
        images = tf.random.normal([batch, size, size, channels_in], dtype=dtype)
        output_gradient = tf.random.normal([batch, size, size, channels_out], dtype=dtype)
        tensorflow = tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=images, filter_sizes=[3, 3, channels_in, channels_out],
            out_backprop=output_gradient, strides=[1, 1, 1, 1], padding="SAME"))
        matmul = tf.function(lambda: matmul_weight_gradient(images, output_gradient))
        # Alternated three times; the middle of the three medians.
        ours, theirs = [], []
        for _ in range(3):
            theirs.append(median_ms(tensorflow, repeats))
            ours.append(median_ms(matmul, repeats))
        theirs, ours = sorted(theirs)[1], sorted(ours)[1]
        print(f"| {batch}, {size}, {channels_in} -> {channels_out} | {theirs:.2f} | {ours:.2f} "
              f"| {ours / theirs:.2f} |", flush=True)


def whole_network(rounds, dtype="float32", variable=None, choices=None, what="weight gradient"):
    """RRDBNet x4's forward and backward with `variable` (an environment choice read when a
    step is traced; KERAS_SR_CONV_WEIGHT_GRADIENT when None) set to each of its two `choices`
    in turn: both traced, then called in alternation, `rounds` each."""
    import keras
    import tensorflow as tf

    from keras_sr import precision, startup
    from keras_sr.models.rrdbnet import RRDBNet

    variable = variable or startup.WEIGHT_GRADIENT
    first_choice, second_choice = choices or startup.WEIGHT_GRADIENT_CHOICES

    keras.config.set_dtype_policy(precision.policy(dtype))
    model = RRDBNet()
    lr = tf.random.uniform([4, 32, 32, 3])
    hr = tf.random.uniform([4, 128, 128, 3])
    steps, first = {}, {}
    previous = os.environ.get(variable)
    for choice in (first_choice, second_choice):
        os.environ[variable] = choice  # read when the step is traced

        @tf.function
        def step(lr, hr):
            with tf.GradientTape() as tape:
                outputs = tf.cast(model(lr, training=True), tf.float32)
                loss = tf.reduce_mean(tf.abs(outputs - hr))
            return tape.gradient(loss, model.trainable_variables)

        start = time.perf_counter()
        [gradient.numpy() for gradient in step(lr, hr)]
        first[choice] = time.perf_counter() - start
        steps[choice] = step
    times = {choice: [] for choice in steps}
    for round_ in range(rounds):
        for choice in ((first_choice, second_choice) if round_ % 2 == 0
                       else (second_choice, first_choice)):
            start = time.perf_counter()
            [gradient.numpy() for gradient in steps[choice](lr, hr)]
            times[choice].append(time.perf_counter() - start)
    print(f"\nRRDBNet x4 forward + backward ({model.dtype_policy.name}), batch 4 of 32 x 32 "
          "(L1 to 128 x 128):")
    print(f"| {what} | first call (trace) s | median s | calls s |")
    print("|---|---|---|---|")
    for choice, values in times.items():
        print(f"| {choice} | {first[choice]:.1f} | {statistics.median(values):.2f} | "
              + ", ".join(f"{value:.2f}" for value in values) + " |")
    ratios = [ours / theirs for ours, theirs in zip(times[second_choice], times[first_choice])]
    print(f"{second_choice} / {first_choice}: median of {rounds} pairwise ratios "
          f"{statistics.median(ratios):.3f}")
    if previous is None:
        os.environ.pop(variable)
    else:
        os.environ[variable] = previous


def start(threads, precision):
    """Loads keras-sr and TensorFlow (with the kernels this process's environment chooses),
    sets `threads` and prints the machine, the kernels and `precision`."""
    from keras_sr import startup

    startup.load()
    import tensorflow as tf

    from benchmarks.precision import machine, switch_settings

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    facts = machine()
    flags = ", ".join(flag for flag, present in facts["flags"].items() if present) or "none"
    print(f"{facts['cpu'] or platform.processor()} ({flags}), {threads} threads, "
          f"TensorFlow {tf.__version__}, oneDNN {'on' if facts['onednn'] else 'off'}, "
          f"{precision}; switches: {switch_settings()}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)
    start(args.threads, args.precision)
    per_shape(args.repeats, args.precision)
    whole_network(args.rounds, args.precision)


if __name__ == "__main__":
    main()
