"""The training loop of `python -m training.fit`, apart from how a run is built (`training.fit`
builds the networks, trainer, optimizers and checkpoints from the configuration into a `Run`):
steps, logging, checkpoints, validation, interruption, non-finite losses, and the summary.
"""

import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time

import numpy as np
import tensorflow as tf

from keras_sr import atomic
from keras_sr.precision import with_precision
from keras_sr.upscale import clock

EXIT_NON_FINITE = 3


class DataError(ValueError):
    """Training data that cannot be used (none found, none decodable); the message says which."""


@dataclasses.dataclass
class Run:
    """What a run is made of once built: the configuration and where it writes, the strategy,
    the trainer (with its generator, its EMA, discriminator and optimizers), the checkpoints
    and the step they resumed at."""

    config: object
    run_dir: str
    precision: str
    strategy: object
    trainer: object
    generator: object
    optimizers: dict
    checkpoints: object
    start_step: int
    is_chief: bool = True
    write_dir: str = ""

    @property
    def ema_generator(self):
        return self.trainer.ema_generator

    @property
    def served(self):
        """What is validated and saved: the EMA generator when there is one."""
        return self.trainer.served


def duration(seconds):
    """`1:02:03`, `2:03` or `41 s`."""
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 60 else clock(seconds)


class Progress:
    """The run's progress line: step, losses, steps per second and the time left. On a terminal
    it is rewritten after every step; elsewhere (a log file) one line is written every
    `train.log_every` steps. Rates count only the steps this process ran, and leave out its
    first one, which traces the step function (tens of seconds on a CPU)."""

    def __init__(self, total, start_step, stream=None, interactive=None):
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.total, self.step = total, start_step
        self.step_began = time.monotonic()
        self.first_step_seconds = None
        self.after_first = None  # (time, step) once the first step is done

    def seconds_per_step(self):
        """The mean time of this process's steps after its first; the first step's time when
        there is only one; None before."""
        if self.after_first is None:
            return None
        since, first = self.after_first
        if self.step > first:
            return (self.step_began - since) / (self.step - first)
        return self.first_step_seconds

    def remaining_in_step(self):
        """About how long the step now running has left, or None before any step is timed."""
        mean = self.seconds_per_step()
        return None if mean is None else max(mean - (time.monotonic() - self.step_began), 0.0)

    def line(self, values):
        losses = "  ".join(f"{name} {value:.4g}" for name, value in values.items())
        mean = self.seconds_per_step()
        if mean is None:
            rate = ""
        elif self.step == self.after_first[1]:
            rate = f"  first step {duration(mean)} (tracing)"
        else:
            speed = f"{1 / mean:.2f} steps/s" if mean < 1 else f"{mean:.1f} s/step"
            rate = f"  {speed}  ETA {duration(mean * (self.total - self.step))}"
        return f"step {self.step}/{self.total}  {losses}{rate}"

    def update(self, step, values, logged):
        now = time.monotonic()
        if self.after_first is None:
            self.first_step_seconds = now - self.step_began
            self.after_first = (now, step)
        self.step, self.step_began = step, now
        if self.interactive:
            self.stream.write("\r\033[K" + self.line(values)
                              + ("\n" if step == self.total else ""))
        elif logged:
            self.stream.write(self.line(values) + "\n")
        else:
            return
        self.stream.flush()


class Interruption:
    """SIGINT / SIGTERM set a flag the loop checks after each step (save, then exit), and say
    at once which step is finishing and about how long it will take: a step runs in
    TensorFlow, and Python's own handler runs only after it, so a thread reading the signal
    wakeup pipe says it.

    Under several workers, SIGTERM belongs to TensorFlow's `PreemptionCheckpointHandler`
    (see `Preemption`), and SIGINT is passed on to it as a SIGTERM, so that either makes every
    worker checkpoint at the same step and stop.
    """

    def __init__(self, forward_to_preemption=False, progress=None, log=print):
        self.signal = None
        self.forward = forward_to_preemption
        self.progress, self.log = progress, log
        self._previous = {}
        self._pipe = self._previous_wakeup = None

    def __enter__(self):
        signals = (signal.SIGINT,) if self.forward else (signal.SIGINT, signal.SIGTERM)
        for signum in signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        if self.progress is not None:
            self._pipe = os.pipe()
            os.set_blocking(self._pipe[1], False)
            self._previous_wakeup = signal.set_wakeup_fd(self._pipe[1],
                                                         warn_on_full_buffer=False)
            threading.Thread(target=self._announce, args=(self._pipe[0],), daemon=True,
                             name="keras-sr-interruption").start()
        return self

    def _announce(self, reader):
        while True:
            try:
                received = os.read(reader, 64)
            except OSError:
                return
            if not received:
                return
            for signum in received:
                if signum in self._previous:
                    self.log(self.message(signum))

    def message(self, signum):
        step = self.progress.step + 1
        left = self.progress.remaining_in_step()
        how_long = "" if left is None else f", about {duration(left)} more"
        return (f"\n{signal.Signals(signum).name}: finishing step {step}{how_long}, then "
                "saving a checkpoint and stopping")

    def _handle(self, signum, frame):
        if self.forward:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            self.signal = signum

    def __exit__(self, *exc):
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            for fd in self._pipe[::-1]:
                os.close(fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Preempted(Exception):
    """Every worker has checkpointed at the same step after one of them was told to stop."""


class Preemption:
    """Multi-worker stopping through `tf.distribute.experimental.PreemptionCheckpointHandler`.

    A SIGTERM on any one worker reaches all of them through the coordination service: each
    finishes the same step, saves the run's checkpoint (`RunCheckpoints.save`, the chief into
    the run directory) and the loop stops with status 128 + SIGTERM, so a restart of every
    worker resumes. Without it the signalled worker would stop alone and the others block at
    their next collective. Made after the run's checkpoint is restored: the handler adds its
    own run counter to the checkpoint.
    """

    def __init__(self, run):
        self.step = run.start_step

        def save():
            run.checkpoints.save(self.step)

        def stop():
            raise Preempted()

        config = tf.distribute.experimental.TerminationConfig(exit_fn=stop, save_fn=save)
        # Every worker reads the chief's checkpoints (the handler restores its run counter from
        # them); this manager never writes: `save` does, each worker into its own directory.
        reader = tf.train.CheckpointManager(run.checkpoints.checkpoint,
                                            run.checkpoints.restore_dir, max_to_keep=None)
        self.handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            run.strategy.cluster_resolver, reader, termination_config=config)

    def run(self, step_function, iterator):
        return self.handler.run(step_function, iterator)


