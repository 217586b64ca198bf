import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests.training.test_evaluate import natural_folder

WORKER = textwrap.dedent("""
    import sys
    import keras, numpy as np
    from training import fit
    from tests.losses.test_perceptual import tiny_extractor

    run_dir, folder, out, precision = sys.argv[1:5]
    if precision == "float64":
        # Not a training.fit precision: the test's exact reference, set where fit sets its own.
        from keras_sr import precision as precisions
        fit.training_precision = lambda configured: ("float64", "the test's reference")
        precisions.policy = lambda name: name
        keras.config.set_floatx("float64")
    keras.utils.set_random_seed(0)
    config = fit.resolve_config("esrgan_x4", overrides=[
        f"data.train={folder}", "data.hr_patch_size=32", "data.batch_size=4",
        "train.steps=3", "train.checkpoint_every=2", "train.log_every=1",
        "model.num_blocks=1", "model.num_features=8", "model.growth_channels=4",
        "model.discriminator_features=8", "train.precision=float32"])
    chief, index = fit.cluster_role()
    config = fit.prepare_run_dir(run_dir, config, write=chief)
    # Plain SGD: Adam would normalise away a wrong gradient scale (see test_trainers).
    def sgd(optimizer_config, variables, precision, total_steps):
        optimizer = keras.optimizers.SGD(0.05)
        optimizer.build(variables)
        return optimizer

    fit.build_optimizer = sgd
    built = {}
    build_generator = fit.build_generator
    def keep(model):
        generator = built.setdefault("generator", build_generator(model))
        built.setdefault("start", generator.get_weights())
        return generator

    fit.build_generator = keep
    status = fit.train(config, run_dir, feature_extractor_factory=tiny_extractor, log=print)
    np.savez(out, *built["generator"].get_weights(), *built["start"])
    print("status", status, "chief", chief)
""")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(script, workers, arguments):
    """One process per worker of the local cluster `workers` running `script` with
    `arguments(index)` as its command line."""
    processes = []
    for index in range(len(workers)):
        environment = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-c", script, *arguments(index)], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


@pytest.mark.slow
@pytest.mark.numerics
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_two_workers_train_esrgan_to_identical_weights(tmp_path, rng, precision):
    folder = natural_folder(tmp_path / "hr", rng, 4, 40, 40)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    run_dir = tmp_path / "run"
    processes = start_workers(WORKER, workers, lambda index: [
        str(run_dir), str(folder), str(tmp_path / f"worker{index}.npz"), precision])
    # The same run in one process (one device, the same global batch of 4).
    processes.append(subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path / "single"), str(folder),
         str(tmp_path / "single.npz"), precision],
        env={key: value for key, value in os.environ.items() if key != "TF_CONFIG"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=540) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert "status 0" in out
    first, second = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    single = np.load(tmp_path / "single.npz")
    assert len(first.files) == len(second.files) > 0
    for name in first.files:
        # The workers hold one mirrored copy of each variable: the same all-reduced values.
        np.testing.assert_array_equal(first[name], second[name])
    assert first[first.files[0]].dtype == precision
    # Against one process on the same global batches. Other batches, or a wrong 1/N, leave
    # most of the update. Summation order leaves the rest: the two workers' partial gradients
    # are added in another order than one process's, and three SGD steps through batch norm,
    # RaGAN's batch means and the EMA amplify one rounding to 1e2-1e5 of itself. float32 (eps
    # 6e-8) measured 7.8e-6 of the update with oneDNN (AMD Zen 5), 3.6e-4 and 3.8e-3 with
    # Eigen (Zen 5, Zen 3), so 3e-2 leaves 8x; float64 (eps 1.1e-16) measured 3.3e-15, so 1e-9
    # leaves 3e5x.
    bound = {"float64": 1e-9, "float32": 3e-2}[precision]
    half = len(first.files) // 2
    trained = [f"arr_{index}" for index in range(half)]
    difference = max(float(np.abs(first[name] - single[name]).max()) for name in trained)
    update = max(float(np.abs(single[name] - single[f"arr_{index + half}"]).max())
                 for index, name in enumerate(trained))
    assert update > 1e-3 and difference < bound * update, (difference, update)
    # Only the chief wrote the run directory; the other worker's scratch space is gone.
    assert (run_dir / "generator_last.keras").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3
    assert not list(run_dir.glob(".worker-*"))


PREEMPTED_WORKER = textwrap.dedent("""
    import sys
    from training import fit

    run_dir, folder = sys.argv[1:3]
    config = fit.resolve_config("rrdb_psnr_x4", overrides=[
        f"data.train={folder}", "data.hr_patch_size=32", "data.batch_size=4",
        "train.steps=400", "train.checkpoint_every=10", "train.log_every=400",
        "model.num_blocks=1", "model.num_features=8", "model.growth_channels=4",
        "train.precision=float32"])
    chief, index = fit.cluster_role()
    config = fit.prepare_run_dir(run_dir, config, write=chief)
    status = fit.train(config, run_dir, log=print)
    print("status", status, flush=True)
    sys.exit(status)
""")


@pytest.mark.slow
def test_a_sigterm_on_one_worker_checkpoints_every_worker_and_the_run_resumes(tmp_path, rng):
    folder = natural_folder(tmp_path / "hr", rng, 4, 40, 40)
    run_dir = tmp_path / "run"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = start_workers(PREEMPTED_WORKER, workers,
                              lambda index: [str(run_dir), str(folder)])
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "ckpt-10.index").exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), \
            [p.communicate()[1][-2000:] for p in processes if p.poll() is not None]
        time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)  # the worker that is not the chief
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    # Both stopped at the same step, and the chief's checkpoint of it is in the run directory.
    stopped = {int(line.split(" at step ")[1].split(";")[0]) for out, _ in outputs
               for line in out.splitlines() if line.startswith("stopped by SIGTERM")}
    assert len(stopped) == 1
    step = stopped.pop()
    assert 10 <= step < 400 and (run_dir / "checkpoints" / f"ckpt-{step}.index").exists()

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = start_workers(PREEMPTED_WORKER, workers,
                              lambda index: [str(run_dir), str(folder)])
    outputs = [process.communicate(timeout=400) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert f"from step {step}" in out
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 400
    assert not list(run_dir.glob(".worker-*")) and not list(run_dir.glob("workertemp*"))
