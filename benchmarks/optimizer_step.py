"""The optimizer's share of a training step: PyTorchAdam and the EMA over RRDBNet's weights.

    python -m benchmarks.optimizer_step [--repeats 20] [--torch]

Builds the ESRGAN generator (RRDBNet x4, 23 blocks, 702 weights, 16.7M parameters) inside a
PSNRTrainer with the recipes' EMA (0.999), and times one traced function that applies
`PyTorchAdam` to random gradients of every weight and then updates the EMA, as every
`train_step` ends; beside it the node count of that function's graph and the time to trace it.
With `--torch`, the same work in PyTorch on the same shapes: `torch.optim.Adam` (single-tensor,
its CPU default) and BasicSR's EMA. Medians after a warm-up call; intra-op threads as the
frameworks default (every core the process may use).
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_ms(call, repeats):
    from keras_sr.engines import median_seconds

    return 1000 * median_seconds(call, repeats)


def keras_sr_update(repeats):
    import numpy as np
    import tensorflow as tf

    from keras_sr.models import RRDBNet
    from keras_sr.trainers import PSNRTrainer, PyTorchAdam

    generator = RRDBNet(scale=4)
    trainer = PSNRTrainer(generator, scale=4, ema_decay=0.999)
    variables = generator.trainable_variables
    optimizer = PyTorchAdam(1e-4, beta_1=0.9, beta_2=0.99)
    optimizer.build(variables)
    rng = np.random.default_rng(0)
    gradients = [tf.constant(rng.standard_normal(v.shape).astype(np.float32) * 1e-3)
                 for v in variables]

    @tf.function
    def update():
        optimizer.apply(gradients, variables)
        trainer.update_ema()

    start = time.perf_counter()
    graph = update.get_concrete_function().graph
    trace_s = time.perf_counter() - start
    return {"framework": "keras-sr", "weights": len(variables),
            "parameters": int(sum(np.prod(v.shape) for v in variables)),
            "graph_nodes": len(graph.as_graph_def().node), "trace_s": round(trace_s, 2),
            "update_ms": round(median_ms(update, repeats), 1)}


def torch_update(repeats):
    import copy

    import torch

    from benchmarks import torch_reference

    rrdbnet, _, _ = torch_reference.build(torch)
    generator = rrdbnet()
    ema = copy.deepcopy(generator)
    optimizer = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.9, 0.99))
    for parameter in generator.parameters():
        parameter.grad = torch.randn_like(parameter) * 1e-3

    def update():
        optimizer.step()
        torch_reference.update_ema(torch, ema, generator)

    return {"framework": f"PyTorch {torch.__version__}", "threads": torch.get_num_threads(),
            "update_ms": round(median_ms(update, repeats), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--torch", action="store_true", help="time PyTorch's too")
    args = parser.parse_args(argv)
    print(json.dumps(keras_sr_update(args.repeats)))
    if args.torch:
        print(json.dumps(torch_update(args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