def write_json(path, content):
    """Writes JSON atomically: a reader never sees half a file."""
    atomic.write_bytes(path, json.dumps(content, indent=2).encode())


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self):
        return time.perf_counter() - self.start


def save_model(model, path):
    """A `.keras` file that appears whole: a crash mid-save keeps the previous one. Saved as
    float32 whatever precision trained it: the precision is a choice of the machine that runs
    the model (`keras_sr.precision`), not a property of the weights."""
    with atomic.atomic_path(path) as temporary:
        with_precision(model, "float32").save(temporary)


def training_step(run):
    """One distributed step (the trainer's, EMA included): a tf.function of the data iterator
    that returns the trainer's logged values."""
    strategy, trainer = run.strategy, run.trainer

    @tf.function
    def step(iterator):
        strategy.run(trainer.train_step, args=(next(iterator),))
        return {name: tracker.result() for name, tracker in trainer.trackers.items()}

    return step


class Reporter:
    """Where a run's progress goes: the progress bar, TensorBoard (the chief only) and the
    validation results it has seen."""

    def __init__(self, run, validation, log):
        self.run, self.validation, self.log = run, validation, log
        self.writer = tf.summary.create_file_writer(os.path.join(run.run_dir, "tensorboard")) \
            if run.is_chief else tf.summary.create_noop_writer()
        self.progress = Progress(run.config.train.steps, run.start_step)
        served = run.served
        self.upscale = tf.function(lambda lr: served(lr, training=False), reduce_retracing=True)
        self.validated = {}  # step -> values, so the summary does not validate twice

    def learning_rate(self):
        optimizer = self.run.optimizers["g_optimizer"]
        rate = optimizer.learning_rate
        if callable(rate):
            rate = rate(optimizer.iterations)
        # A constant rate is a (mirrored, under a strategy) variable: read its value.
        return float(tf.convert_to_tensor(rate).numpy())

    def losses(self, step, values):
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f"train/{name}", value)
            tf.summary.scalar("train/learning_rate", self.learning_rate())

    def held_out(self):
        return self.validation.run(lambda lr: self.upscale(lr).numpy())

    def validate(self, step):
        """Validates, logs, and keeps `generator_best.keras` by `train.best_metric`."""
        from training.validation import HIGHER_IS_BETTER

        values, sheet = self.held_out()
        self.validated[step] = values
        with self.writer.as_default(step=step):
            for name, value in values.items():
                if value is not None:
                    tf.summary.scalar(f"validation/{name}", value)
            tf.summary.image("validation/bicubic_sr_hr", sheet[None])
        # The best score is checkpointed, so a resumed run compares with the run's best so far.
        metric = self.run.config.train.best_metric
        if values.get(metric) is not None:
            score = values[metric] if HIGHER_IS_BETTER[metric] else -values[metric]
            best = self.run.checkpoints.best_score
            if score > float(best.numpy()):
                best.assign(score)
                save_model(self.run.served,
                           os.path.join(self.run.run_dir, "generator_best.keras"))
        extra = "".join(f", {name.upper()} {values[name]:.4f}" for name in ("niqe", "lpips")
                        if values.get(name) is not None)
        self.log(f"\nstep {step}: validation PSNR-Y {values['psnr_y']:.3f} dB, SSIM-Y "
                 f"{values['ssim_y']:.4f}{extra}")


@dataclasses.dataclass
class LoopResult:
    status: int
    step: int
    last_losses: dict


