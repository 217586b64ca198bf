"""Residual dense blocks in training: concatenated inputs against split sums
(keras_sr.layers.residual_dense_block.split_dense_block), in RRDBNet's forward and backward.

    python -m benchmarks.dense_block [--rounds 6] [--threads 2] [--precision float32|bfloat16]

Runs in this process with the kernels it starts with: run it with `TF_ENABLE_ONEDNN_OPTS=0`
for Eigen's (what `python -m training.fit` trains with where oneDNN is off), `=1` for oneDNN's.
RRDBNet x4 (23 blocks, random weights) forward and backward on batch 4 of 32 x 32 with
`KERAS_SR_DENSE_BLOCK=concatenate` and `=split`, both traced here and called in alternation
(`--rounds` each): median times and the median of the pairwise ratios
(benchmarks.weight_gradient.whole_network). The other switches are the environment's: with
`KERAS_SR_CONV_WEIGHT_GRADIENT=matmul` the concatenated form takes matrix-product weight
gradients and the split form TensorFlow's (it has no other).
"""

import argparse

from benchmarks.weight_gradient import start, whole_network


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)
    start(args.threads, args.precision)
    from keras_sr import startup

    whole_network(args.rounds, args.precision, startup.DENSE_BLOCK, startup.DENSE_BLOCK_CHOICES,
                  "dense block")


if __name__ == "__main__":
    main()
