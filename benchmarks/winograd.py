"""Winograd F(4x4, 3x3) convolution written in TensorFlow builtin ops against TensorFlow's own
3x3 convolution, at RRDBNet's convolution shapes.

    python -m benchmarks.winograd [--sizes 64 128] [--repeats 15] [--threads 2]

Winograd needs 36 multiplications per 4 x 4 output tile where a direct 3x3 convolution needs
144 (ncnn's lead on AVX2 CPUs). Written as TensorFlow ops so the same graph would run in
TensorFlow, a SavedModel and TFLite: the padded input cut into overlapping 6 x 6 tiles
(`extract_patches`, stride 4), each tile transformed by B^T d B (an einsum), one batched
matmul per tile position against the transformed weights G g G^T (36 of them), and the output
transform A^T m A back to 4 x 4 tiles. Each row times, on one `[1, S, S, C_in]` input: the
direct convolution (`tf.nn.conv2d`, SAME), the whole Winograd graph, and its batched matmul
alone (the part whose work Winograd cuts), each the median of `--repeats` after a warm-up, with
the largest difference between the two convolutions' outputs. Run it with
`TF_ENABLE_ONEDNN_OPTS=0` for Eigen, what AVX2-only CPUs run.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# Lavin & Gray (arXiv 1509.09308), F(4x4, 3x3): input, filter and output transforms.
B_T = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float32)
# (C_in, C_out) of an RRDB dense block's five convolutions (64 features, 32 growth channels).
SHAPES = [(64, 32), (128, 32), (192, 64)]


def transformed_weights(kernel):
    """`[3, 3, C_in, C_out]` -> `[36, C_in, C_out]`: G g G^T per channel pair."""
    transformed = np.einsum("ai,ijco,bj->abco", G, kernel, G)
    return transformed.reshape(36, kernel.shape[2], kernel.shape[3])


def winograd_conv(images, weights):
    """A SAME 3x3 convolution of `[N, H, W, C_in]` by transformed `weights` `[36, C_in, C_out]`."""
    import tensorflow as tf

    batch, height, width, channels = images.shape
    rows, columns = -(-height // 4), -(-width // 4)
    padded = tf.pad(images, [[0, 0], [1, 1 + 4 * rows - height], [1, 1 + 4 * columns - width],
                             [0, 0]])
    tiles = tf.image.extract_patches(padded, [1, 6, 6, 1], [1, 4, 4, 1], [1, 1, 1, 1], "VALID")
    tiles = tf.reshape(tiles, [batch * rows * columns, 6, 6, channels])
    b_t = tf.constant(B_T)
    inputs = tf.einsum("xa,pabc,yb->xypc", b_t, tiles, b_t)
    products = tf.matmul(tf.reshape(inputs, [36, -1, channels]), weights)
    products = tf.reshape(products, [6, 6, -1, weights.shape[-1]])
    a_t = tf.constant(A_T)
    outputs = tf.einsum("ia,abpc,jb->pijc", a_t, products, a_t)
    outputs = tf.reshape(outputs, [batch, rows, columns, 4, 4, -1])
    outputs = tf.reshape(tf.transpose(outputs, [0, 1, 3, 2, 4, 5]),
                         [batch, 4 * rows, 4 * columns, -1])
    return outputs[:, :height, :width]


def median_ms(function, argument, repeats):
    function(argument).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import tensorflow as tf

    from keras_sr import precision as precisions

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    flags = precisions.cpu_flags()
    print(f"{precisions.cpu_name()}, {args.threads} threads, TensorFlow {tf.__version__}, "
          f"oneDNN {'on' if precisions.onednn_enabled(flags) else 'off'}; median of "
          f"{args.repeats}, ms")
    print("| size | C_in -> C_out | direct conv | Winograd graph | its batched matmul alone "
          "| Winograd / direct | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for channels_in, channels_out in SHAPES:
            images = tf.constant(rng.standard_normal((1, size, size, channels_in), np.float32))
            kernel = (rng.standard_normal((3, 3, channels_in, channels_out)) * 0.05).astype(
                np.float32)
            weights = tf.constant(transformed_weights(kernel))
            kernel = tf.constant(kernel)
            tiles = tf.constant(rng.standard_normal((36, (-(-size // 4)) ** 2, channels_in),
                                                    np.float32))
            direct = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"))
            winograd = tf.function(lambda x: winograd_conv(x, weights))
            matmul = tf.function(lambda x: tf.matmul(x, weights))
            difference = float(tf.reduce_max(tf.abs(direct(images) - winograd(images))))
            direct_ms = median_ms(direct, images, args.repeats)
            winograd_ms = median_ms(winograd, images, args.repeats)
            matmul_ms = median_ms(matmul, tiles, args.repeats)
            print(f"| {size} | {channels_in} -> {channels_out} | {direct_ms:.2f} | "
                  f"{winograd_ms:.2f} | {matmul_ms:.2f} | {winograd_ms / direct_ms:.1f} | "
                  f"{difference:.1e} |", flush=True)


if __name__ == "__main__":
    main()