def train_loop(run, iterator, source, validation, log=print, reporter=None):
    """Steps from `run.start_step` to `train.steps`: logs every `log_every`, checkpoints every
    `checkpoint_every` and at the end, validates every `validate_every` and at the end;
    SIGINT / SIGTERM save a checkpoint and stop (status 128 + signal; under several workers,
    every worker, see `Preemption`); a non-finite loss stops
    with EXIT_NON_FINITE, keeping the last good checkpoint. Raises DataError when the data
    stream is empty (every image failed to decode)."""
    train = run.config.train
    reporter = reporter or Reporter(run, validation, log)
    step_function = training_step(run)
    step, last_losses = run.start_step, {}
    preemption = Preemption(run) if isinstance(
        run.strategy, tf.distribute.MultiWorkerMirroredStrategy) else None
    with Interruption(preemption is not None, reporter.progress, log) as interruption:
        while step < train.steps:
            try:
                if preemption is None:
                    logs = step_function(iterator)
                else:
                    preemption.step = step
                    logs = preemption.run(step_function, iterator)
            except Preempted:
                log(f"\nstopped by SIGTERM on a worker at step {step}; every worker saved "
                    f"checkpoint {step}; rerun every worker with --output {run.run_dir} to "
                    "resume")
                return LoopResult(128 + signal.SIGTERM, step, last_losses)
            except tf.errors.OutOfRangeError:
                raise DataError(f"no training pair could be made: {source.skip_log.summary()}"
                                f" ({'; '.join(list(source.skip_log.skipped)[:5])})") from None
            step += 1
            values = {name: float(value) for name, value in logs.items()}
            if not all(np.isfinite(v) for v in values.values()):
                log(f"\nnon-finite loss at step {step} ({values}); stopping. The last good "
                    f"checkpoint is {run.checkpoints.latest or 'none (no checkpoint yet)'}.")
                return LoopResult(EXIT_NON_FINITE, step, last_losses)
            last_losses = values
            logged = step % train.log_every == 0 or step == train.steps
            reporter.progress.update(step, values, logged)
            if logged:
                reporter.losses(step, values)
                for tracker in run.trainer.trackers.values():
                    tracker.reset_state()
            # Validation first, so that the checkpoint holds the best PSNR including this step.
            if validation and (step % train.validate_every == 0 or step == train.steps):
                reporter.validate(step)
            if step % train.checkpoint_every == 0 or step == train.steps:
                run.checkpoints.save(step)
            if interruption.signal is not None:
                run.checkpoints.save(step)
                log(f"\nstopped by signal {interruption.signal} at step {step}; checkpoint "
                    f"{run.checkpoints.latest} saved, rerun with --output {run.run_dir} to "
                    "resume")
                return LoopResult(128 + interruption.signal, step, last_losses)
    return LoopResult(0, step, last_losses)


def finish(run, result, source, validation, reporter, stopwatch, log=print):
    """After the loop: the chief saves generator_last.keras and summary.json and says what
    the run reached; other workers remove their scratch folders. Returns the exit status."""
    if not run.is_chief:
        shutil.rmtree(run.write_dir, ignore_errors=True)
        return result.status
    step = result.step
    save_model(run.served, os.path.join(run.run_dir, "generator_last.keras"))
    segments = run.checkpoints.segments(step)
    summary = {"experiment": run.config.name, "steps": step,
               "seconds": sum(segment["seconds"] for segment in segments),
               "segments": segments,
               "last_losses": result.last_losses, "ema": run.ema_generator is not None,
               "skipped_images": dict(source.skip_log.skipped), "precision": run.precision}
    # An interrupted run stops without validating (on a CPU, the held-out images through a
    # full-size generator take minutes); it validates when it finishes.
    measured = validation and (step in reporter.validated or result.status == 0)
    if measured:
        values = reporter.validated[step] if step in reporter.validated \
            else reporter.held_out()[0]
        summary["heldout_psnr_y_bicubic"] = validation.bicubic_psnr_y()
        summary["heldout_psnr_y_model"] = values["psnr_y"]
        for name in ("niqe", "lpips"):
            if values.get(name) is not None:
                summary[f"heldout_{name}_model"] = values[name]
    if validation:
        summary["best_metric"] = run.config.train.best_metric
    write_json(os.path.join(run.run_dir, "summary.json"), summary)
    if measured:
        gain = summary["heldout_psnr_y_model"] - summary["heldout_psnr_y_bicubic"]
        log(f"\nheld-out PSNR-Y: bicubic {summary['heldout_psnr_y_bicubic']:.3f} dB, model "
            f"{summary['heldout_psnr_y_model']:.3f} dB ({gain:+.3f} dB)")
    if source.skip_log.count:
        log(f"training data: {source.skip_log.summary()} (listed in summary.json)")
    ran = f"{step - run.start_step} steps (resumed at {run.start_step}, now at {step})" \
        if run.start_step else f"{step} steps"
    log(f"{ran} in {stopwatch.seconds:.0f} s; generator saved to "
        f"{os.path.join(run.run_dir, 'generator_last.keras')}")
    return result.status
